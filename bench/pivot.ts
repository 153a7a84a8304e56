/**
 * The pivot of one cluster over loopback (sim/world.ts): the controller with its real cell, the agent in a
 * child sim API server, the `dev` example grown to 3 worker pools. Measures, per run, the wall time from the
 * pivot's start (the `pivot:start` checkpoint) to the move recorded (`pivot:record`) and to the parent's
 * copies cleaned up (`pivot:cleaned`), and the objects moved per second; then the unpivot from the
 * LatticeCluster's deletion to the teardown's start (`teardown:delete`). Bring-up (Cluster API, Argo CD) is
 * not measured. Each run is a fresh cluster in the same world.
 * Run: npx tsx bench/pivot.ts [runs=3]
 * Prints one line: `bench pivot runs=… objects=… move_ms_median=… pivot_ms_median=… pivot_ms_spread=… objects_per_s=… unpivot_ms_median=…`.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LatticeCluster } from '../core/spec/model.js';
import { specValidator } from '../cli/load.js';
import { readInputs } from '../cli/inputs.js';
import { capiObjects } from '../test/support/pivot.js';
import { argoCdObjectsOf, startWorld } from '../sim/world.js';

const runs = Number(process.argv[2] ?? 3);
const repo = fileURLToPath(new URL('..', import.meta.url));
const marks = new Map<string, Map<string, number>>();
const mark = (cluster: string, point: string) => {
  const m = marks.get(cluster) ?? new Map<string, number>();
  if (!m.has(point)) m.set(point, performance.now());
  marks.set(cluster, m);
};

const world = await startWorld({
  repo, upstreamCrds: join(repo, '..', 'shared', 'upstream-crds'),
  checkpoint: () => (point, cluster) => mark(cluster, point),
});
const validated = specValidator().validate(readInputs([join(repo, 'examples/clusters')], { maxFileBytes: 1 << 20 }).files);
if (!validated.ok) throw new Error('the examples are invalid');
const dev = validated.value.clusters.map((c) => c.object).find((c) => c.metadata.name === 'dev');
if (!dev) throw new Error('no dev example');

const until = async (check: () => Promise<boolean>, timeoutMs = 120_000) => {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('timed out');
};
const phase = async (name: string) => ((await world.parent.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name })) as { status?: { phase?: string } }).status?.phase;

const results: { move: number; pivot: number; unpivot: number; objects: number }[] = [];
for (let i = 0; i < runs; i++) {
  const name = `bench-${i}`;
  const pools = { general: { replicas: 2 }, batch: { replicas: 2 }, edge: { replicas: 1 } };
  const cluster: LatticeCluster = { ...dev, metadata: { ...dev.metadata, name }, spec: { ...dev.spec, nodes: { ...dev.spec.nodes, workerPools: pools } } } as LatticeCluster;
  const child = await world.addChild(name);
  void world.argo.sync(argoCdObjectsOf(cluster));
  await until(async () => (await child.sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'lattice-agent-bootstrap' })) !== undefined);
  await world.startAgent(name);
  await until(async () => (await phase(name)) === 'Ready');
  const objects = (await capiObjects(child.sim.kc, `capi-${name}`)).length;
  const deletedAt = performance.now();
  await world.parent.custom.deleteClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name });
  await until(async () => (await phase(name).then(() => false, () => true)));
  const m = marks.get(name) ?? new Map<string, number>();
  const at = (p: string) => m.get(p) ?? Number.NaN;
  results.push({ move: at('pivot:record') - at('pivot:start'), pivot: at('pivot:cleaned') - at('pivot:start'), unpivot: at('teardown:delete') - deletedAt, objects });
  await world.removeChild(name);
}
await world.stop();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const pivots = results.map((r) => r.pivot);
const objects = results[0]?.objects ?? 0;
const line = {
  runs, objects,
  move_ms_median: Math.round(median(results.map((r) => r.move))),
  pivot_ms_median: Math.round(median(pivots)),
  pivot_ms_spread: Math.round(Math.max(...pivots) - Math.min(...pivots)),
  objects_per_s: Math.round(objects / (median(pivots) / 1000)),
  unpivot_ms_median: Math.round(median(results.map((r) => r.unpivot))),
};
process.stdout.write(`bench pivot ${Object.entries(line).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
