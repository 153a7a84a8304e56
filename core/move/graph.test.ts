import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  isCapiCluster, isPaused, movable, movableGroup, MOVE, moveBlocker, moveGraph, pauseAcknowledged, pausePatch, prepareForCreate, unpausePatch, withPause,
  type GraphResult, type ListedObject, type OwnerRef,
} from './graph.js';

const CAPI = 'cluster.x-k8s.io/v1beta2';
const INFRA = 'infrastructure.cluster.x-k8s.io/v1beta2';
const KCP = 'controlplane.cluster.x-k8s.io/v1beta2';
const BOOTSTRAP = 'bootstrap.cluster.x-k8s.io/v1beta2';

interface Spec {
  readonly owners?: readonly ListedObject[];
  readonly labels?: Record<string, string>;
  readonly controller?: boolean;
}

/** An object as listed, its uid derived from kind and name. */
function obj(apiVersion: string, kind: string, name: string, spec: Spec = {}): ListedObject {
  const ownerReferences: OwnerRef[] = (spec.owners ?? []).map((o) => ({
    apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', name: o.metadata.name, uid: o.metadata.uid ?? '', ...(spec.controller === false ? {} : { controller: true, blockOwnerDeletion: true }),
  }));
  return {
    apiVersion, kind,
    metadata: { name, namespace: 'capi-dev', uid: `uid-${kind}-${name}`, ...(spec.labels ? { labels: spec.labels } : {}), ...(ownerReferences.length > 0 ? { ownerReferences } : {}) },
  };
}

/** The dev cluster as CAPI leaves it: the chain clusterctl move walks. */
function devObjects() {
  const cluster = obj(CAPI, 'Cluster', 'dev');
  const infra = obj(INFRA, 'DockerCluster', 'dev', { owners: [cluster] });
  const kcp = obj(KCP, 'KubeadmControlPlane', 'dev-cp', { owners: [cluster] });
  const md = obj(CAPI, 'MachineDeployment', 'dev-md', { owners: [cluster], controller: false });
  const template = obj(INFRA, 'DockerMachineTemplate', 'dev-md', { owners: [cluster], controller: false });
  const ms = obj(CAPI, 'MachineSet', 'dev-md-x', { owners: [md] });
  const cpMachine = obj(CAPI, 'Machine', 'dev-cp-a', { owners: [kcp] });
  const worker = obj(CAPI, 'Machine', 'dev-md-x-b', { owners: [ms] });
  const config = obj(BOOTSTRAP, 'KubeadmConfig', 'dev-md-x-b', { owners: [worker] });
  const data = obj('v1', 'Secret', 'dev-md-x-b', { owners: [config] });
  const kubeconfig = obj('v1', 'Secret', 'dev-kubeconfig', { owners: [kcp] });
  const ca = obj('v1', 'Secret', 'dev-ca');
  return { cluster, infra, kcp, md, template, ms, cpMachine, worker, config, data, kubeconfig, ca };
}

const names = (r: GraphResult): string[][] => {
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.batches.map((b) => b.map((n) => `${n.kind}/${n.name}`));
};

describe('movable', () => {
  it('allows Cluster API groups and core Secrets/ConfigMaps only', () => {
    // GIVEN kinds of every Cluster API group WHEN checked THEN they may move, like core Secrets and ConfigMaps
    for (const v of [CAPI, INFRA, KCP, BOOTSTRAP, 'ipam.cluster.x-k8s.io/v1beta2', 'addons.cluster.x-k8s.io/v1alpha1']) expect(movable(v, 'Anything'), v).toBe(true);
    expect(movable('v1', 'Secret')).toBe(true);
    expect(movable('v1', 'ConfigMap')).toBe(true);
    // AND nothing that runs code, grants access or registers webhooks, nor look-alike groups
    for (const [v, k] of [['v1', 'ServiceAccount'], ['v1', 'Pod'], ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding'], ['apps/v1', 'Deployment'],
      ['runtime.cluster.x-k8s.io/v1alpha1', 'ExtensionConfig'], ['evil.cluster.x-k8s.io/v1', 'X'], ['cluster.x-k8s.io.evil.com/v1', 'X'], ['admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration']] as const) {
      expect(movable(v, k), `${v} ${k}`).toBe(false);
    }
    expect(movableGroup('infrastructure.cluster.x-k8s.io')).toBe(true);
    expect(movableGroup('x.infrastructure.cluster.x-k8s.io')).toBe(false);
  });
});

