/**
 * Plugin options as Argo CD hands them to `argocd-cmp-server` commands (research/argocd-cmp.md §2.2):
 * parameters in ARGOCD_APP_PARAMETERS (JSON) and as PARAM_* variables, plugin env as ARGOCD_ENV_*.
 * Precedence: ARGOCD_APP_PARAMETERS, then PARAM_*, then ARGOCD_ENV_*. Unknown names are errors: a
 * typo must not silently render something else.
 */
import type { AddonOverrides } from '../core/plan/addons.js';
import { Component, type PluginSource } from '../core/flavor/argocd.js';
import { isRecord } from '../core/data.js';

export type Env = Readonly<Record<string, string | undefined>>;

export interface CmpOptions {
  readonly component: Component;
  /** The cluster whose agent component to print (component=agent). */
  readonly cluster?: string;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly argocdNamespace: string;
  readonly project: string;
  readonly overrides: AddonOverrides;
  /** Print nothing instead of failing when no cluster is selected (see PARAMETERS). */
  readonly allowEmpty: boolean;
  /** The app's own source, for the agent Application. */
  readonly source?: PluginSource;
}

type Kind = 'string' | 'array' | 'map';

interface ParameterDef {
  readonly name: string;
  readonly kind: Kind;
  readonly title: string;
  readonly tooltip: string;
  readonly default?: string;
}

/** Every parameter the plugin takes; `lattice cmp parameters` announces these. */
export const PARAMETERS: readonly ParameterDef[] = [
  { name: 'component', kind: 'string', title: 'Component', tooltip: 'clusters: the clusters of this directory (the app-of-apps); agent: the agent manifests of one cluster (used by the generated agent Application)', default: 'clusters' },
  { name: 'cluster', kind: 'string', title: 'Cluster', tooltip: 'with component=agent: the cluster whose agent to render' },
  { name: 'include', kind: 'array', title: 'Include clusters', tooltip: 'render only these clusters (default: all in the directory)' },
  { name: 'exclude', kind: 'array', title: 'Exclude clusters', tooltip: 'skip these clusters' },
  { name: 'argocd-namespace', kind: 'string', title: 'Argo CD namespace', tooltip: 'namespace of the generated Applications', default: 'argocd' },
  { name: 'project', kind: 'string', title: 'Project', tooltip: 'Argo CD project of the generated Applications', default: 'default' },
  { name: 'chart-repositories', kind: 'map', title: 'Chart repositories', tooltip: 'addon id → Helm repository URL (air-gapped mirrors)' },
  { name: 'chart-versions', kind: 'map', title: 'Chart versions', tooltip: 'addon id → chart version' },
  { name: 'allow-empty', kind: 'string', title: 'Allow empty output', tooltip: 'true: print nothing when no cluster is selected. Empty output makes Argo CD prune everything, so by default it is an error', default: 'false' },
];

type Value = string | readonly string[] | Readonly<Record<string, string>>;

/** PARAM_* name escaping, as Argo CD does it: upper case, anything outside [A-Z0-9_] becomes `_`. */
export const escapeParamName = (name: string): string => name.toUpperCase().replace(/[^A-Z0-9_]/g, '_');

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Reads and checks the options; every problem is reported, none is guessed around. */
export function readCmpOptions(env: Env, mapKeys: readonly string[]): { ok: true; value: CmpOptions } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const values = new Map<string, Value>();
  readEnvVars(env, values, errors);
  readParamVars(env, mapKeys, values);
  readJsonParameters(env, values, errors);

  const str = (name: string): string | undefined => {
    const v = values.get(name);
    if (v === undefined) return PARAMETERS.find((p) => p.name === name)?.default;
    if (typeof v !== 'string') return void errors.push(`parameter ${name}: expected a string`);
    return v;
  };
  const list = (name: string): readonly string[] => {
    const v = values.get(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) return (errors.push(`parameter ${name}: expected an array`), []);
    return v as readonly string[];
  };
  const map = (name: string): Readonly<Record<string, string>> | undefined => {
    const v = values.get(name);
    if (v === undefined) return undefined;
    if (typeof v === 'string' || Array.isArray(v)) return void errors.push(`parameter ${name}: expected a map`);
    return v as Readonly<Record<string, string>>;
  };

  const component = str('component');
  if (component !== Component.clusters && component !== Component.agent) errors.push(`parameter component: expected clusters or agent, found ${JSON.stringify(component)}`);
  const cluster = str('cluster');
  if (component === Component.agent && !cluster) errors.push('parameter cluster: required when component is agent');
  if (component === Component.clusters && cluster) errors.push('parameter cluster: only meaningful with component=agent (use include to select clusters)');
  const argocdNamespace = str('argocd-namespace') ?? 'argocd';
  if (!DNS_LABEL.test(argocdNamespace) || argocdNamespace.length > 63) errors.push(`parameter argocd-namespace: expected a namespace name, found ${JSON.stringify(argocdNamespace)}`);
  const project = str('project') ?? 'default';
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(project) || project.length > 253) errors.push(`parameter project: expected a project name, found ${JSON.stringify(project)}`);
  const allowEmpty = str('allow-empty');
  if (allowEmpty !== 'true' && allowEmpty !== 'false') errors.push(`parameter allow-empty: expected true or false, found ${JSON.stringify(allowEmpty)}`);
  const repositories = map('chart-repositories');
  const versions = map('chart-versions');
  const include = list('include');
  const exclude = list('exclude');
  const repoURL = env.ARGOCD_APP_SOURCE_REPO_URL;
  const path = env.ARGOCD_APP_SOURCE_PATH;
  const targetRevision = env.ARGOCD_APP_SOURCE_TARGET_REVISION;
  const source = repoURL && path !== undefined && targetRevision ? { repoURL, path: path === '' ? '.' : path, targetRevision } : undefined;

  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    value: {
      component: component as Component,
      ...(cluster ? { cluster } : {}),
      include, exclude, argocdNamespace, project,
      overrides: { ...(repositories ? { repositories } : {}), ...(versions ? { versions } : {}) },
      allowEmpty: allowEmpty === 'true',
      ...(source ? { source } : {}),
    },
  };
}

