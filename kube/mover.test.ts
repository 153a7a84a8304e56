/**
 * The mover against two sim API servers with the upstream Cluster API CRDs: a "source" holding a small CAPI
 * object set and a "target" receiving it, as in a pivot (and, reversed, an unpivot import).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { KubeConfig, PatchStrategy, setHeaderOptions, type KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { moveGraph, MOVE, isPaused, type ListedObject, type MoveNode } from '../core/move/graph.js';
import { recordingLogger } from '../controller/cell/testing.js';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { SHARED } from '../test/support/repo.js';
import { createMover, MoverError, type IncomingObject, type Mover } from './mover.js';

const NS = 'capi-m';
const CAPI = 'cluster.x-k8s.io/v1beta2';
const INFRA = 'infrastructure.cluster.x-k8s.io/v1beta2';
const KCP = 'controlplane.cluster.x-k8s.io/v1beta2';
const log = pino({ level: 'silent' });

let source: SimClients;
let target: SimClients;
let from: Mover;
let to: Mover;

type Obj = KubernetesObject & Record<string, unknown>;
const labels = { 'cluster.x-k8s.io/cluster-name': 'm' };
const ownerRef = (o: Obj, controller = true) => ({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', name: o.metadata?.name ?? '', uid: o.metadata?.uid ?? '', ...(controller ? { controller: true, blockOwnerDeletion: true } : {}) });

/** The set a KubeadmControlPlane + Docker cluster has in its namespace, with the owners CAPI sets. */
async function createSourceSet(sim: SimClients, ns: string): Promise<void> {
  const create = async (o: Obj): Promise<Obj> => (await sim.objects.create(o)) as Obj;
  const cluster = await create({
    apiVersion: CAPI, kind: 'Cluster', metadata: { name: 'm', namespace: ns, labels, finalizers: ['cluster.cluster.x-k8s.io'], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"secret":"no"}', 'meta.helm.sh/release-name': 'x', keep: 'me' } },
    spec: {
      clusterNetwork: { pods: { cidrBlocks: ['192.168.0.0/16'] } },
      infrastructureRef: { apiGroup: 'infrastructure.cluster.x-k8s.io', kind: 'DockerCluster', name: 'm' },
      controlPlaneRef: { apiGroup: 'controlplane.cluster.x-k8s.io', kind: 'KubeadmControlPlane', name: 'm-control-plane' },
    },
  });
  await sim.custom.patchNamespacedCustomObjectStatus({ group: 'cluster.x-k8s.io', version: 'v1beta2', namespace: ns, plural: 'clusters', name: 'm', body: { status: { phase: 'Provisioned' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await create({ apiVersion: INFRA, kind: 'DockerCluster', metadata: { name: 'm', namespace: ns, labels, ownerReferences: [ownerRef(cluster)] }, spec: {} });
  const template = await create({ apiVersion: INFRA, kind: 'DockerMachineTemplate', metadata: { name: 'm-control-plane', namespace: ns, labels, ownerReferences: [ownerRef(cluster, false)] }, spec: { template: { spec: {} } } });
  const kcp = await create({
    apiVersion: KCP, kind: 'KubeadmControlPlane', metadata: { name: 'm-control-plane', namespace: ns, labels, ownerReferences: [ownerRef(cluster)], finalizers: ['kubeadm.controlplane.cluster.x-k8s.io'] },
    spec: { replicas: 1, version: 'v1.34.1', machineTemplate: { spec: { infrastructureRef: { apiGroup: 'infrastructure.cluster.x-k8s.io', kind: 'DockerMachineTemplate', name: template.metadata?.name ?? '' } } } },
  });
  await create({
    apiVersion: CAPI, kind: 'MachineDeployment', metadata: { name: 'm-md', namespace: ns, labels, ownerReferences: [ownerRef(cluster, false)] },
    spec: {
      clusterName: 'm', replicas: 2, selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { clusterName: 'm', version: 'v1.34.1', bootstrap: { configRef: { apiGroup: 'bootstrap.cluster.x-k8s.io', kind: 'KubeadmConfigTemplate', name: 'm-md' } }, infrastructureRef: { apiGroup: 'infrastructure.cluster.x-k8s.io', kind: 'DockerMachineTemplate', name: 'm-control-plane' } } },
    },
  });
  await create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'm-kubeconfig', namespace: ns, labels, ownerReferences: [ownerRef(kcp)] }, type: 'cluster.x-k8s.io/secret', data: { value: Buffer.from('kubeconfig-secret-value').toString('base64') } });
  await create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'm-ca', namespace: ns }, data: { 'tls.key': Buffer.from('ca-key-material').toString('base64') } });
  await create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated', namespace: ns }, data: { a: 'b' } });
}

