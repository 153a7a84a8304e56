/** Paths → validated spec set, shared by every command that reads specs (validate, render, cmp). */
import { fail, type Result } from '../core/spec/issues.js';
import { DEFAULT_SOURCE_LIMITS } from '../core/spec/source.js';
import { createSpecValidator, type SpecSet, type SpecValidator } from '../core/spec/validate.js';
import { parse } from 'yaml';
import { createRenderer, type Renderer } from '../core/render/render.js';
import { parseVersions } from '../core/render/versions.js';
import { loadCrds, loadTemplateSources } from './assets.js';
import { readInputs } from './inputs.js';

let validator: SpecValidator | undefined;
let renderer: Renderer | undefined;

/** One renderer per process: templates/ is read and compiled once. */
export function specRenderer(): Renderer {
  if (renderer) return renderer;
  const templates = loadTemplateSources();
  const versions = parseVersions(parse(templates.get('versions.yaml') ?? '') as unknown);
  if (!versions.ok) throw new Error(`templates/versions.yaml is invalid: ${versions.errors.join('; ')}`);
  renderer = createRenderer({ templates, versions: versions.value });
  return renderer;
}

/** One validator per process: the CRD schemas are compiled once. */
export function specValidator(): SpecValidator {
  validator ??= createSpecValidator(loadCrds());
  return validator;
}

export interface LoadedSpecs {
  readonly result: Result<SpecSet>;
  readonly fileCount: number;
}

export function loadSpecs(paths: readonly string[], cwd?: string): LoadedSpecs {
  const inputs = readInputs(paths, { maxFileBytes: DEFAULT_SOURCE_LIMITS.maxFileBytes, ...(cwd ? { cwd } : {}) });
  const result = specValidator().validate(inputs.files);
  if (inputs.issues.length === 0) return { result, fileCount: inputs.files.length };
  return { result: fail([...inputs.issues, ...(result.ok ? [] : result.issues)]), fileCount: inputs.files.length + inputs.issues.length };
}
