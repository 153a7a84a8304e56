/**
 * The controller against N LatticeClusters (default 1,000; `--quick`: 100; `--clusters=N`): the real
 * Controller (leader election, supervised watches, work queue, reconcile) in this process, talking over
 * loopback HTTP through @kubernetes/client-node to a sim API server in a child process (as an API server is
 * another process; the two share the machine's two cores), which counts every request it serves.
 *
 * The world: the bundled examples (docker, AWS kubeadm and RKE2, OpenStack, Proxmox) renamed round-robin,
 * their InfraProviders and credentials Secrets, and for each cluster what Cluster API and Argo CD would have
 * made of it, already settled: each example is first brought to `ready` by the simulated Cluster API in a
 * scratch server, then its namespace (Cluster, control plane, MachineDeployments, Machines, Secrets...) is
 * copied per cluster with status, fresh uids and owner references remapped, straight into the server's
 * store (through HTTP it would take minutes and measure nothing of ours); each cluster's Argo CD
 * Applications are Healthy and Synced. There is no cell, so the agent is reported connected and nothing
 * pivots: a settled cluster ends in phase Ready. The LatticeClusters start without status.
 *
 * One JSON line per measurement (bench/lib.ts):
 *  - converge: from the controller's start to its last write, once every cluster shows its generation
 *    observed and nothing was written or reconciled for a second. Floor: one list and one status merge
 *    patch per cluster through the same client at the same concurrency, same server: the writes a
 *    convergence cannot avoid.
 *  - requests-per-reconcile-converging: requests per reconcile meanwhile (reads, writes and Events).
 *  - requests-per-noop-reconcile: a forced full resync of the settled clusters (every key queued, as the
 *    periodic resync does), requests at the server per reconcile. Floor: one GET per reconcile, the least
 *    a reconcile without caches makes (reads its object), measured the same way. Target: at most 2.
 *  - status-writes-per-resync: LatticeCluster status writes during that resync (other writes in `extra`).
 *    Floor: 0 by definition (nothing changed, so nothing needs writing). Target: 0.
 *  - heap: the controller's retained heap once converged (this process's heap with it running minus with
 *    it stopped, after a gc each). Floor: bare informers over the same watches (their caches alone).
 * Leader election (Lease) and watch requests are counted apart from the reconciles' requests.
 *
 * Run: npx tsx bench/controller.ts [--quick] [--clusters=N] [--resyncs=N]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CoreV1Api, CustomObjectsApi, KubeConfig, ListWatch, Watch, type KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { specRenderer, specValidator } from '../cli/load.js';
import { readInputs } from '../cli/inputs.js';
import { isRecord } from '../core/data.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { defaultConfig } from '../controller/config.js';
import { Controller } from '../controller/controller.js';
import { createKube } from '../controller/kube.js';
import { LATTICE_CLUSTER } from '../controller/resources.js';
import type { KubeconfigParts, KubeObject, RequestInfo } from '../sim/apiserver/index.js';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim } from '../sim/capi/index.js';
import { argoCdObjectsOf } from '../sim/world.js';
import { args, emit, quick, repoRoot, round } from './lib.js';

const { flags } = args();
const clusterCount = Number(flags.get('clusters') ?? (quick ? 100 : 1000));
const resyncs = Number(flags.get('resyncs') ?? (quick ? 2 : 3));
/** The controller's default --concurrency. */
const CONCURRENCY = 4;
const CRDS = [join(repoRoot, 'crds'), join(repoRoot, '..', 'shared', 'upstream-crds')];
const NAMESPACES = ['default', 'argocd', 'lattice-system', 'capa-system'];
const TEMPLATE_PREFIX = 'zqtpl-';

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const now = (): number => performance.timeOrigin + performance.now();
const mb = (bytes: number): number => round(bytes / 1024 / 1024, 1);
const log = (msg: string, fields: Record<string, unknown> = {}): void => {
  process.stderr.write(`${JSON.stringify({ msg, ...fields })}\n`);
};

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<void> {
  const end = now() + timeoutMs;
  while (!(await check())) {
    if (now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ---------------------------------------------------------------------------------------------------------
// The server's side (child process, `--role=sim`): the world, and the requests counted.

/** Requests as the server counted them since the last reset. */
interface Counts {
  /** Everything but leader election (Leases) and watches: what reconciles (and Events) cost. */
  requests: number;
  byVerb: Record<string, number>;
  /** Creates, updates, patches and deletes among them, and those of a LatticeCluster's status. */
  writes: number;
  statusWrites: number;
  leases: number;
  watches: number;
  /** When the last write arrived (epoch ms), 0 if none. */
  lastWriteAt: number;
}
const newCounts = (): Counts => ({ requests: 0, byVerb: {}, writes: 0, statusWrites: 0, leases: 0, watches: 0, lastWriteAt: 0 });
const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

function count(counts: Counts, info: RequestInfo): void {
  if (info.group === 'coordination.k8s.io') {
    counts.leases++;
    return;
  }
  if (info.verb === 'watch') {
    counts.watches++;
    return;
  }
  counts.requests++;
  const key = `${info.verb} ${info.resource ?? info.path}${info.subresource ? `/${info.subresource}` : ''}`;
  counts.byVerb[key] = (counts.byVerb[key] ?? 0) + 1;
  if (WRITE_VERBS.has(info.verb)) {
    counts.writes++;
    counts.lastWriteAt = now();
    if (info.resource === 'latticeclusters' && info.subresource === 'status') counts.statusWrites++;
  }
}

interface Template {
  readonly token: string;
  readonly objects: KubeObject[];
}

/** Each example, settled by the simulated Cluster API in a scratch server: its namespace and Applications. */
async function settledTemplates(examples: readonly LatticeCluster[]): Promise<Template[]> {
  const renderer = specRenderer();
  const scratch = await startSim({ crds: CRDS, namespaces: NAMESPACES });
  try {
    const named = examples.map((e) => ({ ...e, metadata: { ...e.metadata, name: `${TEMPLATE_PREFIX}${e.metadata.name}` } }) as LatticeCluster);
    for (const c of named) {
      const text = renderer.renderCluster(c).map((d) => `---\n${d.text}`).join('');
      for (const doc of parseAllDocuments(text)) await scratch.objects.create(doc.toJS() as KubernetesObject);
    }
    const capi = createCapiSim({ kubeConfig: scratch.kc, apiVersions: renderer.versions.apiVersions });
    for (let pass = 0; ; pass++) {
      const report = await capi.reconcileOnce();
      if (report.clusters.every((c) => c.state === 'ready')) break;
      if (pass > 10) throw new Error('the simulated Cluster API did not settle the examples');
    }
    const store = scratch.server.store;
    const nsType = store.registry.resolveKind('v1', 'Namespace');
    const lcType = store.registry.resolveKind('lattice.dev/v1alpha1', 'LatticeCluster');
    if (!nsType || !lcType) throw new Error('the scratch server serves no Namespace or LatticeCluster');
    return named.map((c) => {
      const token = c.metadata.name;
      const namespace = `capi-${token}`;
      const objects: KubeObject[] = [];
      for (const type of store.registry.all()) {
        if (type.namespaced) objects.push(...store.list(type, { namespace }).items);
      }
      const apps = argoCdObjectsOf(c).filter((o) => o.kind === 'Application').map((o) => ({
        ...o, status: { health: { status: 'Healthy' }, sync: { status: 'Synced' } },
      }) as unknown as KubeObject);
      return { token, objects: [store.get(nsType.type, undefined, namespace), store.get(lcType.type, undefined, token), ...objects, ...apps] };
    });
  } finally {
    await scratch.server.close();
  }
}

/**
 * Copies a template as cluster `name` into the store: names, labels and references renamed, uids fresh and
 * owner references pointing at the copies, status kept (written through the status subresource where there
 * is one, as the controllers owning it would), the LatticeCluster without status. Returns the objects made.
 */
function copyInto(sim: SimClients, template: Template, name: string): number {
  const store = sim.server.store;
  // The store keeps objects at their storage version; each is written back at the version Lattice renders
  // it (CAPMOX's v1alpha1 shapes do not validate as v1alpha2: the sim converts nothing).
  const versions = specRenderer().versions.apiVersions;
  const renamed = (JSON.parse(JSON.stringify(template.objects).replaceAll(template.token, name)) as KubeObject[])
    .map((o): KubeObject => ({ ...o, apiVersion: versions[o.kind ?? ''] ?? o.apiVersion }));
  const uids = new Map<string, string>();
  const created: { resolved: NonNullable<ReturnType<typeof store.registry.resolveKind>>; obj: KubeObject; source: KubeObject }[] = [];
  for (const source of renamed) {
    const resolved = store.registry.resolveKind(source.apiVersion ?? '', source.kind ?? '');
    if (!resolved) throw new Error(`not served: ${source.apiVersion ?? ''} ${source.kind ?? ''}`);
    const { uid, resourceVersion: _rv, creationTimestamp: _ts, ownerReferences: _owners, generation: _gen, ...meta } = source.metadata;
    const { status: _status, ...body } = source;
    const obj = store.create(resolved.type, resolved.version, meta.namespace, { ...body, metadata: meta } as KubeObject);
    if (uid) uids.set(uid, obj.metadata.uid ?? '');
    created.push({ resolved, obj, source });
  }
  for (const { resolved: { type, version }, obj, source } of created) {
    const at = (o: KubeObject): KubeObject => ({ ...o, apiVersion: source.apiVersion });
    let current = at(obj);
    const owners = source.metadata.ownerReferences;
    if (owners && owners.length > 0) {
      const ownerReferences = owners.map((o) => ({ ...o, uid: uids.get(o.uid) ?? o.uid }));
      current = at(store.update(type, version, current.metadata.namespace, current.metadata.name ?? '', { ...current, metadata: { ...current.metadata, ownerReferences } }).object);
    }
    if (source.status === undefined || source.kind === 'LatticeCluster') continue;
    store.update(type, version, current.metadata.namespace, current.metadata.name ?? '', { ...current, status: source.status }, version.status ? { subresource: 'status' } : {});
  }
  return created.length;
}

type SimRequest = { id: number; op: 'build' } | { id: number; op: 'counts'; reset: boolean } | { id: number; op: 'phases' } | { id: number; op: 'close' };

/** The child process: builds the world in its server and answers the bench's questions over IPC. */
async function serveSim(): Promise<void> {
  let counts = newCounts();
  let sim: SimClients | undefined;
  const reply = (id: number, value: unknown) => process.send?.({ id, value });
  process.on('message', (raw: SimRequest) => {
    void (async () => {
      if (raw.op === 'build') {
        const validated = specValidator().validate(readInputs([join(repoRoot, 'examples/clusters')], { maxFileBytes: 1 << 20 }).files);
        if (!validated.ok) throw new Error('the examples are invalid');
        const templates = await settledTemplates(validated.value.clusters.map((c) => c.object));
        sim = await startSim({ crds: CRDS, namespaces: NAMESPACES, onRequest: (info) => count(counts, info) });
        for (const p of validated.value.infraProviders.map((x) => x.object as unknown as Record<string, unknown>)) {
          await sim.objects.create(p as unknown as KubernetesObject);
          const secret = rec(rec(p.spec).credentialsSecretRef).name;
          if (typeof secret === 'string') {
            const data = { AccessKeyID: Buffer.from('AKIAEXAMPLE').toString('base64'), SecretAccessKey: Buffer.from('not-a-secret').toString('base64') };
            await sim.core.createNamespacedSecret({ namespace: 'lattice-system', body: { metadata: { name: secret }, data } });
          }
        }
        const names: string[] = [];
        let objects = 0;
        for (let i = 0; i < clusterCount; i++) {
          const template = templates[i % templates.length];
          if (!template) throw new Error('no templates');
          const name = `${template.token.slice(TEMPLATE_PREFIX.length)}-${String(i).padStart(4, '0')}`;
          objects += copyInto(sim, template, name);
          names.push(name);
        }
        counts = newCounts();
        return reply(raw.id, { kubeconfig: sim.server.kubeconfigOptions(), names, objects });
      }
      if (raw.op === 'counts') {
        const out = counts;
        if (raw.reset) counts = newCounts();
        return reply(raw.id, out);
      }
      if (raw.op === 'phases') {
        // Read in-process: no request counted.
        const store = sim?.server.store;
        const type = store?.registry.resolveKind('lattice.dev/v1alpha1', 'LatticeCluster')?.type;
        const phases: Record<string, number> = {};
        for (const o of type && store ? store.list(type, {}).items : []) {
          const status = rec(o.status);
          const key = status.observedGeneration === o.metadata.generation && typeof status.phase === 'string' ? status.phase : 'unobserved';
          phases[key] = (phases[key] ?? 0) + 1;
        }
        return reply(raw.id, phases);
      }
      await sim?.server.close();
      reply(raw.id, true);
      process.disconnect();
    })().catch((e: unknown) => {
      process.stderr.write(`${String(e instanceof Error ? e.stack : e)}\n`);
      process.exit(1);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// The bench's side: the controller, and the measurements.

class SimProcess {
  private next = 0;
  private readonly pending = new Map<number, (v: unknown) => void>();

  constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { id: number; value: unknown }) => {
      this.pending.get(m.id)?.(m.value);
      this.pending.delete(m.id);
    });
    child.on('exit', (code) => {
      if (this.pending.size > 0) throw new Error(`the sim process exited (${code ?? 'signal'}) with questions pending`);
    });
  }

  ask<T>(op: 'build' | 'phases' | 'close'): Promise<T>;
  ask<T>(op: 'counts', reset: boolean): Promise<T>;
  ask<T>(op: SimRequest['op'], reset = false): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve) => {
      this.pending.set(id, resolve as (v: unknown) => void);
      this.child.send(op === 'counts' ? { id, op, reset } : { id, op });
    });
  }

  counts(reset = false): Promise<Counts> {
    return this.ask<Counts>('counts', reset);
  }
}

function startSimProcess(): SimProcess {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv.filter((a) => a !== '--expose-gc'), script, '--role=sim', ...process.argv.slice(2)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  // Never left behind, whatever ends this process.
  process.on('exit', () => child.kill());
  return new SimProcess(child);
}

/** The controller's reconciles by pass (`cached`, `cached-then-live`): how many needed the API server. */
async function passes(controller: Controller): Promise<Record<string, number>> {
  const metric = await controller.metrics.reconcilePasses.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.pass), v.value]));
}

