/**
 * Generated cluster repositories for the benchmarks: N LatticeCluster specs made from the bundled
 * examples (every provider and bootstrap in turn), renamed, each with three worker pools, plus the
 * examples' InfraProviders. The same N always gives the same files.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot } from './lib.js';

const examples = join(repoRoot, 'examples', 'clusters');

interface Spec {
  metadata: { name: string };
  spec: { nodes: { workerPools: Record<string, Record<string, unknown>> } };
}

/** The examples as parsed objects, each reshaped to three worker pools from its first pool. */
function exampleSpecs(): Spec[] {
  return readdirSync(examples)
    .filter((f) => f.endsWith('.yaml') && f !== 'infraproviders.yaml')
    .sort()
    .map((f) => {
      const spec = parse(readFileSync(join(examples, f), 'utf8')) as Spec;
      const first = Object.values(spec.spec.nodes.workerPools)[0] ?? {};
      // Keep the provider's instance type shape; fixed replicas so the pools are plain MachineDeployments.
      const { min: _min, max: _max, ...base } = first;
      // Copies, not shared objects: yaml's stringify writes a shared object once with an anchor and then
      // aliases, which hand-written specs rarely have.
      spec.spec.nodes.workerPools = {
        general: { ...structuredClone(base), replicas: 3 },
        batch: { ...structuredClone(base), replicas: 2, labels: { 'workload.example.com/tier': 'batch' } },
        edge: { ...structuredClone(base), replicas: 1, taints: [{ key: 'edge', value: 'true', effect: 'NoSchedule' }] },
      };
      return spec;
    });
}

/** The YAML text of N clusters, keyed by file name (`c00000.yaml`, ...), plus `infraproviders.yaml`. */
export function generatedSpecFiles(count: number): Map<string, string> {
  const bases = exampleSpecs();
  const files = new Map<string, string>([['infraproviders.yaml', readFileSync(join(examples, 'infraproviders.yaml'), 'utf8')]]);
  for (let i = 0; i < count; i++) {
    const base = bases[i % bases.length];
    if (!base) throw new Error('no examples to generate from');
    const name = `c${String(i).padStart(5, '0')}`;
    files.set(`${name}.yaml`, stringify(structuredClone({ ...base, metadata: { ...base.metadata, name } })));
  }
  return files;
}

/** Writes N generated clusters into a new temporary directory (or `dir`) and returns its path. */
export function writeGeneratedRepo(count: number, dir?: string): string {
  const target = dir ?? mkdtempSync(join(tmpdir(), `lattice-bench-${count}-`));
  mkdirSync(target, { recursive: true });
  for (const [file, text] of generatedSpecFiles(count)) writeFileSync(join(target, file), text);
  return target;
}
