/**
 * Conformance of the simulated API server, part 3: deletion. Finalizers and deletionTimestamp, the
 * garbage collector's propagation policies, and namespace finalization, checked through
 * @kubernetes/client-node over loopback HTTP.
 */
import { eventually, failure, startSim, type SimClients } from './testing.js';
import { fileURLToPath } from 'node:url';
import { PatchStrategy, setHeaderOptions, type KubernetesObject, type V1OwnerReference } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TEST_CRDS = fileURLToPath(new URL('./testdata/test-crds.yaml', import.meta.url));
const G = 'test.lattice.dev';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

let sim: SimClients;
let seq = 0;
async function freshNamespace(): Promise<string> {
  const name = `life-${++seq}`;
  await sim.core.createNamespace({ body: { metadata: { name } } });
  return name;
}
async function gone(call: Promise<unknown>): Promise<void> {
  expect((await failure(call)).code).toBe(404);
}
function ownedBy(owner: KubernetesObject, block = false): V1OwnerReference {
  return { apiVersion: owner.apiVersion ?? 'v1', kind: owner.kind ?? 'ConfigMap', name: owner.metadata?.name ?? '', uid: owner.metadata?.uid ?? '', ...(block ? { blockOwnerDeletion: true } : {}) };
}

beforeAll(async () => {
  sim = await startSim({ crds: [TEST_CRDS] });
});
afterAll(async () => {
  await sim.server.close();
});

describe('finalizers and deletionTimestamp', () => {
  it('delete of an object with finalizers sets deletionTimestamp (grace 0), answers 200 with it, and keeps it until the last finalizer goes', async () => {
    // GIVEN a widget with two finalizers
    const ns = await freshNamespace();
    const args = { group: G, version: 'v1', namespace: ns, plural: 'widgets', name: 'held' };
    const created = await sim.custom.createNamespacedCustomObject({ ...args, body: { apiVersion: `${G}/v1`, kind: 'Widget', metadata: { name: 'held', finalizers: ['a.example.com/x', 'b.example.com/y'] }, spec: { size: 'small' } } }) as KubernetesObject;
    // WHEN it is deleted
    const deleting = await sim.custom.deleteNamespacedCustomObject(args) as KubernetesObject;
    // THEN it is returned with deletionTimestamp, and generation bumped as the API server does for deletion
    expect(deleting.metadata?.deletionTimestamp).toBeDefined();
    expect(deleting.metadata?.deletionGracePeriodSeconds).toBe(0);
    expect(deleting.metadata?.generation).toBe((created.metadata?.generation ?? 0) + 1);
    // AND a second delete changes nothing
    const again = await sim.custom.deleteNamespacedCustomObject(args) as KubernetesObject;
    expect(again.metadata?.resourceVersion).toBe(deleting.metadata?.resourceVersion);
    // AND adding a finalizer now is forbidden
    const adding = await failure(sim.custom.patchNamespacedCustomObject({ ...args, body: { metadata: { finalizers: ['a.example.com/x', 'b.example.com/y', 'c.example.com/z'] } } }, merge));
    expect(adding.code).toBe(422);
    expect(adding.status.message).toContain('no new finalizers can be added if the object is being deleted');
    // WHEN one finalizer is removed the object stays; WHEN the last is removed it is gone
    await sim.custom.patchNamespacedCustomObject({ ...args, body: { metadata: { finalizers: ['b.example.com/y'] } } }, merge);
    expect(((await sim.custom.getNamespacedCustomObject(args)) as KubernetesObject).metadata?.finalizers).toEqual(['b.example.com/y']);
    await sim.custom.patchNamespacedCustomObject({ ...args, body: { metadata: { finalizers: null } } }, merge);
    await gone(sim.custom.getNamespacedCustomObject(args));
  });

  it('delete preconditions: a stale uid or resourceVersion is 409 Conflict', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap
    const cm = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'pre' } } });
    // WHEN it is deleted with another uid as precondition THEN it conflicts
    const byUid = await failure(sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'pre', body: { preconditions: { uid: 'other' } } }));
    expect(byUid.code).toBe(409);
    expect(byUid.status.message).toContain('Precondition failed: UID in precondition: other');
    // WHEN it changed since the resourceVersion given as precondition THEN it conflicts
    await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'pre', body: { data: { a: 'b' } } }, merge);
    expect((await failure(sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'pre', body: { preconditions: { resourceVersion: cm.metadata?.resourceVersion } } }))).code).toBe(409);
  });
});

