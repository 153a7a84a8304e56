/**
 * The child's side of the pivot against two sim API servers with the upstream Cluster API CRDs: a parent
 * holding the `dev` example as the simulated Cluster API leaves it once ready (Machines, MachineSets,
 * KubeadmConfigs, certificate and bootstrap Secrets...), and a child. The parent's part of the pivot is played
 * by hand here (pause, graph, batches, as controller/pivot.ts does it); the handlers are called directly, a
 * new handler set standing for a restarted agent, and once through a real cell and agent on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parse } from 'yaml';
import { pino } from 'pino';
import type { KubernetesObject } from '@kubernetes/client-node';
import { specRenderer, specValidator } from '../cli/load.js';
import { isCapiCluster, isPaused, MOVE, moveGraph, type ListedObject, type MoveNode } from '../core/move/graph.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { InMemoryTokenStore, issueBootstrapToken } from '../controller/cell/bootstrap.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { specSyncCommand } from '../controller/cell/commands.js';
import type { AgentMessage, DecodedCommand, MoveObject, UnpivotBatch } from '../controller/cell/protocol.js';
import { bootstrapSecret, parentEndpoints } from '../controller/cell/secrets.js';
import { recordingLogger } from '../controller/cell/testing.js';
import { createMover, type Mover } from '../kube/mover.js';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { REPO, SHARED, exampleClusters } from '../test/support/repo.js';
import { createAgent, type Agent } from './agent.js';
import type { CommandContext } from './dispatch.js';
import { pivotHandlers, type PivotHandlers } from './pivot.js';
import { emptySpecState } from './spec.js';
import { secretSelfManagementStore, STATE_KEYS } from './state.js';

const NS = 'capi-dev';
const AGENT_NS = 'lattice-system';
const MOVE_ID = 'move-1';
const renderer = specRenderer();
const log = pino({ level: 'silent' });
const dev = (): LatticeCluster => {
  const found = exampleClusters().find((c) => c.metadata.name === 'dev');
  if (!found) throw new Error('no dev example');
  return structuredClone(found);
};

let parent: SimClients;
let child: SimClients;
let parentMover: Mover;
let childMover: Mover;
let childCapi: CapiSim;
/** The parent's move graph, paused, as the cell sends it. */
let batches: readonly (readonly MoveNode[])[];

/** A fresh handler set: a restarted agent (new mover, state read again from the child, new queue). */
function restartedAgent(options: { stateSecret?: string } = {}): PivotHandlers {
  const agentLog = recordingLogger().log;
  return pivotHandlers({
    cluster: 'dev',
    mover: createMover({ kubeConfig: child.kc, fieldManager: 'lattice-agent', log: agentLog }),
    state: secretSelfManagementStore({ core: child.core, namespace: AGENT_NS, log: agentLog, ...(options.stateSecret ? { name: options.stateSecret } : {}) }),
    spec: emptySpecState(),
    log: agentLog,
  });
}

const wire = (n: MoveNode): MoveObject => ({
  sourceUid: n.uid,
  manifest: Buffer.from(JSON.stringify(n.object)),
  owners: n.owners.map((r) => ({ sourceUid: r.uid, apiVersion: r.apiVersion, kind: r.kind, name: r.name, controller: r.controller ?? false, blockOwnerDeletion: r.blockOwnerDeletion ?? false })),
});
const moveBatch = (id: string, index: number, objects: MoveObject[] = (batches[index] ?? []).map(wire)): DecodedCommand => ({
  id, body: 'moveBatch', moveBatch: { moveId: MOVE_ID, batchIndex: index, totalBatches: batches.length, targetNamespace: NS, objects },
});
const moveComplete = (id: string, manifests: Buffer[] = []): DecodedCommand => ({ id, body: 'moveComplete', moveComplete: { moveId: MOVE_ID, targetNamespace: NS, manifests } });
const specSync = (id: string, cluster: LatticeCluster, generation: number): DecodedCommand => {
  const body = specSyncCommand({ ...cluster, metadata: { ...cluster.metadata, generation } });
  return { id, body: 'specSync', specSync: 'specSync' in body ? body.specSync : null };
};
const releaseCopies = (id: string): DecodedCommand => ({ id, body: 'releaseCopies', releaseCopies: { namespace: NS } });
const unpivotRequest = (id: string): DecodedCommand => ({ id, body: 'unpivotRequest', unpivotRequest: { namespace: NS } });
/** A session that records what a handler writes on it. */
const capture = (open = true): CommandContext & { sent: AgentMessage[] } => {
  const sent: AgentMessage[] = [];
  return { sent, send: (m) => open && sent.push(m) > 0 };
};