describe('moveGraph', () => {
  it('orders the cluster in layers, owners first, each layer sorted by kind and name', () => {
    // GIVEN the objects of a provisioned cluster, listed in no useful order
    const o = devObjects();
    // WHEN the graph is built
    const result = moveGraph(Object.values(o).reverse(), { cluster: 'dev' });
    // THEN the Cluster comes alone, then what it owns (and the soft-owned CA), then down the ownership chains
    expect(names(result)).toEqual([
      ['Cluster/dev'],
      ['DockerCluster/dev', 'DockerMachineTemplate/dev-md', 'KubeadmControlPlane/dev-cp', 'MachineDeployment/dev-md', 'Secret/dev-ca'],
      ['Machine/dev-cp-a', 'MachineSet/dev-md-x', 'Secret/dev-kubeconfig'],
      ['Machine/dev-md-x-b'],
      ['KubeadmConfig/dev-md-x-b'],
      ['Secret/dev-md-x-b'],
    ]);
    // AND each node keeps its owners with their flags
    if (!result.ok) throw new Error('not ok');
    expect(result.batches[2]?.find((n) => n.name === 'dev-kubeconfig')?.owners).toEqual([{ apiVersion: KCP, kind: 'KubeadmControlPlane', name: 'dev-cp', uid: o.kcp.metadata.uid, controller: true, blockOwnerDeletion: true }]);
    expect(result.batches[1]?.find((n) => n.kind === 'MachineDeployment')?.owners).toEqual([{ apiVersion: CAPI, kind: 'Cluster', name: 'dev', uid: o.cluster.metadata.uid }]);
  });

  it('soft-owns owner-less Secrets and ConfigMaps named <cluster>-… by the Cluster, and nothing else by name', () => {
    // GIVEN owner-less core objects with and without the cluster's prefix, and a CAPI kind with it
    const { cluster } = devObjects();
    const objects = [
      cluster,
      obj('v1', 'Secret', 'dev-etcd'), obj('v1', 'ConfigMap', 'dev-settings'),
      obj('v1', 'Secret', 'devops-token'), obj('v1', 'Secret', 'prod-kubeconfig'), obj('v1', 'ConfigMap', 'kube-root-ca.crt'),
      obj(INFRA, 'DockerMachineTemplate', 'dev-orphan'),
    ];
    // WHEN the graph is built THEN only the prefixed core objects follow the Cluster
    expect(names(moveGraph(objects, { cluster: 'dev' }))).toEqual([['Cluster/dev'], ['ConfigMap/dev-settings', 'Secret/dev-etcd']]);
    // AND a soft-owned object carries no owner reference to send (clusterctl: soft owners make no ownerRef)
    const result = moveGraph(objects, { cluster: 'dev' });
    if (!result.ok) throw new Error('not ok');
    expect(result.batches[1]?.every((n) => n.owners.length === 0)).toBe(true);
  });

  it('selects objects labelled with the cluster\'s name or the clusterctl move label even without owners', () => {
    const { cluster } = devObjects();
    const objects = [
      cluster,
      obj('ipam.cluster.x-k8s.io/v1beta2', 'IPAddressClaim', 'claim', { labels: { [MOVE.clusterName]: 'dev' } }),
      obj('v1', 'Secret', 'identity', { labels: { [MOVE.move]: 'true' } }),
      obj('ipam.cluster.x-k8s.io/v1beta2', 'IPAddressClaim', 'other', { labels: { [MOVE.clusterName]: 'prod' } }),
      // labelled, but never movable
      obj('rbac.authorization.k8s.io/v1', 'Role', 'dev-role', { labels: { [MOVE.clusterName]: 'dev' } }),
    ];
    expect(names(moveGraph(objects, { cluster: 'dev' }))).toEqual([['Cluster/dev', 'IPAddressClaim/claim', 'Secret/identity']]);
  });

  it('leaves out excluded objects and what only they lead to, and drops owners outside the set', () => {
    // GIVEN the parent's own state Secret (labelled for the cluster) and a Secret owned by something that does not move
    const { cluster, kcp } = devObjects();
    const state = obj('v1', 'Secret', 'lattice-state', { labels: { [MOVE.clusterName]: 'dev' } });
    const role = obj('rbac.authorization.k8s.io/v1', 'Role', 'r');
    const mixed = obj('v1', 'Secret', 'dev-mixed', { owners: [kcp, role] });
    // WHEN the state Secret is excluded
    const result = moveGraph([cluster, kcp, state, role, mixed], { cluster: 'dev', exclude: (o) => o.metadata.name === 'lattice-state' });
    // THEN it does not move, and the mixed Secret keeps only its in-set owner
    expect(names(result)).toEqual([['Cluster/dev'], ['KubeadmControlPlane/dev-cp'], ['Secret/dev-mixed']]);
    if (!result.ok) throw new Error('not ok');
    expect(result.batches[2]?.[0]?.owners.map((r) => r.kind)).toEqual(['KubeadmControlPlane']);
  });

  it('reports a cycle instead of moving part of it', () => {
    const { cluster } = devObjects();
    // GIVEN two labelled objects owning each other
    const a = obj(CAPI, 'MachineSet', 'a', { labels: { [MOVE.clusterName]: 'dev' } });
    const b = obj(CAPI, 'Machine', 'b', { owners: [a], labels: { [MOVE.clusterName]: 'dev' } });
    const aOwnedByB: ListedObject = { ...a, metadata: { ...a.metadata, ownerReferences: [{ apiVersion: CAPI, kind: 'Machine', name: 'b', uid: b.metadata.uid ?? '' }] } };
    // WHEN the graph is built THEN it is refused, naming them
    const result = moveGraph([cluster, aOwnedByB, b], { cluster: 'dev' });
    expect(result).toEqual({ ok: false, code: 'CycleDetected', message: `the ownerReferences form a cycle among: ${CAPI}/Machine/b, ${CAPI}/MachineSet/a` });
  });

  it('needs the Cluster and every uid', () => {
    // GIVEN objects without the named Cluster, or without a uid WHEN the graph is built THEN it says why
    expect(moveGraph([obj('v1', 'Secret', 'dev-ca')], { cluster: 'dev' })).toMatchObject({ ok: false, code: 'NoCluster' });
    expect(moveGraph([devObjects().cluster], { cluster: 'prod' })).toMatchObject({ ok: false, code: 'NoCluster' });
    const noUid: ListedObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'dev-x' } };
    expect(moveGraph([devObjects().cluster, noUid], { cluster: 'dev' })).toMatchObject({ ok: false, code: 'MissingUid' });
  });

  it('gives the same batches whatever order the objects were listed in', () => {
    // GIVEN the graph of the objects in one order
    const objects = Object.values(devObjects());
    const expected = moveGraph(objects, { cluster: 'dev' });
    // WHEN they are listed in any other order THEN the batches are the same
    fc.assert(fc.property(fc.shuffledSubarray(objects, { minLength: objects.length, maxLength: objects.length }), (shuffled) => {
      expect(moveGraph(shuffled, { cluster: 'dev' })).toEqual(expected);
    }));
  });

  it('places every object after all of its in-set owners, for any ownership forest', () => {
    // GIVEN random trees of Machines hanging off the Cluster (each owned by an earlier one or by the Cluster)
    const forest = fc.array(fc.nat(), { minLength: 1, maxLength: 30 }).map((parents) => {
      const cluster = devObjects().cluster;
      const nodes: ListedObject[] = [cluster];
      parents.forEach((p, i) => nodes.push(obj(CAPI, 'Machine', `m${i}`, { owners: [nodes[p % nodes.length] as ListedObject] })));
      return nodes;
    });
    fc.assert(fc.property(forest, (nodes) => {
      // WHEN the graph is built
      const result = moveGraph(nodes, { cluster: 'dev' });
      if (!result.ok) throw new Error(result.message);
      // THEN everything moves, and no object comes before one of its owners
      const layer = new Map(result.batches.flatMap((b, i) => b.map((n) => [n.uid, i] as const)));
      expect(layer.size).toBe(nodes.length);
      for (const n of result.batches.flat()) for (const r of n.owners) expect(layer.get(r.uid) ?? Infinity).toBeLessThan(layer.get(n.uid) ?? -1);
    }));
  });
});

