/**
 * Runs Argo CD resource health customizations (Lua) the way Argo CD does, for tests and for the simulated
 * Argo CD. The scripts are read from the argocd-cm patch we ship (argocd/argocd-cm-health.yaml), so what the
 * tests exercise is byte for byte what users install.
 *
 * What is mirrored from Argo CD (argo-cd util/lua/lua.go, util/settings/settings.go, gitops-engine
 * pkg/health/health.go):
 *  - keys `resource.customizations.health.<group>_<Kind>` (or `<Kind>` for the core group) and
 *    `resource.customizations.useOpenLibs.<group>_<Kind>` (Go `strconv.ParseBool` values);
 *  - a fresh Lua state per evaluation, the object in the global `obj`, the script's last return value
 *    taken as the result;
 *  - without useOpenLibs only the base, table and package libraries are opened, plus a "safe" os module
 *    (`os.time`, `os.date`) reachable through `require("os")`: `string.*`, `math.*`, `io.*` and the global
 *    `os` are absent. With useOpenLibs every standard library is opened;
 *  - Go slices become 1-based sequences and JSON nulls vanish (gopher-lua's `LTable.Append` skips nil), so
 *    `#obj.status.conditions` and `ipairs` behave as in Argo CD;
 *  - a status outside Healthy/Progressing/Degraded/Suspended/Missing/Unknown becomes Unknown "Lua returned an
 *    invalid health status" (`isValidHealthStatusCode`); a script error or a non-table result becomes Unknown
 *    with the error (gitops-engine `GetResourceHealth`);
 *  - an object with `metadata.deletionTimestamp` is Progressing "Pending deletion" before any script runs
 *    (gitops-engine), unless it carries Argo CD's hook finalizer;
 *  - a 1 s budget per script (Argo CD's context timeout).
 * Not mirrored: Lua 5.1 itself. Argo CD embeds gopher-lua (Lua 5.1); wasmoon is Lua 5.4. The shipped scripts
 * keep to the common subset, which test/argocd-health.test.ts checks. Wildcard keys and the legacy
 * `resource.customizations` block are not read: the shipped patch uses neither.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LuaEngine, LuaFactory, LuaLibraries } from 'wasmoon';
import type { LuaWasm } from 'wasmoon';
import { parseDocument } from 'yaml';

/** The health statuses Argo CD accepts from a health script (gitops-engine `HealthStatusCode`). */
export const HEALTH_STATUSES = ['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Missing', 'Unknown'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

/** What a health check reports for one object. */
export interface HealthResult {
  readonly status: HealthStatus;
  readonly message: string;
}

/** One parsed customization: the Lua source and whether Argo CD opens the standard libraries for it. */
export interface HealthCustomization {
  readonly script: string;
  readonly useOpenLibs: boolean;
}

export interface HealthCheckOptions {
  /** argocd-cm `data` to read the customizations from. Default: the shipped patch (see `shippedHealthPatch`). */
  readonly data?: Readonly<Record<string, string>>;
  /** Wall-clock budget per script run in milliseconds. Default 1000, Argo CD's timeout. */
  readonly timeoutMs?: number;
}

export interface HealthChecks {
  /**
   * Argo CD's health for `obj` when a customization covers its group and kind, else `undefined` (Argo CD
   * would fall back to its built-in checks, or report no health). Synchronous: one fresh Lua state per call.
   * Throws if `obj` is not JSON data (a Date, NaN, a class instance).
   */
  health(obj: Record<string, unknown>): HealthResult | undefined;
  /** The Argo CD override keys (`group/Kind`, or `Kind` for the core group) that have a health script, sorted. */
  readonly kinds: readonly string[];
  /** Releases the Lua runtime; `health` throws afterwards. */
  close(): void;
}

const HEALTH_PREFIX = 'resource.customizations.health.';
const OPEN_LIBS_PREFIX = 'resource.customizations.useOpenLibs.';
const CUSTOMIZATIONS_PREFIX = 'resource.customizations.';
// gitops-engine pkg/sync/hook: hooks keep their health while this finalizer holds their deletion.
const HOOK_FINALIZER = 'argocd.argoproj.io/hook-finalizer';
const INVALID_STATUS = 'Lua returned an invalid health status';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The argocd/ directory of the package (install manifests and health checks), found from source or dist/. */
export function argocdDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'argocd', 'health'))) return join(dir, 'argocd');
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find argocd/health above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The shipped argocd-cm patch holding the health checks. */
export function shippedHealthPatch(): string {
  return join(argocdDir(), 'argocd-cm-health.yaml');
}