const childObjects = (): Promise<ListedObject[]> => childMover.list(NS);
async function childState(): Promise<Record<string, string>> {
  const secret = await child.core.readNamespacedSecret({ namespace: AGENT_NS, name: 'lattice-agent-state' });
  return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}
const childMachineDeployment = async (): Promise<ListedObject | undefined> => (await childObjects()).find((o) => o.kind === 'MachineDeployment' && o.metadata.name === 'dev-pool-general');

beforeAll(async () => {
  const crds = join(SHARED, 'upstream-crds');
  [parent, child] = await Promise.all([
    startSim({ crds: [join(REPO, 'crds'), crds], namespaces: ['default', AGENT_NS] }),
    startSim({ crds: [crds], namespaces: ['default', AGENT_NS] }),
  ]);
  // The dev example as git renders it, brought up by the simulated Cluster API in the parent.
  for (const d of renderer.renderCluster(dev())) await parent.objects.create(parse(d.text) as KubernetesObject);
  const parentCapi = createCapiSim({ kubeConfig: parent.kc, apiVersions: renderer.versions.apiVersions });
  await eventually(async () => expect((await parentCapi.reconcileOnce()).clusters[0]?.state).toBe('ready'), { timeoutMs: 15_000 });
  childCapi = createCapiSim({ kubeConfig: child.kc, apiVersions: renderer.versions.apiVersions });
  parentMover = createMover({ kubeConfig: parent.kc, fieldManager: 'lattice-cell', log });
  childMover = createMover({ kubeConfig: child.kc, fieldManager: 'lattice-agent', log });
  // The parent's pivot steps before the batches: pause, then discover what moves.
  await parentMover.pause(await parentMover.list(NS));
  const graph = moveGraph(await parentMover.list(NS), { cluster: 'dev' });
  if (!graph.ok) throw new Error(graph.message);
  batches = graph.batches;
  // core's validator and renderer compile once; later timings are the handlers'.
  specValidator();
}, 60_000);
afterAll(async () => {
  await childCapi.stop();
  await Promise.all([parent.server.close(), child.server.close()]);
});