describe('prepareForCreate', () => {
  const source = {
    apiVersion: CAPI, kind: 'MachineSet',
    metadata: {
      name: 'dev-md-x', namespace: 'capi-dev', generateName: 'dev-md-', uid: 'src-ms', resourceVersion: '42', generation: 3, creationTimestamp: '2026-01-01T00:00:00Z',
      selfLink: '/apis/x', managedFields: [{ manager: 'capi' }], deletionTimestamp: '2026-01-02T00:00:00Z', deletionGracePeriodSeconds: 0,
      labels: { [MOVE.clusterName]: 'dev' }, finalizers: ['machineset.cluster.x-k8s.io'],
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': '{"data":"secret"}', 'meta.helm.sh/release-name': 'r', 'argocd.argoproj.io/tracking-id': 't',
        [MOVE.sourceUid]: 'older', 'cluster.x-k8s.io/paused': '', keep: 'yes',
      },
      ownerReferences: [{ apiVersion: CAPI, kind: 'MachineDeployment', name: 'dev-md', uid: 'src-md', controller: true }],
    },
    spec: { replicas: 2 },
    status: { replicas: 2 },
  };
  const owners: OwnerRef[] = [
    { apiVersion: CAPI, kind: 'MachineDeployment', name: 'dev-md', uid: 'src-md', controller: true, blockOwnerDeletion: true },
    { apiVersion: CAPI, kind: 'Cluster', name: 'dev', uid: 'src-cluster' },
  ];

  it('strips server fields, status and tool annotations, forces the namespace and records the source uid', () => {
    // WHEN the object is prepared for the receiver
    const before = structuredClone(source);
    const out = prepareForCreate(source, { namespace: 'capi-target', sourceUid: 'src-ms', owners, uidMap: new Map([['src-md', 'dst-md'], ['src-cluster', 'dst-cluster']]) });
    // THEN what the receiver's API server owns is gone, the rest is kept
    expect(out).toEqual({
      apiVersion: CAPI, kind: 'MachineSet',
      metadata: {
        name: 'dev-md-x', namespace: 'capi-target', labels: { [MOVE.clusterName]: 'dev' }, finalizers: ['machineset.cluster.x-k8s.io'],
        annotations: { [MOVE.sourceUid]: 'src-ms', 'cluster.x-k8s.io/paused': '', keep: 'yes' },
        ownerReferences: [
          { apiVersion: CAPI, kind: 'MachineDeployment', name: 'dev-md', uid: 'dst-md', controller: true, blockOwnerDeletion: true },
          { apiVersion: CAPI, kind: 'Cluster', name: 'dev', uid: 'dst-cluster' },
        ],
      },
      spec: { replicas: 2 },
    });
    // AND the input is untouched
    expect(source).toEqual(before);
  });

  it('rebuilds ownerReferences only through the uid map: owners the receiver does not have are dropped', () => {
    // GIVEN a map that knows only the Cluster WHEN prepared THEN only the Cluster is an owner
    const partial = prepareForCreate(source, { namespace: 'n', sourceUid: 's', owners, uidMap: new Map([['src-cluster', 'dst-cluster']]) });
    expect((partial.metadata as ListedObject['metadata']).ownerReferences).toEqual([{ apiVersion: CAPI, kind: 'Cluster', name: 'dev', uid: 'dst-cluster' }]);
    // The sender's own ownerReferences are never trusted: without owners there are none
    const none = prepareForCreate(source, { namespace: 'n', sourceUid: 's', owners: [], uidMap: new Map([['src-md', 'dst-md']]) });
    expect(none.metadata).not.toHaveProperty('ownerReferences');
    expect(prepareForCreate('not an object', { namespace: 'n', sourceUid: 's', owners: [], uidMap: new Map() })).toEqual({ metadata: { annotations: { [MOVE.sourceUid]: 's' }, namespace: 'n' } });
  });
});