/** The `data` of an argocd-cm ConfigMap (or patch) file. Throws on invalid YAML or non-string values. */
export function readConfigMapData(file: string): Record<string, string> {
  const doc = parseDocument(readFileSync(file, 'utf8'), { uniqueKeys: true });
  const problem = doc.errors[0];
  if (problem) throw new Error(`${file}: invalid YAML: ${problem.message}`);
  const cm: unknown = doc.toJS();
  if (!isRecord(cm) || cm.kind !== 'ConfigMap' || !isRecord(cm.data)) throw new Error(`${file}: not a ConfigMap with data`);
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(cm.data)) {
    // The API server would reject a non-string ConfigMap value, so a patch holding one is broken.
    if (typeof value !== 'string') throw new Error(`${file}: data.${key} must be a string`);
    data[key] = value;
  }
  return data;
}

// Go's strconv.ParseBool, which Argo CD applies to useOpenLibs values.
function parseGoBool(key: string, value: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new Error(`${key}: strconv.ParseBool: parsing ${JSON.stringify(value)}: invalid syntax`);
}

// Argo CD's convertToOverrideKey: `<group>_<Kind>` → `<group>/<Kind>`, `<Kind>` stays.
function overrideKey(configKey: string, groupKind: string): string {
  const parts = groupKind.split('_');
  if (parts.length === 2) return `${parts[0]}/${parts[1]}`;
  if (parts.length === 1 && groupKind !== '') return groupKind;
  throw new Error(`${configKey}: group kind should be <group>_<Kind> or <Kind>, got ${JSON.stringify(groupKind)}`);
}

/**
 * The health customizations of argocd-cm data, by Argo CD override key. Other `resource.customizations.*`
 * keys are ignored; a malformed health/useOpenLibs key or value throws, as Argo CD refuses such settings.
 */