function startController(kc: KubeConfig, onReconciled: () => void): { controller: Controller; warnings: Map<string, number> } {
  // Warnings are counted by message (a conflict retried, a watch restarted), not printed.
  const warnings = new Map<string, number>();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        const msg = String(rec(JSON.parse(line) as unknown).msg);
        warnings.set(msg, (warnings.get(msg) ?? 0) + 1);
      }
      done();
    },
  });
  const controller = new Controller({
    kubeConfig: kc,
    config: defaultConfig({
      identity: 'bench', concurrency: CONCURRENCY,
      // Periodic requeues far away: convergence is driven by watch events alone, and the resync is forced.
      resyncIntervalMs: 3_600_000, progressIntervalMs: 3_600_000, waitIntervalMs: 2000,
      retryBaseMs: 100, retryMaxMs: 2000, watchBackoffBaseMs: 100, watchBackoffMaxMs: 2000, provisioningTimeoutMs: 0,
    }),
    log: pino({ level: 'warn' }, sink),
    validator: specValidator(),
    renderer: specRenderer(),
    // No cell in this process: the agent is reported connected, so a settled cluster reaches Ready (no pivot).
    agent: () => ({ connected: true, message: 'agent connected (bench)' }),
    onReconciled,
  });
  controller.start();
  return { controller, warnings };
}