describe('pausing', () => {
  const cluster = (spec: Record<string, unknown>, annotations?: Record<string, string>): ListedObject => ({ apiVersion: CAPI, kind: 'Cluster', metadata: { name: 'dev', ...(annotations ? { annotations } : {}) }, spec });
  const md: ListedObject = { apiVersion: CAPI, kind: 'MachineDeployment', metadata: { name: 'dev-md' } };

  it('pauses a Cluster by spec.paused and everything else by the annotation', () => {
    // GIVEN a Cluster of CAPI's group and another kind THEN each gets its own pause, and is judged by it
    expect(isCapiCluster(cluster({}))).toBe(true);
    expect(isCapiCluster({ apiVersion: 'other.io/v1', kind: 'Cluster', metadata: { name: 'x' } })).toBe(false);
    expect(pausePatch(cluster({}))).toEqual({ spec: { paused: true } });
    expect(pausePatch(md)).toEqual({ metadata: { annotations: { [MOVE.paused]: '' } } });
    expect(isPaused(cluster({ paused: true }))).toBe(true);
    expect(isPaused(cluster({ paused: false }))).toBe(false);
    expect(isPaused(md)).toBe(false);
    expect(isPaused({ ...md, metadata: { name: 'dev-md', annotations: { [MOVE.paused]: '' } } })).toBe(true);
  });

  it('treats the annotation on a Cluster as paused too (CAPI checks both), and unpauses both ways', () => {
    // GIVEN a Cluster paused by the annotation only THEN it is paused, and its unpause removes both
    const annotated = cluster({}, { [MOVE.paused]: '' });
    expect(isPaused(annotated)).toBe(true);
    expect(unpausePatch(annotated)).toEqual({ spec: { paused: null }, metadata: { annotations: { [MOVE.paused]: null } } });
    // a Cluster without the annotation gets no annotations map from its unpause
    expect(unpausePatch(cluster({ paused: true }))).toEqual({ spec: { paused: null } });
    expect(unpausePatch(md)).toEqual({ metadata: { annotations: { [MOVE.paused]: null } } });
  });
});