export function parseHealthCustomizations(data: Readonly<Record<string, string>>): Map<string, HealthCustomization> {
  const scripts = new Map<string, string>();
  const openLibs = new Map<string, boolean>();
  for (const [key, value] of Object.entries(data)) {
    if (!key.startsWith(CUSTOMIZATIONS_PREFIX)) continue;
    if (key.startsWith(HEALTH_PREFIX)) scripts.set(overrideKey(key, key.slice(HEALTH_PREFIX.length)), value);
    else if (key.startsWith(OPEN_LIBS_PREFIX)) openLibs.set(overrideKey(key, key.slice(OPEN_LIBS_PREFIX.length)), parseGoBool(key, value));
  }
  const out = new Map<string, HealthCustomization>();
  for (const [kind, script] of [...scripts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    // Argo CD treats an empty script as "no customization" (GetHealthScript checks HealthLua != "").
    if (script !== '') out.set(kind, { script, useOpenLibs: openLibs.get(kind) ?? false });
  }
  return out;
}

/** Argo CD's override key for an object: `group/Kind`, or `Kind` for the core group (GetConfigMapKey). */
export function overrideKeyOf(obj: Record<string, unknown>): string | undefined {
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return undefined;
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? kind : `${apiVersion.slice(0, slash)}/${kind}`;
}

/** A copy shaped like Argo CD's Lua value: nulls dropped, arrays compacted; non-JSON values rejected. */
function toLuaValue(value: unknown, path: string): unknown {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} is not a JSON number`);
    return value;
  }
  if (Array.isArray(value)) {
    return value.filter((v) => v !== null && v !== undefined).map((v, i) => toLuaValue(v, `${path}[${i}]`));
  }
  if (isRecord(value) && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const converted = toLuaValue(v, `${path}.${k}`);
      if (converted !== undefined) out[k] = converted;
    }
    return out;
  }
  throw new TypeError(`${path}: ${typeof value} is not a JSON value`);
}

// Without open libs Argo CD exposes os only through require("os"), and only time and date (util/lua/oslib_safe.go).
const SAFE_OS_PRELUDE = `
local time, date = os.time, os.date
os = nil
package.loaded.os = nil
package.preload.os = function() return { time = time, date = date } end
`;

function isDeleting(obj: Record<string, unknown>): boolean {
  const metadata = obj.metadata;
  if (!isRecord(metadata) || metadata.deletionTimestamp === undefined || metadata.deletionTimestamp === null) return false;
  const finalizers = metadata.finalizers;
  return !(Array.isArray(finalizers) && finalizers.includes(HOOK_FINALIZER));
}

/** Turns the script's return value into a health result the way Argo CD decodes it (JSON into HealthStatus). */
function decodeResult(value: unknown): HealthResult {
  if (value === null || value === undefined) return { status: 'Unknown', message: 'expect table output from Lua script, not nil' };
  if (typeof value !== 'object') return { status: 'Unknown', message: `expect table output from Lua script, not ${typeof value}` };
  // gopher-json encodes an empty or sequence-like table as a JSON array, which cannot decode into HealthStatus.
  if (!isRecord(value) || Object.keys(value).length === 0) {
    return { status: 'Unknown', message: 'json: cannot unmarshal array into Go value of type health.HealthStatus' };
  }
  const { status, message } = value;
  for (const [field, v] of [['status', status], ['message', message]] as const) {
    if (v !== undefined && v !== null && typeof v !== 'string') {
      return { status: 'Unknown', message: `json: cannot unmarshal ${typeof v} into Go struct field HealthStatus.${field} of type string` };
    }
  }
  const code = typeof status === 'string' ? status : '';
  if (!(HEALTH_STATUSES as readonly string[]).includes(code)) return { status: 'Unknown', message: INVALID_STATUS };
  return { status: code as HealthStatus, message: typeof message === 'string' ? message : '' };
}

/**
 * Loads the health customizations (by default from the shipped argocd-cm patch) and the Lua runtime. The
 * returned `health` is synchronous; only loading the WebAssembly module is asynchronous.
 */
export async function createHealthChecks(options: HealthCheckOptions = {}): Promise<HealthChecks> {
  const customizations = parseHealthCustomizations(options.data ?? readConfigMapData(shippedHealthPatch()));
  const timeoutMs = options.timeoutMs ?? 1000;
  let lua: LuaWasm | undefined = await new LuaFactory().getLuaModule();

  const run = (module: LuaWasm, custom: HealthCustomization, obj: Record<string, unknown>): HealthResult => {
    // Converted first: an object that is not JSON is the caller's bug, not an Unknown health.
    const value = toLuaValue(obj, 'obj');
    const engine = new LuaEngine(module, { openStandardLibs: custom.useOpenLibs, enableProxy: false, injectObjects: false });
    const state = engine.global;
    try {
      if (!custom.useOpenLibs) {
        // util/lua/lua.go runLua: SkipOpenLibs, then package, base, table and the safe os.
        for (const lib of [LuaLibraries.Package, LuaLibraries.Base, LuaLibraries.Table, LuaLibraries.OS]) state.loadLibrary(lib);
        engine.doStringSync(SAFE_OS_PRELUDE);
      }
      state.set('obj', value);
      state.setTimeout(Date.now() + timeoutMs);
      state.loadString(custom.script, '<string>');
      const results = state.runSync();
      // gopher-lua leaves every returned value on the stack and Argo CD reads the top one (l.Get(-1)).
      return decodeResult(results.length === 0 ? undefined : results[results.length - 1]);
    } catch (e) {
      return { status: 'Unknown', message: e instanceof Error ? e.message : String(e) };
    } finally {
      state.close();
    }
  };

  return {
    kinds: [...customizations.keys()],
    health(obj) {
      if (!lua) throw new Error('health checks are closed');
      const key = overrideKeyOf(obj);
      const custom = key === undefined ? undefined : customizations.get(key);
      if (!custom) return undefined;
      if (isDeleting(obj)) return { status: 'Progressing', message: 'Pending deletion' };
      return run(lua, custom, obj);
    },
    close() {
      lua = undefined;
    },
  };
}