/** A full gc before each heap reading: node's own with --expose-gc, else one obtained by setting the flag now. */
const collector: (() => void) | undefined = (globalThis as { gc?: () => void }).gc ?? (() => {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
})();
const gc = (): void => {
  collector?.();
  collector?.();
};

/** The controller's watches as bare informers: same paths, selectors and list calls, nothing else. */
async function bareInformerHeap(kc: KubeConfig): Promise<number> {
  const v = specRenderer().versions.apiVersions;
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const at = (kind: string) => {
    const [group = '', version = ''] = (v[kind] ?? '').split('/');
    return { group, version };
  };
  const sel = (labelSelector?: string) => (labelSelector ? { labelSelector } : {});
  const crd = (g: { group: string; version: string }, plural: string, labelSelector?: string, namespace?: string) => ({
    path: `/apis/${g.group}/${g.version}${namespace ? `/namespaces/${namespace}` : ''}/${plural}`,
    labelSelector,
    list: () => (namespace
      ? custom.listNamespacedCustomObject({ ...g, namespace, plural, ...sel(labelSelector) })
      : custom.listClusterCustomObject({ ...g, plural, ...sel(labelSelector) })) as Promise<never>,
  });
  const secrets = (labelSelector?: string, namespace?: string) => ({
    path: `/api/v1${namespace ? `/namespaces/${namespace}` : ''}/secrets`,
    labelSelector,
    list: () => (namespace ? core.listNamespacedSecret({ namespace, ...sel(labelSelector) }) : core.listSecretForAllNamespaces(sel(labelSelector))) as Promise<never>,
  });
  const lattice = { group: 'lattice.dev', version: 'v1alpha1' };
  const informers: ListWatch<KubernetesObject>[] = [
    crd(lattice, 'latticeclusters'),
    crd(lattice, 'infraproviders', undefined, 'lattice-system'),
    secrets(undefined, 'lattice-system'),
    crd(at('Cluster'), 'clusters', 'lattice.dev/cluster'),
    crd(at('MachineDeployment'), 'machinedeployments', 'lattice.dev/cluster'),
    crd(at('KubeadmControlPlane'), 'kubeadmcontrolplanes', 'lattice.dev/cluster'),
    crd(at('RKE2ControlPlane'), 'rke2controlplanes', 'lattice.dev/cluster'),
    secrets('cluster.x-k8s.io/cluster-name'),
    secrets('app.kubernetes.io/managed-by=lattice-controller'),
    crd(at('Application'), 'applications', 'lattice.dev/cluster', 'argocd'),
  ].map((s) => new ListWatch<KubernetesObject>(s.path, new Watch(kc), s.list, false, s.labelSelector));
  gc();
  const before = process.memoryUsage().heapUsed;
  await Promise.all(informers.map((i) => i.start()));
  gc();
  const held = process.memoryUsage().heapUsed - before;
  await Promise.all(informers.map((i) => i.stop()));
  return held;
}