describe('before and while moving', () => {
  const cluster = (status: Record<string, unknown>, generation = 2): ListedObject => ({ apiVersion: CAPI, kind: 'Cluster', metadata: { name: 'dev', generation }, spec: { paused: true }, status } as ListedObject);

  it('counts a pause as acknowledged only once the Paused condition is True at the current generation', () => {
    expect(pauseAcknowledged(cluster({ conditions: [{ type: 'Paused', status: 'False', observedGeneration: 1 }] }))).toBe(false);
    expect(pauseAcknowledged(cluster({ conditions: [{ type: 'Paused', status: 'True', observedGeneration: 1 }] }))).toBe(false);
    expect(pauseAcknowledged(cluster({ conditions: [{ type: 'Paused', status: 'True', observedGeneration: 2 }] }))).toBe(true);
    // An older contract without the condition cannot say: acknowledged
    expect(pauseAcknowledged(cluster({}))).toBe(true);
  });

  it('pauses an object in place the way the pause patch would', () => {
    const { cluster: c, md } = devObjects();
    expect(isPaused(withPause(c)) && isPaused(withPause(md))).toBe(true);
    expect(withPause(c).spec).toEqual({ paused: true });
    expect(withPause(md).metadata.annotations).toEqual({ [MOVE.paused]: '' });
    const already = withPause(md);
    expect(withPause(already)).toBe(already);
  });

  it('holds the move back as clusterctl does: Machines without a Node, deletions, block-move, and objects paused by someone else', () => {
    const machine = (nodeRef: unknown): ListedObject => ({ apiVersion: CAPI, kind: 'Machine', metadata: { name: 'm' }, status: { nodeRef } } as ListedObject);
    expect(moveBlocker([machine({ name: 'node-1' })])).toBeUndefined();
    expect(moveBlocker([machine(undefined)])).toBe('Machine m has no Node yet (still provisioning)');
    expect(moveBlocker([{ apiVersion: CAPI, kind: 'MachineSet', metadata: { name: 'ms', deletionTimestamp: '2026-01-01T00:00:00Z' } }])).toBe('MachineSet ms is being deleted');
    expect(moveBlocker([{ apiVersion: INFRA, kind: 'DockerCluster', metadata: { name: 'd', annotations: { [MOVE.blockMove]: '' } } }])).toBe(`DockerCluster d has the ${MOVE.blockMove} annotation`);
    expect(moveBlocker([withPause(devObjects().md)])).toMatch(/is paused/);
  });
});
