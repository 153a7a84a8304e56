/** Paths and shared objects for tests. */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadCrds } from '../../cli/assets.js';
import { readInputs } from '../../cli/inputs.js';
import type { LatticeCluster } from '../../core/spec/model.js';
import { createSpecValidator, kindSchemas, type SpecValidator } from '../../core/spec/validate.js';
import { ajvSchemaCompiler, type SchemaNode } from '../../core/spec/openapi.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const SHARED = join(REPO, '..', 'shared');
export const CLI = join(REPO, 'dist', 'cli', 'main.js');

let validator: SpecValidator | undefined;
export function repoValidator(): SpecValidator {
  validator ??= createSpecValidator(kindSchemas(loadCrds(REPO), ajvSchemaCompiler()));
  return validator;
}

/** The openAPIV3Schema of one of our kinds, as written in crds/. */
export function crdSchema(kind: string): SchemaNode {
  for (const crd of loadCrds(REPO) as { spec: { names: { kind: string }; versions: { schema: { openAPIV3Schema: SchemaNode } }[] } }[]) {
    const version = crd.spec.versions[0];
    if (crd.spec.names.kind === kind && version) return version.schema.openAPIV3Schema;
  }
  throw new Error(`no CRD for ${kind}`);
}

/** The bundled example clusters, validated and defaulted. */
export function exampleClusters(): LatticeCluster[] {
  const inputs = readInputs([join(REPO, 'examples/clusters')], { maxFileBytes: 1 << 20 });
  const result = repoValidator().validate(inputs.files);
  if (!result.ok) throw new Error(`examples are invalid: ${result.issues.map((i) => i.code).join(', ')}`);
  return result.value.clusters.map((c) => c.object);
}