async function runBench(): Promise<void> {
  const setupStarted = now();
  const sim = startSimProcess();
  const world = await sim.ask<{ kubeconfig: KubeconfigParts; names: string[]; objects: number }>('build');
  const kc = new KubeConfig();
  kc.loadFromOptions(world.kubeconfig);
  const names = world.names;
  log('world built', { clusters: names.length, objects: world.objects, ms: Math.round(now() - setupStarted) });
  const params = { clusters: clusterCount, concurrency: CONCURRENCY, objects: world.objects };

  let reconciles = 0;
  let lastReconcileAt = 0;
  gc();
  const heapBefore = process.memoryUsage();
  await sim.counts(true);
  const started = now();
  const { controller, warnings } = startController(kc, () => {
    reconciles++;
    lastReconcileAt = now();
  });

  // Converged: every status observes its generation, and neither a write nor a reconcile for a second.
  let converging = newCounts();
  let phases: Record<string, number> = {};
  await until('convergence', async () => {
    converging = await sim.counts();
    if (now() - Math.max(converging.lastWriteAt, lastReconcileAt, started) < 1000) return false;
    phases = await sim.ask<Record<string, number>>('phases');
    return (phases.unobserved ?? 0) === 0;
  }, 300_000, 250);
  const convergeMs = converging.lastWriteAt - started;
  const convergeReconciles = reconciles;
  const convergePasses = await passes(controller);
  log('converged', { ms: Math.round(convergeMs), reconciles, phases });

  // Forced resyncs of the settled clusters.
  const rounds: { requests: number; reconciles: number; statusWrites: number; writes: number; byVerb: Record<string, number>; ms: number }[] = [];
  const passesBefore = await passes(controller);
  for (let r = 0; r < resyncs; r++) {
    await sim.counts(true);
    const before = reconciles;
    const t = now();
    const queued = controller.resync();
    await until('the resync', () => reconciles - before >= queued && now() - lastReconcileAt > 300, 120_000, 50);
    const c = await sim.counts(true);
    rounds.push({ requests: c.requests, reconciles: reconciles - before, statusWrites: c.statusWrites, writes: c.writes, byVerb: c.byVerb, ms: lastReconcileAt - t });
    log('resync', { round: r, ...rounds[rounds.length - 1] });
  }

  const passesAfter = await passes(controller);
  const resyncPasses = Object.fromEntries(Object.entries(passesAfter).map(([k, v]) => [k, v - (passesBefore[k] ?? 0)]));

  // The controller's retained heap: running, then stopped (caches, queue and clients released).
  gc();
  const heapRunning = process.memoryUsage();
  await controller.stop();
  gc();
  const heapStopped = process.memoryUsage();
  const informerHeap = await bareInformerHeap(kc);

  // Request floors, through the same client: one GET per cluster; then a list and one status merge patch
  // per cluster, CONCURRENCY at a time (the convergence floor).
  const kube = createKube(kc, { fieldManager: 'bench' });
  await sim.counts(true);
  for (const name of names) await kube.get(LATTICE_CLUSTER, name);
  const getFloor = (await sim.counts(true)).requests / names.length;
  const floorStarted = now();
  const queue = await kube.list(LATTICE_CLUSTER);
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    for (let o = queue.shift(); o; o = queue.shift()) {
      await kube.mergePatch(LATTICE_CLUSTER, o.metadata.name, undefined, { metadata: { resourceVersion: o.metadata.resourceVersion }, status: { lastHeartbeat: new Date().toISOString() } }, { status: true });
    }
  }));
  const floorMs = now() - floorStarted;
  await sim.ask('close');

  const per = (requests: number, n: number) => round(requests / Math.max(1, n), 3);
  const verbs = (byVerb: Record<string, number>, n: number) => JSON.stringify(Object.fromEntries(Object.entries(byVerb).sort((a, b) => b[1] - a[1]).map(([k, c]) => [k, per(c, n)])));
  const first = rounds[0];
  emit({
    bench: 'controller', name: 'converge', params, unit: 'ms', samples: [convergeMs],
    floor: { name: 'list-and-one-status-patch-per-cluster', samples: [floorMs] },
    extra: {
      reconciles: convergeReconciles, requests: converging.requests, writes: converging.writes, statusWrites: converging.statusWrites,
      watchRequests: converging.watches, leaseRequests: converging.leases, phases: JSON.stringify(phases), passes: JSON.stringify(convergePasses),
      warnings: JSON.stringify(Object.fromEntries(warnings)),
    },
  });
  emit({
    bench: 'controller', name: 'requests-per-reconcile-converging', params, unit: 'requests', samples: [per(converging.requests, convergeReconciles)],
    floor: { name: 'one-get-per-reconcile', samples: [getFloor] },
    extra: { byVerbPerReconcile: verbs(converging.byVerb, convergeReconciles) },
  });
  emit({
    bench: 'controller', name: 'requests-per-noop-reconcile', params: { ...params, resyncs }, unit: 'requests', samples: rounds.map((s) => per(s.requests, s.reconciles)),
    floor: { name: 'one-get-per-reconcile', samples: [getFloor] },
    target: { max: 2 },
    extra: {
      reconciles: rounds.reduce((n, s) => n + s.reconciles, 0),
      resyncMs: JSON.stringify(rounds.map((s) => Math.round(s.ms))), passes: JSON.stringify(resyncPasses),
      byVerbPerReconcile: first ? verbs(first.byVerb, first.reconciles) : '{}',
    },
  });
  emit({
    bench: 'controller', name: 'status-writes-per-resync', params: { ...params, resyncs }, unit: 'writes', samples: rounds.map((s) => s.statusWrites),
    floor: { name: 'nothing-changed', samples: rounds.map(() => 0) },
    target: { max: 0 },
    extra: { otherWrites: rounds.reduce((n, s) => n + s.writes - s.statusWrites, 0) },
  });
  emit({
    bench: 'controller', name: 'heap', params, unit: 'MiB', samples: [mb(heapRunning.heapUsed - heapStopped.heapUsed)],
    floor: { name: 'bare-informers-same-watches', samples: [mb(informerHeap)] },
    extra: {
      gc: collector !== undefined,
      heapMbBefore: mb(heapBefore.heapUsed), heapMbRunning: mb(heapRunning.heapUsed), rssMbRunning: mb(heapRunning.rss),
    },
  });
}

if (flags.get('role') === 'sim') await serveSim();
else await runBench();
