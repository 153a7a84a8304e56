/** Paths → validated spec set, shared by every command that reads specs (validate, render, cmp). */
import { RE2JS } from '@bufbuild/re2';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { KUBERNETES_FORMATS } from '../core/spec/formats.js';
import { fail, type Result } from '../core/spec/issues.js';
import { DEFAULT_SOURCE_LIMITS } from '../core/spec/source.js';
import { createSpecValidator, kindSchemas, type KindSchema, type SpecSet, type SpecValidator } from '../core/spec/validate.js';
import { createRenderer, type Renderer } from '../core/render/render.js';
import type { PrecompiledTemplates } from '../core/render/environment.js';
import { parseVersions } from '../core/render/versions.js';
import { crdDigest, loadCrdSources, loadCrds, loadTemplateSources } from './assets.js';
import { readInputs, type Inputs } from './inputs.js';

let validator: SpecValidator | undefined;
let renderer: Renderer | undefined;

/** One renderer per process: templates/ is read once, each template compiled once. */
export function specRenderer(): Renderer {
  if (renderer) return renderer;
  const templates = loadTemplateSources();
  const versions = parseVersions(parse(templates.get('versions.yaml') ?? '') as unknown);
  if (!versions.ok) throw new Error(`templates/versions.yaml is invalid: ${versions.errors.join('; ')}`);
  const precompiled = precompiledTemplates();
  renderer = createRenderer({ templates, versions: versions.value, ...(precompiled ? { precompiled } : {}) });
  return renderer;
}

/** Templates compiled at build time (dist/generated/templates.cjs); the renderer checks their digest. */
function precompiledTemplates(): PrecompiledTemplates | undefined {
  return loadBuilt(fileURLToPath(new URL('../generated/templates.cjs', import.meta.url)), (mod) => mod as PrecompiledTemplates);
}

/**
 * A module written by scripts/precompile.ts, made usable by `use`; undefined when absent. One that cannot be
 * loaded or used (a damaged build) is reported as a warning and left aside: the sources it was made from are
 * compiled instead, slower but the same, rather than every command failing.
 */
export function loadBuilt<T>(file: string, use: (mod: unknown) => T | undefined): T | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return use(createRequire(import.meta.url)(file));
  } catch (e) {
    process.emitWarning(`${file} is unusable (${e instanceof Error ? e.message : String(e)}); compiling from the sources instead: rebuild with npm run build`);
    return undefined;
  }
}

/** What scripts/precompile.ts writes: the digest of its crds/, our kinds, and their validators. */
interface PrecompiledModule {
  readonly crdDigest: string;
  readonly kinds: readonly { kind: string; namespaced: boolean; versions: string[] }[];
  create(re2: typeof RE2JS, formats: typeof KUBERNETES_FORMATS): Record<string, KindSchema['versions'] extends ReadonlyMap<string, infer V> ? V : never>;
}

/** Beside dist/cli/ in a build; absent when running from the TypeScript sources. */
const PRECOMPILED = fileURLToPath(new URL('../generated/spec-validators.cjs', import.meta.url));

/** The precompiled validators in `file`, when built from exactly these crds/. */
export function precompiledKinds(sources: ReadonlyMap<string, string>, file = PRECOMPILED): KindSchema[] | undefined {
  return loadBuilt(file, (loaded) => {
    const mod = loaded as PrecompiledModule;
    if (mod.crdDigest !== crdDigest(sources)) return undefined;
    const validators = mod.create(RE2JS, KUBERNETES_FORMATS);
    return mod.kinds.map((k) => ({
      kind: k.kind,
      namespaced: k.namespaced,
      versions: new Map(k.versions.map((v) => {
        const validate = validators[`${k.kind}/${v}`];
        if (typeof validate !== 'function') throw new Error(`no validator for ${k.kind}/${v}`);
        return [v, validate];
      })),
    }));
  });
}

/**
 * Compiling from crds/ needs ajv's compiler, a large module: it is imported only when no precompiled
 * validators match (running from sources, or crds/ changed since the build).
 */
const crdSources = loadCrdSources();
const precompiled = precompiledKinds(crdSources);
const openapi = precompiled ? undefined : await import('../core/spec/openapi.js');

/** One validator per process: precompiled at build time, or the CRD schemas compiled once. */
export function specValidator(): SpecValidator {
  if (validator) return validator;
  if (precompiled) return (validator = createSpecValidator(precompiled));
  if (!openapi) throw new Error('unreachable: no precompiled validators and no compiler');
  validator = createSpecValidator(kindSchemas(loadCrds(undefined, crdSources), openapi.ajvSchemaCompiler()));
  return validator;
}

export interface LoadedSpecs {
  readonly result: Result<SpecSet>;
  readonly fileCount: number;
}

/** Reads and validates the specs under `paths` (or validates `inputs` already read from them). */
export function loadSpecs(paths: readonly string[], cwd?: string, inputs: Inputs = readInputs(paths, { maxFileBytes: DEFAULT_SOURCE_LIMITS.maxFileBytes, ...(cwd ? { cwd } : {}) })): LoadedSpecs {
  const result = specValidator().validate(inputs.files);
  if (inputs.issues.length === 0) return { result, fileCount: inputs.files.length };
  return { result: fail([...inputs.issues, ...(result.ok ? [] : result.issues)]), fileCount: inputs.files.length + inputs.issues.length };
}