/** ARGOCD_ENV_<NAME>: lists comma-separated, maps `k=v,k=v` (env values are flat strings). */
function readEnvVars(env: Env, values: Map<string, Value>, errors: string[]): void {
  for (const p of PARAMETERS) {
    const raw = env[`ARGOCD_ENV_${escapeParamName(p.name)}`];
    if (raw === undefined) continue;
    const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (p.kind === 'string') values.set(p.name, raw.trim());
    else if (p.kind === 'array') values.set(p.name, items);
    else {
      const out: Record<string, string> = {};
      for (const item of items) {
        const eq = item.indexOf('=');
        if (eq <= 0) errors.push(`ARGOCD_ENV_${escapeParamName(p.name)}: expected key=value pairs, found ${JSON.stringify(item)}`);
        else out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
      }
      values.set(p.name, out);
    }
  }
}

/**
 * PARAM_* variables. Map keys are escaped by Argo CD, so they are matched back against the keys the
 * plugin knows (addon ids); a key it cannot match is ignored here and caught by ARGOCD_APP_PARAMETERS.
 */
function readParamVars(env: Env, mapKeys: readonly string[], values: Map<string, Value>): void {
  for (const p of PARAMETERS) {
    const prefix = `PARAM_${escapeParamName(p.name)}`;
    if (p.kind === 'string') {
      const v = env[prefix];
      if (v !== undefined) values.set(p.name, v);
    } else if (p.kind === 'array') {
      const items: string[] = [];
      for (let i = 0; env[`${prefix}_${i}`] !== undefined; i++) items.push(env[`${prefix}_${i}`] ?? '');
      if (items.length > 0) values.set(p.name, items);
    } else {
      const out: Record<string, string> = {};
      for (const key of mapKeys) {
        const v = env[`${prefix}_${escapeParamName(key)}`];
        if (v !== undefined) out[key] = v;
      }
      if (Object.keys(out).length > 0) values.set(p.name, out);
    }
  }
}

/** ARGOCD_APP_PARAMETERS: `[{"name":…, "string"|"array"|"map":…}]`, only what the Application sets. */
function readJsonParameters(env: Env, values: Map<string, Value>, errors: string[]): void {
  const raw = env.ARGOCD_APP_PARAMETERS;
  if (raw === undefined || raw.trim() === '') return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return void errors.push('ARGOCD_APP_PARAMETERS: not valid JSON');
  }
  if (!Array.isArray(parsed)) return void errors.push('ARGOCD_APP_PARAMETERS: expected a JSON array of parameters');
  const known = new Map(PARAMETERS.map((p) => [p.name, p]));
  parsed.forEach((entry: unknown, i) => {
    if (!isRecord(entry) || typeof entry.name !== 'string') return void errors.push(`ARGOCD_APP_PARAMETERS[${i}]: expected {"name": ..., "string"|"array"|"map": ...}`);
    const def = known.get(entry.name);
    if (!def) return void errors.push(`parameter ${JSON.stringify(entry.name)} is unknown (expected one of ${PARAMETERS.map((p) => p.name).join(', ')})`);
    const v = entry[def.kind];
    const ok = def.kind === 'string' ? typeof v === 'string'
      : def.kind === 'array' ? Array.isArray(v) && v.every((x) => typeof x === 'string')
        : isRecord(v) && Object.values(v).every((x) => typeof x === 'string');
    if (!ok) return void errors.push(`parameter ${def.name}: expected a ${def.kind} value`);
    values.set(def.name, v as Value);
  });
}

/** Parameter announcements for the Argo CD UI (`spec.parameters.dynamic` prints a JSON array). */
export function announcements(clusters: readonly string[], defaults: { repositories: Record<string, string>; versions: Record<string, string> }): unknown[] {
  return PARAMETERS.map((p) => {
    const base = { name: p.name, title: p.title, tooltip: p.tooltip };
    if (p.kind === 'string') return { ...base, ...(p.default !== undefined ? { string: p.default } : {}) };
    if (p.kind === 'array') return { ...base, collectionType: 'array', array: p.name === 'include' ? [...clusters] : [] };
    return { ...base, collectionType: 'map', map: p.name === 'chart-repositories' ? defaults.repositories : defaults.versions };
  });
}