describe('garbage collection through ownerReferences', () => {
  it('background (default): dependents of a deleted owner are deleted', async () => {
    // GIVEN an owner with a dependent
    const ns = await freshNamespace();
    const owner = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'owner' } } });
    await sim.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'dep', ownerReferences: [ownedBy({ ...owner, apiVersion: 'v1', kind: 'ConfigMap' })] } } });
    // WHEN the owner is deleted
    await sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner' });
    // THEN the dependent goes too (asynchronously, as in Kubernetes)
    await eventually(() => gone(sim.core.readNamespacedSecret({ namespace: ns, name: 'dep' })));
  });

  it('a dependent of two owners survives the loss of one and drops the dangling reference', async () => {
    const ns = await freshNamespace();
    // GIVEN a Secret owned by two ConfigMaps
    const a = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'a' } } });
    const b = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'b' } } });
    await sim.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'shared', ownerReferences: [ownedBy({ ...a, kind: 'ConfigMap' }), ownedBy({ ...b, kind: 'ConfigMap' })] } } });
    // WHEN one owner is deleted
    await sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'a' });
    await eventually(async () => {
      // THEN the Secret stays, owned by the other only
      const s = await sim.core.readNamespacedSecret({ namespace: ns, name: 'shared' });
      expect(s.metadata?.ownerReferences?.map((r) => r.name)).toEqual(['b']);
    });
  });

  it('an owner reference to a uid that does not exist gets the dependent collected', async () => {
    const ns = await freshNamespace();
    // GIVEN a Secret whose owner never existed WHEN it is created THEN the collector deletes it
    await sim.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'orphaned', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'never', uid: '11111111-2222-3333-4444-555555555555' }] } } });
    await eventually(() => gone(sim.core.readNamespacedSecret({ namespace: ns, name: 'orphaned' })));
  });

  it('orphan: dependents keep living without the owner reference', async () => {
    const ns = await freshNamespace();
    // GIVEN an owner with a dependent
    const owner = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'owner' } } });
    await sim.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'dep', ownerReferences: [ownedBy({ ...owner, kind: 'ConfigMap' })] } } });
    // WHEN the owner is deleted with propagationPolicy=Orphan (a query parameter)
    await sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner', propagationPolicy: 'Orphan' });
    // THEN the owner goes and the dependent stays, without the reference
    await eventually(() => gone(sim.core.readNamespacedConfigMap({ namespace: ns, name: 'owner' })));
    const dep = await sim.core.readNamespacedSecret({ namespace: ns, name: 'dep' });
    expect(dep.metadata?.ownerReferences).toBeUndefined();
  });

  it('foreground: the owner waits with the foregroundDeletion finalizer until blocking dependents are gone', async () => {
    // GIVEN an owner whose dependent blocks owner deletion and is itself held by a finalizer
    const ns = await freshNamespace();
    const owner = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'owner' } } });
    await sim.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'dep', finalizers: ['example.com/hold'], ownerReferences: [ownedBy({ ...owner, kind: 'ConfigMap' }, true)] } } });
    // WHEN the owner is deleted in the foreground
    await sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'owner', body: { propagationPolicy: 'Foreground' } });
    // THEN the owner is held by foregroundDeletion while the dependent is being deleted
    await eventually(async () => expect((await sim.core.readNamespacedSecret({ namespace: ns, name: 'dep' })).metadata?.deletionTimestamp).toBeDefined());
    const waiting = await sim.core.readNamespacedConfigMap({ namespace: ns, name: 'owner' });
    expect(waiting.metadata?.deletionTimestamp).toBeDefined();
    expect(waiting.metadata?.finalizers).toEqual(['foregroundDeletion']);
    // WHEN the dependent's finalizer is released THEN both are gone
    await sim.core.patchNamespacedSecret({ namespace: ns, name: 'dep', body: { metadata: { finalizers: null } } }, merge);
    await eventually(() => gone(sim.core.readNamespacedConfigMap({ namespace: ns, name: 'owner' })));
  });

  it('garbageCollection: false leaves dependents alone (like envtest, which runs no controllers)', async () => {
    // GIVEN a server without garbage collector, an owner and a dependent
    const quiet = await startSim({ garbageCollection: false });
    try {
      const owner = await quiet.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner' } } });
      await quiet.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'dep', ownerReferences: [ownedBy({ ...owner, kind: 'ConfigMap' })] } } });
      // WHEN the owner is deleted
      await quiet.core.deleteNamespacedConfigMap({ namespace: 'default', name: 'owner' });
      // A later write makes sure any pending asynchronous work has had its turn.
      await quiet.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'later' } } });
      // THEN the dependent keeps its dangling reference
      expect((await quiet.core.readNamespacedSecret({ namespace: 'default', name: 'dep' })).metadata?.ownerReferences).toHaveLength(1);
    } finally {
      await quiet.server.close();
    }
  });
});

describe('namespaces', () => {
  it('deleting a namespace marks it Terminating, forbids new content (403), deletes its objects, then goes', async () => {
    // GIVEN a namespace with a ConfigMap and a widget held by a finalizer
    const ns = await freshNamespace();
    await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'cm' } } });
    const args = { group: G, version: 'v1', namespace: ns, plural: 'widgets', name: 'held' };
    await sim.custom.createNamespacedCustomObject({ ...args, body: { apiVersion: `${G}/v1`, kind: 'Widget', metadata: { name: 'held', finalizers: ['example.com/hold'] }, spec: { size: 'small' } } });
    // WHEN the namespace is deleted
    const terminating = await sim.core.deleteNamespace({ name: ns }) as KubernetesObject & { status?: { phase?: string } };
    // THEN it is Terminating and refuses new content
    expect(terminating.status?.phase).toBe('Terminating');
    const refused = await failure(sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'late' } } }));
    expect(refused.code).toBe(403);
    expect(refused.status.message).toBe(`unable to create new content in namespace ${ns} because it is being terminated`);
    // AND its content is deleted, the finalizer-held widget waits
    await eventually(() => gone(sim.core.readNamespacedConfigMap({ namespace: ns, name: 'cm' })));
    await eventually(async () => expect(((await sim.custom.getNamespacedCustomObject(args)) as KubernetesObject).metadata?.deletionTimestamp).toBeDefined());
    expect((await sim.core.readNamespace({ name: ns })).status?.phase).toBe('Terminating');
    // WHEN the widget's finalizer is released THEN the namespace goes
    await sim.custom.patchNamespacedCustomObject({ ...args, body: { metadata: { finalizers: null } } }, merge);
    await eventually(() => gone(sim.core.readNamespace({ name: ns })));
  });

  it('the default namespace may not be deleted (403)', async () => {
    // GIVEN the default namespace WHEN it is deleted THEN it is forbidden
    const { code, status } = await failure(sim.core.deleteNamespace({ name: 'default' }));
    expect(code).toBe(403);
    expect(status.message).toBe('namespaces "default" is forbidden: this namespace may not be deleted');
  });
});