describe('pivot: the child side', () => {
  it('receives the batches paused, idempotently: a batch re-sent to a restarted agent duplicates nothing and keeps the uids', async () => {
    // GIVEN a realistic graph (Cluster first, Machines, configs and their Secrets later)
    expect(batches.length).toBeGreaterThanOrEqual(4);
    expect(batches[0]?.map((n) => n.kind)).toEqual(['Cluster']);
    const sent = batches.flat().length;
    // WHEN an agent receives every batch
    const agent = restartedAgent();
    const first = [];
    for (let i = 0; i < batches.length; i++) first.push(await agent.moveBatch(moveBatch(`b-${i}`, i), capture()));
    // THEN each is acknowledged with a mapping per object
    for (const ack of first) expect(ack).toMatchObject({ ok: true, moveBatch: { errors: [] } });
    const mappings = first.flatMap((a) => (a.ok ? a.moveBatch?.mappings ?? [] : []));
    expect(mappings).toHaveLength(sent);
    // WHEN the agent restarts and the cell re-sends every batch (new ids, as after a parent crash)
    const again = restartedAgent();
    const second = [];
    for (let i = 0; i < batches.length; i++) second.push(await again.moveBatch(moveBatch(`b2-${i}`, i), capture()));
    // THEN the same uids come back and nothing is duplicated
    expect(second.flatMap((a) => (a.ok ? a.moveBatch?.mappings ?? [] : []))).toEqual(mappings);
    const objects = await childObjects();
    expect(objects).toHaveLength(sent);
    // AND everything is paused, carries its source uid, has no status, and owners point at the child's uids
    expect(objects.every(isPaused)).toBe(true);
    const uids = new Set(objects.map((o) => o.metadata.uid));
    for (const o of objects) {
      expect(o.metadata.annotations?.[MOVE.sourceUid]).toBeTruthy();
      expect(o.status).toBeUndefined();
      for (const r of o.metadata.ownerReferences ?? []) expect(uids.has(r.uid)).toBe(true);
    }
    // AND the child's Cluster API does nothing with them until moveComplete
    expect((await childCapi.reconcileOnce()).clusters).toEqual([expect.objectContaining({ name: 'dev', state: 'paused' })]);
    expect((await childObjects()).length).toBe(sent);
  });

  it('refuses a batch with a kind outside the allowlist or a manifest that is not JSON, and another namespace, creating nothing', async () => {
    // GIVEN batches carrying a ClusterRoleBinding, a manifest that is not JSON, or aimed at kube-system
    const agent = restartedAgent();
    const role = { sourceUid: 'r', manifest: Buffer.from(JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'admin' } })), owners: [] };
    const secret = { sourceUid: 's', manifest: Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'dev-extra' } })), owners: [] };
    const before = (await childObjects()).length;
    // WHEN they are received THEN each is refused as Invalid, and nothing of them is created (not even the valid Secret)
    expect(await agent.moveBatch(moveBatch('x-1', 0, [secret, role]), capture())).toEqual({ ok: false, code: 'Invalid', error: 'object r: ClusterRoleBinding (rbac.authorization.k8s.io/v1) may not be moved' });
    expect(await agent.moveBatch(moveBatch('x-2', 0, [{ sourceUid: 'j', manifest: Buffer.from('{not json'), owners: [] }]), capture())).toMatchObject({ ok: false, code: 'Invalid', error: 'object j: the manifest is not JSON' });
    const elsewhere = moveBatch('x-3', 0, [secret]);
    if (elsewhere.moveBatch) elsewhere.moveBatch.targetNamespace = 'kube-system';
    expect(await agent.moveBatch(elsewhere, capture())).toMatchObject({ ok: false, code: 'Invalid', error: 'the namespace must be capi-dev' });
    expect((await childObjects()).length).toBe(before);
  });

  it('pauses an object that arrives unpaused: two management clusters must never reconcile the same infrastructure', async () => {
    // WHEN a batch carries an object the parent did not pause
    const unpaused = { sourceUid: 'u', manifest: Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dev-settings', namespace: NS }, data: { a: 'b' } })), owners: [] };
    const ack = await restartedAgent().moveBatch(moveBatch('p-1', 1, [unpaused]), capture());
    // THEN it is created paused
    expect(ack).toMatchObject({ ok: true, moveBatch: { errors: [] } });
    const created = (await childObjects()).find((o) => o.metadata.name === 'dev-settings');
    expect(created && isPaused(created)).toBe(true);
  });

  it('keeps the spec but applies nothing before the pivot completes', async () => {
    // GIVEN an agent whose record says no pivot yet (a state Secret of its own)
    const agent = restartedAgent({ stateSecret: 'lattice-agent-state-before' });
    const changed = dev();
    const pool = changed.spec.nodes.workerPools?.general;
    if (!pool) throw new Error('no general pool');
    pool.replicas = 4;
    // WHEN the cell syncs a changed spec
    const ack = await agent.specSync(specSync('s-0', changed, 7), capture());
    // THEN it is acknowledged with the applied generation unchanged, and the child's objects are untouched
    expect(ack).toEqual({ ok: true, specSync: { appliedGeneration: 0 } });
    expect((await childMachineDeployment())?.spec).toMatchObject({ replicas: 2 });
  });

  it('completes the move: unpauses every received object (the Cluster last), records it, and a re-send is a no-op', async () => {
    // GIVEN the received, paused objects
    const received = await childObjects();
    // WHEN the cell completes the move, with one extra manifest it may apply and one it may not
    const extra = [
      Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dev-extra', namespace: 'elsewhere' }, data: { a: 'b' } })),
      Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'intruder' } })),
      Buffer.from(JSON.stringify({ apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta2', kind: 'AWSClusterStaticIdentity', metadata: { name: 'global' }, spec: { secretRef: 'x' } })),
    ];
    const ack = await restartedAgent().moveComplete(moveComplete('c-1', extra), capture());
    // THEN every received object is unpaused and the pivot recorded in the child
    expect(ack).toEqual({ ok: true, moveComplete: { unpaused: received.length } });
    const after = await childObjects();
    expect(after.some(isPaused)).toBe(false);
    expect(after.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'dev-extra')?.metadata.namespace).toBe(NS);
    expect(await child.objects.list('v1', 'ServiceAccount', NS).then((l) => l.items.map((o) => o.metadata?.name))).not.toContain('intruder');
    expect(await childState()).toEqual({ [STATE_KEYS.pivotComplete]: 'true', [STATE_KEYS.moveId]: MOVE_ID, [STATE_KEYS.appliedGeneration]: '0' });
    // AND the child's Cluster API takes over
    expect((await childCapi.reconcileOnce()).clusters[0]?.state).not.toBe('paused');
    // WHEN someone pauses a MachineDeployment in the child, and a restarted agent gets the completion again
    // (the parent crashed before recording it)
    const md = await childMachineDeployment();
    if (!md) throw new Error('no MachineDeployment');
    await childMover.pause([md]);
    const repeat = await restartedAgent().moveComplete(moveComplete('c-2'), capture());
    // THEN it is acknowledged at once, unpausing nothing
    expect(repeat).toEqual({ ok: true, moveComplete: { unpaused: 0 } });
    const stillPaused = await childMachineDeployment();
    expect(stillPaused && isPaused(stillPaused)).toBe(true);
    if (stillPaused) await childMover.unpause([stillPaused]);
    // WHEN a batch of this move (or a completion of another) reaches the cluster that now manages itself,
    // after the cluster deleted one of the moved objects
    const machine = (await childObjects()).find((o) => o.kind === 'Machine');
    if (!machine) throw new Error('no Machine');
    await childMover.remove([machine]);
    const count = (await childObjects()).length;
    const late = await restartedAgent().moveBatch(moveBatch('b-late', batches.length - 1), capture());
    const other = await restartedAgent().moveComplete({ id: 'c-other', body: 'moveComplete', moveComplete: { moveId: 'another-move', targetNamespace: NS, manifests: [] } }, capture());
    // THEN both are refused as AlreadyPivoted, and nothing comes back
    expect(late).toMatchObject({ ok: false, code: 'AlreadyPivoted', retryable: false });
    expect(other).toMatchObject({ ok: false, code: 'AlreadyPivoted', retryable: false });
    expect((await childObjects()).length).toBe(count);
  });

  it('after the pivot, applies a changed spec to the child\'s objects and reports the applied generation; older ones are ignored', async () => {
    // GIVEN the pivoted child and a spec with three workers in the general pool
    const changed = dev();
    const pool = changed.spec.nodes.workerPools?.general;
    if (!pool) throw new Error('no general pool');
    pool.replicas = 3;
    const agent = restartedAgent();
    // WHEN the cell syncs it as generation 2
    const ack = await agent.specSync(specSync('s-1', changed, 2), capture());
    // THEN the MachineDeployment in the child has three replicas, and generation 2 is recorded
    expect(ack).toEqual({ ok: true, specSync: { appliedGeneration: 2 } });
    expect((await childMachineDeployment())?.spec).toMatchObject({ replicas: 3 });
    expect((await childState())[STATE_KEYS.appliedGeneration]).toBe('2');
    // (the rendered LatticeCluster and Namespace are skipped: the child does not even serve LatticeClusters)
    // WHEN a restarted agent gets generation 1 (older than applied)
    const older = await restartedAgent().specSync(specSync('s-2', dev(), 1), capture());
    // THEN it is ignored
    expect(older).toEqual({ ok: true, specSync: { appliedGeneration: 2 } });
    expect((await childMachineDeployment())?.spec).toMatchObject({ replicas: 3 });
  });

  it('refuses to release copies while the Cluster is live', async () => {
    // GIVEN the pivoted child, its Cluster unpaused
    const before = (await childObjects()).length;
    // WHEN the cell asks it to release its copies
    const ack = await restartedAgent().releaseCopies(releaseCopies('r-0'), capture());
    // THEN it refuses for good, deleting nothing
    expect(ack).toEqual({ ok: false, code: 'Failed', retryable: false, error: 'Cluster dev in capi-dev is not paused: live objects are never deleted' });
    expect((await childObjects()).length).toBe(before);
  });

  it('unpivot: pauses everything and streams the graph back owners first on the command\'s session, then acknowledges', async () => {
    // GIVEN the live child (its Cluster API created objects of its own since the pivot)
    // WHEN the cell asks for the objects back
    // THEN the agent pauses them and answers retryable until the child's controllers acknowledge the pause
    // (until then one may still create an object that would not be sent)
    const early = capture();
    expect(await restartedAgent().unpivotRequest(unpivotRequest('u-0'), early)).toMatchObject({ ok: false, code: 'Failed', retryable: true, error: expect.stringContaining('acknowledge the pause') });
    expect(early.sent).toEqual([]);
    expect((await childCapi.reconcileOnce()).clusters[0]?.state).toBe('paused');
    // WHEN it asks again (a new id: the cell re-sends an unpivot request that way)
    const session = capture();
    const ack = await restartedAgent().unpivotRequest(unpivotRequest('u-1'), session);
    // THEN every object is paused and was sent once, in batches that put owners before dependents
    const objects = await childObjects();
    expect(objects.every(isPaused)).toBe(true);
    const sent = session.sent.map((m) => ('unpivotBatch' in m ? m.unpivotBatch : undefined)).filter((b): b is UnpivotBatch => b !== undefined);
    expect(sent).toHaveLength(session.sent.length);
    expect(ack).toEqual({ ok: true, unpivot: { objects: objects.length, batches: sent.length } });
    expect(sent.map((b) => [b.commandId, b.batchIndex, b.totalBatches, b.namespace])).toEqual(sent.map((_, i) => ['u-1', i, sent.length, NS]));
    const seen = new Set<string>();
    for (const batch of sent) {
      for (const o of batch.objects) for (const owner of o.owners) expect(seen.has(owner.sourceUid), `${o.sourceUid} before its owner`).toBe(true);
      for (const o of batch.objects) seen.add(o.sourceUid);
    }
    expect(seen).toEqual(new Set(objects.map((o) => o.metadata.uid)));
    // AND the manifests are the objects as listed (paused), the Cluster first
    const firstObject = JSON.parse(Buffer.from(sent[0]?.objects[0]?.manifest ?? '').toString('utf8')) as ListedObject;
    expect(isCapiCluster(firstObject) && isPaused(firstObject)).toBe(true);
    // WHEN the session ends while sending
    // THEN the request fails retryable, so that a re-send runs it again
    expect(await restartedAgent().unpivotRequest(unpivotRequest('u-2'), capture(false))).toMatchObject({ ok: false, code: 'Failed', retryable: true });
  });
});