/** The graph's batches as what a receiver gets, in order. */
function incoming(batches: readonly (readonly MoveNode[])[]): IncomingObject[] {
  return batches.flat().map((n) => ({ sourceUid: n.uid, object: n.object as Record<string, unknown>, owners: n.owners }));
}

async function sourceBatches(): Promise<readonly (readonly MoveNode[])[]> {
  const graph = moveGraph(await from.list(NS), { cluster: 'm' });
  if (!graph.ok) throw new Error(graph.message);
  return graph.batches;
}

const byKindName = (objects: readonly ListedObject[]) => new Map(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o]));

beforeAll(async () => {
  const crds = [join(SHARED, 'upstream-crds')];
  [source, target] = await Promise.all([startSim({ crds, namespaces: ['default', NS] }), startSim({ crds, namespaces: ['default'] })]);
  from = createMover({ kubeConfig: source.kc, fieldManager: 'test-source', log });
  to = createMover({ kubeConfig: target.kc, fieldManager: 'lattice-agent', log });
  await createSourceSet(source, NS);
}, 30_000);
afterAll(async () => {
  await Promise.all([source.server.close(), target.server.close()]);
});

describe('createMover', () => {
  it('lists every movable object of a namespace as plain JSON with apiVersion and kind, CAPI kinds at their storage version', async () => {
    // WHEN the source namespace is listed
    const listed = await from.list(NS);
    // THEN the CAPI objects, Secrets and ConfigMaps are there, nothing else, with string timestamps
    expect(listed.map((o) => `${o.apiVersion} ${o.kind}/${o.metadata.name}`).sort()).toEqual([
      `${CAPI} Cluster/m`, `${CAPI} MachineDeployment/m-md`, `${KCP} KubeadmControlPlane/m-control-plane`,
      `${INFRA} DockerCluster/m`, `${INFRA} DockerMachineTemplate/m-control-plane`,
      'v1 ConfigMap/unrelated', 'v1 Secret/m-ca', 'v1 Secret/m-kubeconfig',
    ].sort());
    for (const o of listed) expect(typeof o.metadata.creationTimestamp).toBe('string');
    expect(await from.list('nowhere')).toEqual([]);
  });

  it('receives the graph owners first into a new namespace: new uids, source uid recorded, status and tool annotations stripped, owners remapped', async () => {
    // GIVEN the source's batches
    const batches = await sourceBatches();
    const sent = incoming(batches);
    const sourceObjects = byKindName(batches.flat().map((n) => n.object));
    // WHEN the target receives them
    const result = await to.receive(NS, sent);
    // THEN every object maps to a new uid and no error is reported
    expect(result.errors).toEqual([]);
    expect(result.mappings.map((m) => m.sourceUid)).toEqual(sent.map((o) => o.sourceUid));
    const targetUid = new Map(result.mappings.map((m) => [m.sourceUid, m.targetUid]));
    const received = byKindName(await to.list(NS));
    expect([...received.keys()].sort()).toEqual([...sourceObjects.keys()].sort());
    for (const [key, copy] of received) {
      const original = sourceObjects.get(key);
      if (!original) throw new Error(key);
      expect(copy.metadata.uid).toBe(targetUid.get(original.metadata.uid ?? ''));
      expect(copy.metadata.uid).not.toBe(original.metadata.uid);
      expect(copy.metadata.annotations?.[MOVE.sourceUid]).toBe(original.metadata.uid);
      // ownerReferences point at the receiver's copies of the owners, flags kept
      expect(copy.metadata.ownerReferences ?? []).toEqual((original.metadata.ownerReferences ?? []).map((r) => ({ ...r, uid: targetUid.get(r.uid) })));
    }
    const cluster = received.get('Cluster/m');
    expect(cluster?.status).toBeUndefined();
    expect(cluster?.metadata.finalizers).toEqual(['cluster.cluster.x-k8s.io']);
    expect(cluster?.metadata.annotations).toEqual({ keep: 'me', [MOVE.sourceUid]: sourceObjects.get('Cluster/m')?.metadata.uid });
    expect(received.get('Secret/m-kubeconfig')?.data).toEqual(sourceObjects.get('Secret/m-kubeconfig')?.data);
  });

  it('is idempotent: receiving again, or with a fresh mover after a crash, creates nothing twice and maps to the same uids', async () => {
    // GIVEN the objects received by the previous test
    const sent = incoming(await sourceBatches());
    const before = await to.list(NS);
    const first = await to.receive(NS, sent);
    // WHEN one dependent is lost and a fresh mover (a restarted agent) receives only the last batch
    const batches = await sourceBatches();
    const last = incoming([batches[batches.length - 1] ?? []]);
    const lost = before.find((o) => o.metadata.name === 'm-kubeconfig');
    if (!lost) throw new Error('no m-kubeconfig');
    await target.core.deleteNamespacedSecret({ namespace: NS, name: 'm-kubeconfig' });
    const again = await createMover({ kubeConfig: target.kc, fieldManager: 'lattice-agent', log }).receive(NS, last);
    // THEN nothing is duplicated, existing uids are reused, and the re-created Secret's owner resolves through the annotations
    expect(first.errors).toEqual([]);
    expect(new Set(first.mappings.map((m) => m.targetUid))).toEqual(new Set(before.map((o) => o.metadata.uid)));
    expect(again.errors).toEqual([]);
    const after = await to.list(NS);
    expect(after).toHaveLength(before.length);
    const secret = after.find((o) => o.metadata.name === 'm-kubeconfig');
    const kcp = after.find((o) => o.kind === 'KubeadmControlPlane');
    expect(secret?.metadata.uid).not.toBe(lost.metadata.uid);
    expect(secret?.metadata.ownerReferences?.[0]?.uid).toBe(kcp?.metadata.uid);
  });

  it('refuses kinds outside the allowlist and malformed objects, and does not create an object without an owner that failed', async () => {
    // GIVEN a Role (never movable), a cluster-scoped identity of a movable group, an object with no kind, an
    // invalid KubeadmControlPlane and a Secret it owns
    const role = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'steal', namespace: 'x' }, rules: [] };
    const identity = { apiVersion: INFRA, kind: 'AWSClusterStaticIdentity', metadata: { name: 'global' }, spec: { secretRef: 'x' } };
    const kcp = { apiVersion: KCP, kind: 'KubeadmControlPlane', metadata: { name: 'broken' }, spec: { replicas: 'many' } };
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'broken-data' }, data: { key: Buffer.from('top-secret').toString('base64') } };
    const { log: recorded, lines } = recordingLogger();
    // WHEN they are received
    const result = await createMover({ kubeConfig: target.kc, fieldManager: 'lattice-agent', log: recorded }).receive('capi-refuse', [
      { sourceUid: 'r', object: role, owners: [] },
      { sourceUid: 'i', object: identity, owners: [] },
      { sourceUid: 'n', object: { metadata: { name: 'x' } }, owners: [] },
      { sourceUid: 'k', object: kcp, owners: [] },
      { sourceUid: 's', object: secret, owners: [{ apiVersion: KCP, kind: 'KubeadmControlPlane', name: 'broken', uid: 'k', controller: true }] },
    ]);
    // THEN each is an error, none retryable, with the HTTP code and reason only
    expect(result.mappings).toEqual([]);
    expect(result.errors).toEqual([
      { sourceUid: 'r', message: 'Role (rbac.authorization.k8s.io) may not be moved', retryable: false },
      { sourceUid: 'i', message: `AWSClusterStaticIdentity (${INFRA}) is not served here as a namespaced kind`, retryable: false },
      { sourceUid: 'n', message: 'the object has no apiVersion, kind or metadata.name', retryable: false },
      { sourceUid: 'k', message: 'create KubeadmControlPlane capi-refuse/broken: 422 Invalid', retryable: false },
      { sourceUid: 's', message: 'its owner KubeadmControlPlane broken was not received', retryable: false },
    ]);
    expect(await to.list('capi-refuse')).toEqual([]);
    expect((await target.custom.listClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities' }) as { items: unknown[] }).items).toEqual([]);
    expect(lines.join('')).not.toMatch(/top-secret|dG9wLXNlY3JldA|many/);
    // AND server-side apply keeps to the same allowlist
    await expect(to.apply({ ...identity, metadata: { name: 'global', namespace: 'capi-refuse' } })).rejects.toThrow(`apply AWSClusterStaticIdentity capi-refuse/global: AWSClusterStaticIdentity (${INFRA}) is not served here as a namespaced kind`);
    await expect(to.apply({ ...role, metadata: { name: 'steal', namespace: 'capi-refuse' } })).rejects.toMatchObject({ retryable: false });
    await expect(to.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'no-namespace' } })).rejects.toMatchObject({ retryable: false });
  });

  it('server-side applies an object, creating or changing it, as its field manager', async () => {
    // GIVEN a ConfigMap applied once
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: 'default' }, data: { a: '1' } };
    const first = await to.apply(cm);
    // WHEN it is applied again with a change
    const second = await to.apply({ ...cm, data: { a: '2' } });
    // THEN the same object changed
    expect(second.metadata.uid).toBe(first.metadata.uid);
    expect(second).toMatchObject({ apiVersion: 'v1', kind: 'ConfigMap', data: { a: '2' } });
  });

  it('adopts existing objects when asked: replaced by the incoming one, uid kept; otherwise left alone', async () => {
    // GIVEN a shadow MachineDeployment in the receiving namespace, paused and marked as pivoted
    const batches = await sourceBatches();
    const sent = incoming(batches);
    const md = sent.find((o) => o.object.kind === 'MachineDeployment');
    if (!md) throw new Error('no MachineDeployment');
    const shadowNs = 'capi-shadow';
    await to.receive(shadowNs, sent.filter((o) => o !== md));
    const shadow = structuredClone(md.object) as Obj & { spec: { replicas: number } };
    shadow.metadata = { name: 'm-md', namespace: shadowNs, labels, annotations: { [MOVE.pivotedTo]: 'm', [MOVE.paused]: '' } };
    shadow.spec.replicas = 5;
    const created = (await target.objects.create(shadow)) as Obj;
    // WHEN it is received without adopt, then with adopt
    const kept = await to.receive(shadowNs, [md]);
    const keptMd = (await to.list(shadowNs)).find((o) => o.kind === 'MachineDeployment');
    const adopted = await to.receive(shadowNs, [md], { adopt: (existing) => existing.metadata.annotations?.[MOVE.pivotedTo] === 'm' });
    const adoptedMd = (await to.list(shadowNs)).find((o) => o.kind === 'MachineDeployment');
    // THEN without adopt the shadow is untouched and its uid reused; with adopt the incoming object replaces it, same uid
    expect(kept).toEqual({ mappings: [{ sourceUid: md.sourceUid, targetUid: created.metadata?.uid }], errors: [] });
    expect(keptMd?.spec).toMatchObject({ replicas: 5 });
    expect(adopted).toEqual(kept);
    expect(adoptedMd?.metadata.uid).toBe(created.metadata?.uid);
    expect(adoptedMd?.spec).toMatchObject({ replicas: 2 });
    expect(adoptedMd?.metadata.annotations).toEqual({ [MOVE.sourceUid]: md.sourceUid });
    const cluster = (await to.list(shadowNs)).find((o) => o.kind === 'Cluster');
    expect(adoptedMd?.metadata.ownerReferences?.map((r) => r.uid)).toEqual([cluster?.metadata.uid]);
  });

  it('pauses and unpauses: spec.paused on the Cluster, the annotation on the rest, only what needs it', async () => {
    // GIVEN the received copies
    const objects = await to.list(NS);
    // WHEN they are paused twice
    const paused = await to.pause(objects);
    const pausedAgain = await to.pause(await to.list(NS));
    // THEN every object was patched once and is paused
    expect(paused).toBe(objects.length);
    expect(pausedAgain).toBe(0);
    const now = await to.list(NS);
    expect(now.every(isPaused)).toBe(true);
    expect(now.find((o) => o.kind === 'Cluster')?.spec).toMatchObject({ paused: true });
    expect(now.find((o) => o.kind === 'Cluster')?.metadata.annotations?.[MOVE.paused]).toBeUndefined();
    // WHEN they are unpaused
    expect(await to.unpause(now)).toBe(objects.length);
    // THEN nothing is paused, and the Cluster's field is gone rather than false
    const after = await to.list(NS);
    expect(after.some(isPaused)).toBe(false);
    expect(after.find((o) => o.kind === 'Cluster')?.spec).not.toHaveProperty('paused');
    expect(await to.unpause(after)).toBe(0);
  });

  it('removes in the given order with finalizers stripped; gone objects are fine', async () => {
    // GIVEN the copies, dependents first, the Cluster and the KubeadmControlPlane holding finalizers
    const batches = await sourceBatches();
    const received = byKindName(await to.list(NS));
    const order = [...batches].reverse().flat().map((n) => received.get(`${n.kind}/${n.name}`)).filter((o): o is ListedObject => o !== undefined);
    expect(order.find((o) => o.kind === 'Cluster')?.metadata.finalizers).toEqual(['cluster.cluster.x-k8s.io']);
    // WHEN they are removed, twice
    const removed = await to.remove(order);
    const again = await to.remove(order);
    // THEN all were deleted at once (no finalizer held them), and the second pass found none
    expect(removed).toBe(order.length);
    expect(again).toBe(0);
    expect(await to.list(NS)).toEqual([]);
    // AND merge patches report a missing object as false
    expect(await to.patch(order[0] as ListedObject, { metadata: { labels: { a: 'b' } } })).toBe(false);
  });

  it('retries what may work later, then reports it retryable, without anything from the response or the URL', async () => {
    // GIVEN a mover whose API server is gone
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }], users: [{ name: 'u', token: 'bearer-token-value' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
    });
    const delays: number[] = [];
    const gone = createMover({ kubeConfig: kc, fieldManager: 'lattice-agent', log, retry: { attempts: 3, delayMs: 5 }, sleep: async (ms) => { delays.push(ms); } });
    // WHEN it receives and lists
    const result = await gone.receive(NS, [{ sourceUid: 'a', object: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'a' } }, owners: [] }]);
    const listing = gone.list(NS);
    // THEN the receive reports a retryable error, the list throws a transient MoverError, after doubling delays
    expect(result.errors).toEqual([{ sourceUid: 'a', message: expect.stringMatching(/^get namespace capi-m: network error( \(ECONNREFUSED\))?$/), retryable: true }]);
    await expect(listing).rejects.toBeInstanceOf(MoverError);
    await expect(listing).rejects.toMatchObject({ kind: 'transient', retryable: true, httpCode: 0 });
    expect(delays.slice(0, 2)).toEqual([5, 10]);
    expect(JSON.stringify(result)).not.toMatch(/bearer|127\.0\.0\.1/);
  });
});
