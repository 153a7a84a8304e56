/**
 * Generates core/spec/model.generated.ts from the CRDs in crds/ (run `npm run gen:types`).
 * The model is what `core` returns after defaulting, so a property with a schema default is required in it.
 * A test regenerates the file and fails if the committed copy is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { compile } from 'json-schema-to-typescript';
import { structuralToJsonSchema, type SchemaNode } from '../core/spec/openapi.js';
import { loadCrds } from '../cli/assets.js';

const root = fileURLToPath(new URL('..', import.meta.url));
export const GENERATED_PATH = join(root, 'core/spec/model.generated.ts');

/**
 * Names for nested schemas, by property path from the root (`*` is a map value, `[]` a list item);
 * `=Name` reuses a type declared at an earlier path (the CRD shares the schema through a YAML anchor).
 */
const TITLES: Record<string, Record<string, string>> = {
  LatticeCluster: {
    spec: 'LatticeClusterSpec',
    status: 'LatticeClusterStatus',
    'spec.provider': 'ProviderSpec',
    'spec.provider.kubernetes': 'KubernetesSpec',
    'spec.provider.config': 'ProviderConfig',
    'spec.provider.config.docker': 'DockerConfig',
    'spec.provider.config.aws': 'AwsConfig',
    'spec.provider.config.proxmox': 'ProxmoxConfig',
    'spec.provider.config.proxmox.ipv4Pool': 'Ipv4Pool',
    'spec.provider.config.openstack': 'OpenStackConfig',
    'spec.nodes': 'NodesSpec',
    'spec.nodes.controlPlane': 'ControlPlaneSpec',
    'spec.nodes.controlPlane.instanceType': 'InstanceType',
    'spec.nodes.controlPlane.rootVolume': 'RootVolume',
    'spec.nodes.workerPools.*': 'WorkerPoolSpec',
    'spec.nodes.workerPools.*.instanceType': '=InstanceType',
    'spec.nodes.workerPools.*.rootVolume': '=RootVolume',
    'spec.nodes.workerPools.*.taints[]': 'Taint',
    'spec.networking': 'NetworkingSpec',
    'spec.parentConfig': 'ParentConfig',
    'status.conditions[]': 'Condition',
    'status.workerPools.*': 'WorkerPoolStatus',
    'status.childrenHealth[]': 'ChildHealth',
    'status.bootstrapToken': 'BootstrapTokenStatus',
  },
  InfraProvider: { spec: 'InfraProviderSpec', status: 'InfraProviderStatus', 'spec.credentialsSecretRef': 'SecretReference', 'status.conditions[]': 'Condition' },
};

const METADATA = '{ name: string; namespace?: string; labels?: { [k: string]: string }; annotations?: { [k: string]: string }; [k: string]: unknown }';

function decorate(node: SchemaNode, path: string, titles: Record<string, string>): SchemaNode {
  const title = titles[path];
  if (title?.startsWith('=')) return { tsType: title.slice(1) };
  const out: SchemaNode = { ...node };
  if (title) out.title = title;
  delete out.description;
  const props = node.properties as Record<string, SchemaNode> | undefined;
  if (props) {
    out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, decorate(v, path ? `${path}.${k}` : k, titles)]));
    const defaulted = Object.entries(props).filter(([, v]) => v.default !== undefined).map(([k]) => k);
    out.required = [...new Set([...((node.required as string[]) ?? []), ...defaulted])];
  }
  if (node.additionalProperties && typeof node.additionalProperties === 'object') {
    out.additionalProperties = decorate(node.additionalProperties as SchemaNode, `${path}.*`, titles);
  }
  if (node.items && typeof node.items === 'object') out.items = decorate(node.items as SchemaNode, `${path}[]`, titles);
  return out;
}

/** Renders the TypeScript source for every kind in crds/. */
export async function generateModelTypes(): Promise<string> {
  const parts: string[] = [];
  for (const doc of loadCrds(root)) {
    const crd = doc as { spec: { names: { kind: string }; versions: { schema: { openAPIV3Schema: SchemaNode } }[] } };
    const kind = crd.spec.names.kind;
    const version = crd.spec.versions[0];
    if (!version) continue;
    const schema = decorate(structuralToJsonSchema(version.schema.openAPIV3Schema), '', TITLES[kind] ?? {});
    schema.title = kind;
    const props = schema.properties as Record<string, SchemaNode>;
    props.metadata = { tsType: METADATA };
    props.apiVersion = { type: 'string', const: 'lattice.dev/v1alpha1', tsType: "'lattice.dev/v1alpha1'" };
    props.kind = { type: 'string', tsType: `'${kind}'` };
    schema.required = ['apiVersion', 'kind', 'metadata', ...((schema.required as string[]) ?? [])];
    const ts = await compile(schema as never, kind, { bannerComment: '', additionalProperties: false, strictIndexSignatures: true, format: true, declareExternallyReferenced: true });
    parts.push(ts);
  }
  const body = dedupe(parts.join('\n'));
  return `// Generated from crds/ by scripts/gen-model-types.ts (npm run gen:types). Do not edit.\n\n${body}`;
}

/** json-schema-to-typescript emits shared titles once per kind; keep the first declaration of each. */
function dedupe(source: string): string {
  const seen = new Set<string>();
  const blocks = source.split(/\n(?=export )/);
  return blocks.filter((b) => {
    const name = /^export (?:interface|type) (\w+)/.exec(b.trim())?.[1];
    if (!name) return true;
    if (seen.has(name)) return false;
    seen.add(name);
    return true;
  }).join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(GENERATED_PATH, await generateModelTypes());
}
