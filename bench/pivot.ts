/**
 * The pivot of one cluster over loopback (sim/world.ts): the controller with its real cell, the agent in a
 * child sim API server, the `dev` example grown to 3 worker pools. Measures, per run, the wall time from the
 * pivot's start (the `pivot:start` checkpoint) to the move recorded (`pivot:record`) and to the parent's
 * copies cleaned up (`pivot:cleaned`), and the objects moved per second; then the unpivot from the
 * LatticeCluster's deletion to the teardown's start (`teardown:delete`). Bring-up (Cluster API, Argo CD) is
 * not measured. Each run is a fresh cluster in the same world.
 * Run: npx tsx bench/pivot.ts [--runs=3] [--quick]
 * Prints JSON lines (bench/lib.ts): the pivot's wall time against the M10 target (under 2 s), with the
 * move and the unpivot; floor: the same objects written into the child by one client, one request each
 * after the other (create, in owners-first order), which is the API work a move cannot avoid.
 */
import { join } from 'node:path';
import { CoreV1Api, KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { args, emit, quick, repoRoot } from './lib.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { specValidator } from '../cli/load.js';
import { readInputs } from '../cli/inputs.js';
import { capiObjects } from '../test/support/pivot.js';
import { argoCdObjectsOf, startWorld } from '../sim/world.js';

const runs = Number(args().flags.get('runs') ?? (quick ? 1 : 3));
const repo = repoRoot;
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

const results: { move: number; pivot: number; unpivot: number; objects: number; floor: number }[] = [];
let timeline: Record<string, number> = {};
for (let i = 0; i < runs; i++) {
  const name = `bench-${i}`;
  const pools = { general: { replicas: 2 }, batch: { replicas: 2 }, edge: { replicas: 1 } };
  const cluster: LatticeCluster = { ...dev, metadata: { ...dev.metadata, name }, spec: { ...dev.spec, nodes: { ...dev.spec.nodes, workerPools: pools } } } as LatticeCluster;
  const child = await world.addChild(name);
  void world.argo.sync(argoCdObjectsOf(cluster));
  await until(async () => (await child.sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'lattice-agent-bootstrap' })) !== undefined);
  await world.startAgent(name);
  await until(async () => (await phase(name)) === 'Ready');
  const moved = await capiObjects(child.sim.kc, `capi-${name}`);
  const floor = await writeFloor(child.sim.kc, moved);
  const deletedAt = performance.now();
  await world.parent.custom.deleteClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name });
  await until(async () => (await phase(name).then(() => false, () => true)));
  const m = marks.get(name) ?? new Map<string, number>();
  const at = (p: string) => m.get(p) ?? Number.NaN;
  results.push({ move: at('pivot:record') - at('pivot:start'), pivot: at('pivot:cleaned') - at('pivot:start'), unpivot: at('teardown:delete') - deletedAt, objects: moved.length, floor });
  // Where the time went: each checkpoint's first passage, in ms from the pivot's start.
  if (i === 0) timeline = Object.fromEntries([...m].filter(([p]) => p.startsWith('pivot:')).map(([p, t]) => [p.slice('pivot:'.length), Math.round(t - at('pivot:start'))]));
  await world.removeChild(name);
}
await world.stop();

const objects = results[0]?.objects ?? 0;
const params = { clusters: 1, pools: 3, objects };
const floor = { name: 'the same objects created one after the other in a fresh namespace of the child', samples: results.map((r) => r.floor) };
emit({ bench: 'pivot', name: 'pivot', params, unit: 'ms', samples: results.map((r) => r.pivot), floor, target: { max: 2000 },
  extra: { objects_per_s: Math.round(objects / (results.map((r) => r.pivot).sort((a, b) => a - b)[Math.floor(results.length / 2)] ?? Number.NaN) * 1000) } });
emit({ bench: 'pivot', name: 'move', params, unit: 'ms', samples: results.map((r) => r.move), floor, extra: timeline });
emit({ bench: 'pivot', name: 'unpivot', params, unit: 'ms', samples: results.map((r) => r.unpivot), floor });

/**
 * The floor: every moved object created again, one request after another, in a namespace of its own in
 * the child (server fields and status dropped, as the mover does), then the namespace removed.
 */
async function writeFloor(kc: KubeConfig, objects: readonly object[]): Promise<number> {
  const client = KubernetesObjectApi.makeApiClient(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = `floor-${Math.random().toString(36).slice(2, 8)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const started = performance.now();
  for (const o of objects) {
    const { apiVersion, kind, metadata, spec, data, stringData, type } = o as KubernetesObject & Record<string, unknown>;
    // Created paused, as the mover creates them, so the child's Cluster API leaves the copies alone.
    const meta = { name: metadata?.name, namespace, labels: metadata?.labels, annotations: { ...metadata?.annotations, 'cluster.x-k8s.io/paused': 'true' } };
    const pausedSpec = kind === 'Cluster' && typeof spec === 'object' && spec !== null ? { ...spec, paused: true } : spec;
    await client.create({ apiVersion, kind, metadata: meta, ...(pausedSpec !== undefined ? { spec: pausedSpec } : {}), ...(data !== undefined ? { data } : {}), ...(stringData !== undefined ? { stringData } : {}), ...(type !== undefined ? { type } : {}) } as KubernetesObject);
  }
  const ms = performance.now() - started;
  await core.deleteNamespace({ name: namespace });
  return ms;
}