describe('pivot through a real cell and agent', () => {
  let cell: Cell;
  let agent: Agent;

  beforeAll(async () => {
    const tokens = new InMemoryTokenStore();
    cell = await startCell({ core: parent.core, hosts: ['127.0.0.1'], tokens, grpcPort: 0, bootstrapPort: 0, proxyPort: 0, bindHost: '127.0.0.1', heartbeatIntervalMs: 200, log });
    const { token } = await issueBootstrapToken(tokens, 'dev', { now: new Date() });
    await child.core.createNamespacedSecret({ namespace: AGENT_NS, body: bootstrapSecret({ token, ...parentEndpoints('127.0.0.1', { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort }), caBundle: cell.ca.trustBundle }, 'lattice-agent-bootstrap', AGENT_NS) });
    agent = createAgent({
      config: { cluster: 'dev', heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: [] },
      kubeConfig: child.kc, namespace: AGENT_NS, log, backoff: { initialMs: 20, maxMs: 200, stableMs: 100 }, health: { collect: async () => ({ nodes: { ready: 0, total: 0 }, controlPlane: { ready: 0, total: 0 }, pools: [], addons: [], providers: [], errors: [] }) },
    });
    agent.start();
  }, 30_000);
  afterAll(async () => {
    await agent.stop();
    await cell.close();
  });

  it('heartbeats carry the child\'s record; unpivot batches and the release travel over the stream', async () => {
    // GIVEN the connected agent of the pivoted child
    // THEN its heartbeats carry the pivot record, and its Hello lists the pivot commands
    await eventually(() => expect(cell.agents.get('dev')?.selfManagement).toEqual({ pivotComplete: true, moveId: MOVE_ID, appliedGeneration: 2 }), { timeoutMs: 10_000 });
    expect(cell.agents.get('dev')?.capabilities).toEqual(['moveBatch', 'moveComplete', 'specSync', 'unpivotRequest', 'releaseCopies', 'proxyRequest', 'proxyCancel']);
    // WHEN the cell asks for the objects back
    const batchesSeen: UnpivotBatch[] = [];
    const unsubscribe = cell.agents.subscribe((e) => {
      if (e.type === 'unpivotBatch') batchesSeen.push(e.batch);
    });
    const ack = await cell.agents.send('dev', { unpivotRequest: { namespace: NS } }, { id: 'unpivot-stream' });
    unsubscribe();
    // THEN every batch arrived before the Ack, in order
    const objects = await childObjects();
    expect(ack).toMatchObject({ ok: true, unpivot: { objects: objects.length, batches: batchesSeen.length } });
    expect(batchesSeen.map((b) => b.batchIndex)).toEqual(batchesSeen.map((_, i) => i));
    expect(batchesSeen.flatMap((b) => b.objects.map((o) => o.sourceUid)).sort()).toEqual(objects.map((o) => o.metadata.uid).sort());
    // WHEN the parent has imported them and asks the child to release its paused copies
    const release = await cell.agents.send('dev', { releaseCopies: { namespace: NS } }, { id: 'release-1' });
    // THEN every copy is gone, with its finalizers, and the record says the child no longer manages itself
    expect(release).toMatchObject({ ok: true, release: { deleted: objects.length } });
    expect(await childObjects()).toEqual([]);
    expect((await childState())[STATE_KEYS.pivotComplete]).toBe('false');
    await eventually(() => expect(cell.agents.get('dev')?.selfManagement).toMatchObject({ pivotComplete: false, moveId: MOVE_ID }));
  });
});
