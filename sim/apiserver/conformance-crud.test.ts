/**
 * Conformance of the simulated API server, part 1: built-in kinds, object metadata, errors and patches,
 * checked through @kubernetes/client-node over loopback HTTP.
 */
import { failure, startSim, type SimClients } from './testing.js';
import { PatchStrategy, setHeaderOptions, type KubernetesObject, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
let sim: SimClients;
let seq = 0;
/** A fresh namespace per test keeps the tests independent on one server. */
async function freshNamespace(): Promise<string> {
  const name = `crud-${++seq}`;
  await sim.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

beforeAll(async () => {
  sim = await startSim({ maxBodyBytes: 64 * 1024 });
});
afterAll(async () => {
  await sim.server.close();
});

describe('object metadata', () => {
  it('create sets uid, creationTimestamp and a resourceVersion from one global counter; ConfigMaps have no generation', async () => {
    // GIVEN two namespaces
    const a = await freshNamespace();
    const b = await freshNamespace();
    // WHEN a ConfigMap is created in each
    const first = await sim.core.createNamespacedConfigMap({ namespace: a, body: { metadata: { name: 'one' }, data: { k: 'v' } } });
    const second = await sim.core.createNamespacedConfigMap({ namespace: b, body: { metadata: { name: 'one' } } });
    // THEN resourceVersions come from one increasing counter across namespaces and kinds
    expect(Number(second.metadata?.resourceVersion)).toBeGreaterThan(Number(first.metadata?.resourceVersion));
    expect(first.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.metadata?.uid).not.toBe(second.metadata?.uid);
    expect(first.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(first.metadata?.generation).toBeUndefined();
    expect(first.metadata?.namespace).toBe(a);
  });

  it('generateName appends a random 5-character suffix', async () => {
    const ns = await freshNamespace();
    // GIVEN a namespace WHEN three ConfigMaps are created with the same generateName
    const made = await Promise.all([1, 2, 3].map(() => sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { generateName: 'job-' } } })));
    const names = made.map((m) => m.metadata?.name ?? '');
    // THEN each gets its own name: the prefix and 5 random characters
    for (const n of names) expect(n).toMatch(/^job-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    expect(new Set(names).size).toBe(3);
  });

  it('invalid names and label values are 422 Invalid with one cause per field', async () => {
    const ns = await freshNamespace();
    // GIVEN a name and a label value that break the syntax rules WHEN the ConfigMap is created
    const { code, status } = await failure(sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'Not_Valid', labels: { ok: 'bad value!' } } } }));
    // THEN the message and the causes name both fields
    expect(code).toBe(422);
    expect(status.reason).toBe('Invalid');
    expect(status.message).toMatch(/^ConfigMap "Not_Valid" is invalid: \[metadata\.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain/);
    const causes = (status.details?.causes ?? []) as { field: string; reason: string }[];
    expect(causes.map((c) => c.field)).toEqual(['metadata.name', 'metadata.labels']);
    expect(causes.every((c) => c.reason === 'FieldValueInvalid')).toBe(true);
  });

  it('a resourceVersion on create is rejected the way etcd3 storage rejects it (500)', async () => {
    const ns = await freshNamespace();
    // GIVEN a body carrying a resourceVersion WHEN it is created
    const { code, status } = await failure(sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'x', resourceVersion: '5' } } }));
    // THEN storage refuses it
    expect(code).toBe(500);
    expect(status.message).toBe('resourceVersion should not be set on objects to be created');
  });
});

describe('errors are Kubernetes Status objects', () => {
  it('create of an existing name is 409 AlreadyExists', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap named dup
    await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'dup' } } });
    // WHEN another one is created with the same name
    const { code, status } = await failure(sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'dup' } } }));
    expect(code).toBe(409);
    expect(status).toEqual({
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'configmaps "dup" already exists',
      reason: 'AlreadyExists', details: { name: 'dup', kind: 'configmaps' }, code: 409,
    });
  });

  it('get of a missing object is 404 NotFound naming group and resource', async () => {
    // GIVEN no Lease named nope WHEN it is read
    const { code, status } = await failure(sim.coordination.readNamespacedLease({ namespace: 'default', name: 'nope' }));
    // THEN the Status names the group and the resource
    expect(code).toBe(404);
    expect(status).toMatchObject({ reason: 'NotFound', message: 'leases.coordination.k8s.io "nope" not found', details: { name: 'nope', group: 'coordination.k8s.io', kind: 'leases' } });
  });

  it('create in a namespace that does not exist is 404 NotFound for the namespace', async () => {
    // GIVEN no namespace named missing WHEN a Secret is created in it
    const { code, status } = await failure(sim.core.createNamespacedSecret({ namespace: 'missing', body: { metadata: { name: 's' } } }));
    // THEN the namespace is what is not found
    expect(code).toBe(404);
    expect(status).toMatchObject({ reason: 'NotFound', message: 'namespaces "missing" not found', details: { name: 'missing', kind: 'namespaces' } });
  });

  it('a name in the body that differs from the URL is 400 BadRequest', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap named a
    await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'a' } } });
    // WHEN it is replaced with a body named b
    const { code, status } = await failure(sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'a', body: { metadata: { name: 'b' } } }));
    // THEN the mismatch is a bad request
    expect(code).toBe(400);
    expect(status).toMatchObject({ reason: 'BadRequest', message: 'the name of the object (b) does not match the name on the URL (a)' });
  });

  it('a namespace in the body that differs from the URL is 400 BadRequest', async () => {
    const ns = await freshNamespace();
    // GIVEN a body naming another namespace WHEN it is posted to this one
    const { code, status } = await failure(sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'a', namespace: 'default' } } }));
    // THEN the mismatch is a bad request
    expect(code).toBe(400);
    expect(status.message).toBe('the namespace of the provided object does not match the namespace sent on the request');
  });

  it('malformed JSON, a non-object body and wrongly typed metadata are 400 BadRequest', async () => {
    // GIVEN bodies that do not decode into an object: broken JSON, an array, a number label, a wrong apiVersion
    const post = (body: string) => fetch(`${sim.url}/api/v1/namespaces/default/configmaps`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    // WHEN each is posted THEN each is a 400 Status
    for (const body of ['{"metadata":', '[1,2]', '{"metadata":{"name":"x","labels":{"a":1}}}', '{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}']) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect(await res.json()).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'BadRequest', code: 400 });
    }
  });

  it('unknown paths are 404 and unsupported methods 405, both as Status bodies', async () => {
    // WHEN an unknown resource is read THEN it is a 404 Status
    const unknown = await fetch(`${sim.url}/apis/nope.example.com/v1/things`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ kind: 'Status', reason: 'NotFound', message: 'the server could not find the requested resource' });
    // WHEN a collection is PUT THEN it is a 405 Status
    const put = await fetch(`${sim.url}/api/v1/namespaces/default/configmaps`, { method: 'PUT', body: '{}' });
    expect(put.status).toBe(405);
    expect(await put.json()).toMatchObject({ kind: 'Status', reason: 'MethodNotAllowed', code: 405 });
  });

  it('a body over the size limit is 413 RequestEntityTooLarge', async () => {
    const res = await fetch(`${sim.url}/api/v1/namespaces/default/configmaps`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      // GIVEN a server limited to 64 KiB WHEN a 100 KiB ConfigMap is posted
      body: JSON.stringify({ metadata: { name: 'big' }, data: { blob: 'x'.repeat(100 * 1024) } }),
    });
    // THEN it is refused with 413
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ reason: 'RequestEntityTooLarge', code: 413 });
  });
});

describe('update (PUT)', () => {
  it('a stale resourceVersion is 409 Conflict; the current one succeeds with a new resourceVersion', async () => {
    // GIVEN a ConfigMap read by two writers
    const ns = await freshNamespace();
    const cm = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'race' }, data: { n: '0' } } });
    // WHEN the first writer updates it
    const updated = await sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'race', body: { ...cm, data: { n: '1' } } });
    // THEN the second writer's update with the old resourceVersion conflicts
    const { code, status } = await failure(sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'race', body: { ...cm, data: { n: '2' } } }));
    expect(code).toBe(409);
    expect(status).toMatchObject({
      reason: 'Conflict',
      message: `Operation cannot be fulfilled on configmaps "race": the object has been modified; please apply your changes to the latest version and try again`,
    });
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(Number(cm.metadata?.resourceVersion));
    expect((await sim.core.readNamespacedConfigMap({ namespace: ns, name: 'race' })).data).toEqual({ n: '1' });
  });

  it('without a resourceVersion a ConfigMap update is unconditional', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap
    await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'u' }, data: { a: '1' } } });
    // WHEN it is replaced by a body without resourceVersion
    const res = await sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'u', body: { metadata: { name: 'u' }, data: { a: '2' } } });
    // THEN the update applies
    expect(res.data).toEqual({ a: '2' });
  });

  it('an update that changes nothing keeps the resourceVersion (no write, no event)', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap
    const cm = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'same', labels: { a: 'b' } }, data: { k: 'v' } } });
    // WHEN it is replaced by itself
    const again = await sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'same', body: cm });
    // THEN nothing was written
    expect(again.metadata?.resourceVersion).toBe(cm.metadata?.resourceVersion);
  });

  it('uid, creationTimestamp and namespace cannot be changed by an update', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap
    const cm = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'imm' } } });
    // WHEN an update carries another uid THEN it conflicts
    const { code } = await failure(sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'imm', body: { metadata: { name: 'imm', uid: '00000000-0000-0000-0000-000000000000' } } }));
    expect(code).toBe(409);
    // WHEN an update carries another creationTimestamp THEN the stored one is kept
    const kept = await sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'imm', body: { metadata: { name: 'imm', creationTimestamp: new Date(0) }, data: { a: 'b' } } });
    expect(kept.metadata?.creationTimestamp).toEqual(cm.metadata?.creationTimestamp);
    expect(kept.metadata?.uid).toBe(cm.metadata?.uid);
  });

  it('Lease (coordination.k8s.io/v1) is created by a PUT to a missing name, as its strategy allows', async () => {
    const ns = await freshNamespace();
    // GIVEN no Lease named leader WHEN it is PUT THEN it is created
    const lease = await sim.coordination.replaceNamespacedLease({ namespace: ns, name: 'leader', body: { metadata: { name: 'leader' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } } });
    expect(lease.spec?.holderIdentity).toBe('a');
    // WHEN it is PUT again THEN it is updated
    const renewed = await sim.coordination.replaceNamespacedLease({ namespace: ns, name: 'leader', body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } } });
    expect(renewed.spec?.holderIdentity).toBe('b');
    // ConfigMaps do not allow create-on-update
    expect((await failure(sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'nope', body: { metadata: { name: 'nope' } } }))).code).toBe(404);
  });
});

describe('built-in kinds keep their strategies', () => {
  it('Secret stringData is merged into base64 data and never stored; type defaults to Opaque', async () => {
    const ns = await freshNamespace();
    // GIVEN a Secret with both data and stringData WHEN it is created
    const secret = await sim.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's' }, data: { a: Buffer.from('x').toString('base64') }, stringData: { token: 'hunter2' } } });
    // THEN stringData is folded into data and dropped
    expect(secret.stringData).toBeUndefined();
    expect(secret.type).toBe('Opaque');
    expect(Buffer.from(secret.data?.token ?? '', 'base64').toString()).toBe('hunter2');
    expect(secret.data?.a).toBe('eA==');
    // AND data that is not base64 is invalid
    const { code } = await failure(sim.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'bad' }, data: { a: 'not base64!' } } }));
    expect(code).toBe(422);
  });

  it('an immutable ConfigMap refuses data changes (422) but accepts metadata changes', async () => {
    const ns = await freshNamespace();
    // GIVEN an immutable ConfigMap
    const frozen = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'frozen' }, data: { a: '1' }, immutable: true } });
    // WHEN its data is replaced THEN it is refused
    const { code, status } = await failure(sim.core.replaceNamespacedConfigMap({ namespace: ns, name: 'frozen', body: { ...frozen, data: { a: '2' } } }));
    expect(code).toBe(422);
    expect(status.message).toContain('field is immutable when `immutable` is set');
    // WHEN only its labels change THEN it is accepted
    const labelled = await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'frozen', body: { metadata: { labels: { ok: 'yes' } } } }, merge);
    expect(labelled.metadata?.labels).toEqual({ ok: 'yes' });
  });

  it('Namespace create sets phase Active and the kubernetes spec finalizer', async () => {
    // GIVEN a Namespace asking for phase Terminating WHEN it is created
    const ns = await sim.core.createNamespace({ body: { metadata: { name: 'fresh-ns' }, status: { phase: 'Terminating' } } });
    // THEN it is Active and carries the namespace controller's finalizer
    expect(ns.status?.phase).toBe('Active');
    expect(ns.spec?.finalizers).toEqual(['kubernetes']);
  });

  it('Service create resets status; Node create keeps it; later main-resource writes ignore status', async () => {
    const ns = await freshNamespace();
    // GIVEN a Service and a Node, both created with a status
    const svc = await sim.core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] }, status: { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } } } });
    // THEN the Service's status was reset
    expect(svc.status?.loadBalancer?.ingress).toBeUndefined();
    const node = await sim.core.createNode({ body: { metadata: { name: `node-${seq}` }, status: { phase: 'Running', nodeInfo: undefined } } });
    // AND the Node's status was kept
    expect(node.status?.phase).toBe('Running');
    // WHEN the Node is replaced with another status THEN the status stays
    const replaced = await sim.core.replaceNode({ name: node.metadata?.name ?? '', body: { ...node, status: { phase: 'Terminated' } } });
    expect(replaced.status?.phase).toBe('Running');
    // WHEN the status is written through /status THEN it changes
    const viaStatus = await sim.core.replaceNodeStatus({ name: node.metadata?.name ?? '', body: { ...replaced, status: { phase: 'Pending' } } });
    expect(viaStatus.status?.phase).toBe('Pending');
  });

  it('Events can be selected by involvedObject fields', async () => {
    const ns = await freshNamespace();
    // GIVEN two Events about different objects
    for (const [name, obj] of [['e1', 'alpha'], ['e2', 'beta']] as const) {
      await sim.core.createNamespacedEvent({ namespace: ns, body: { metadata: { name }, involvedObject: { kind: 'ConfigMap', name: obj, namespace: ns }, reason: 'Tested', message: 'm', type: 'Normal' } });
    }
    // WHEN they are listed by involvedObject.name and reason
    const list = await sim.core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=beta,reason=Tested' });
    // THEN only the matching one is returned
    expect(list.items.map((e) => e.metadata?.name)).toEqual(['e2']);
  });

  it('unknown top-level fields of built-ins are dropped with a Warning; fieldValidation=Strict makes them 400', async () => {
    const ns = await freshNamespace();
    // GIVEN a ConfigMap with an unknown top-level field
    const body = JSON.stringify({ metadata: { name: 'w' }, data: { a: 'b' }, bogus: true });
    // WHEN it is posted THEN the field is dropped with a warning
    const res = await fetch(`${sim.url}/api/v1/namespaces/${ns}/configmaps`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('warning')).toBe('299 - "unknown field \\"bogus\\""');
    expect(await res.json()).not.toHaveProperty('bogus');
    // WHEN it is posted with fieldValidation=Strict THEN it is a bad request
    const strict = await fetch(`${sim.url}/api/v1/namespaces/${ns}/configmaps?fieldValidation=Strict`, { method: 'POST', body: body.replace('"w"', '"w2"'), headers: { 'Content-Type': 'application/json' } });
    expect(strict.status).toBe(400);
    expect(await strict.json()).toMatchObject({ message: 'strict decoding error: unknown field "bogus"' });
  });

  it('dryRun=All runs every check but stores nothing', async () => {
    const ns = await freshNamespace();
    // GIVEN a namespace WHEN a ConfigMap is created with dryRun=All
    const dry = await sim.core.createNamespacedConfigMap({ namespace: ns, dryRun: 'All', body: { metadata: { name: 'ghost' } } });
    // THEN the answer is the object, but nothing was stored
    expect(dry.metadata?.name).toBe('ghost');
    expect((await failure(sim.core.readNamespacedConfigMap({ namespace: ns, name: 'ghost' }))).code).toBe(404);
  });
});

describe('patch', () => {
  async function configMap(ns: string, body: V1ConfigMap = {}) {
    return sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'p', labels: { keep: 'yes', drop: 'yes' } }, data: { a: '1', b: '2' }, ...body } });
  }

  it('JSON patch (RFC 6902, the typed clients\' default content type) applies operations in order', async () => {
    // GIVEN a ConfigMap
    const ns = await freshNamespace();
    await configMap(ns);
    // WHEN a JSON patch tests, replaces, removes and adds
    const patched = await sim.core.patchNamespacedConfigMap({
      namespace: ns, name: 'p',
      body: [{ op: 'test', path: '/data/a', value: '1' }, { op: 'replace', path: '/data/a', value: '10' }, { op: 'remove', path: '/data/b' }, { op: 'add', path: '/metadata/labels/new', value: 'x' }],
    });
    // THEN every operation applied
    expect(patched.data).toEqual({ a: '10' });
    expect(patched.metadata?.labels).toEqual({ keep: 'yes', drop: 'yes', new: 'x' });
  });

  it('a JSON patch whose test fails is 422; a JSON patch that is not an array is 400', async () => {
    // GIVEN a ConfigMap
    const ns = await freshNamespace();
    await configMap(ns);
    // WHEN a patch's test fails, or it removes a missing path THEN it is Invalid
    const failed = await failure(sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'p', body: [{ op: 'test', path: '/data/a', value: 'other' }] }));
    expect(failed.code).toBe(422);
    const missing = await failure(sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'p', body: [{ op: 'remove', path: '/data/zzz' }] }));
    expect(missing.code).toBe(422);
    // WHEN the patch is not an array THEN it is a bad request
    const notArray = await failure(sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'p', body: { op: 'remove' } }));
    expect(notArray.code).toBe(400);
    // AND the object is unchanged
    expect((await sim.core.readNamespacedConfigMap({ namespace: ns, name: 'p' })).data).toEqual({ a: '1', b: '2' });
  });

  it('merge patch (RFC 7386) merges objects, deletes keys set to null, replaces arrays', async () => {
    // GIVEN a ConfigMap
    const ns = await freshNamespace();
    await configMap(ns);
    // WHEN a merge patch sets, nulls and adds keys
    const patched = await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'p', body: { metadata: { labels: { drop: null, added: 'y' }, finalizers: ['example.com/f'] }, data: { b: null, c: '3' } } }, merge);
    // THEN maps are merged and nulls delete
    expect(patched.metadata?.labels).toEqual({ keep: 'yes', added: 'y' });
    expect(patched.data).toEqual({ a: '1', c: '3' });
    // WHEN a list is patched THEN it is replaced, not merged
    const arr = await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'p', body: { metadata: { finalizers: ['example.com/g'] } } }, merge);
    expect(arr.metadata?.finalizers).toEqual(['example.com/g']);
  });

  it('a patch carrying a stale resourceVersion is 409 Conflict; a patch without one applies to the current object', async () => {
    // GIVEN a ConfigMap read at some resourceVersion
    const ns = await freshNamespace();
    const cm = await configMap(ns);
    // WHEN someone else patches it (without a resourceVersion: applied to whatever is current)
    await sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'p', body: { data: { a: 'changed' } } }, merge);
    // THEN a patch carrying the old resourceVersion conflicts
    const { code } = await failure(sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'p', body: { metadata: { resourceVersion: cm.metadata?.resourceVersion }, data: { a: 'x' } } }, merge));
    expect(code).toBe(409);
  });

  it('strategic merge patch (KubernetesObjectApi\'s default) is applied to built-ins as a merge patch', async () => {
    // GIVEN a ConfigMap
    const ns = await freshNamespace();
    await configMap(ns);
    // WHEN KubernetesObjectApi patches it with its default content type
    const patched = await sim.objects.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'p', namespace: ns }, data: { z: '26' } } as KubernetesObject);
    // THEN the data is merged
    expect((patched as V1ConfigMap).data).toEqual({ a: '1', b: '2', z: '26' });
  });

  it('server-side apply creates, then merges into, the object; it requires a fieldManager (400)', async () => {
    // GIVEN a desired ConfigMap that does not exist yet
    const ns = await freshNamespace();
    const desired = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'applied', namespace: ns }, data: { a: '1' } };
    // WHEN it is applied without a fieldManager THEN it is a bad request
    const missingManager = await failure(sim.objects.patch(desired, undefined, undefined, undefined, undefined, PatchStrategy.ServerSideApply));
    expect(missingManager.code).toBe(400);
    // WHEN it is applied THEN it is created
    const created = (await sim.objects.patch(desired, undefined, undefined, 'lattice', true, PatchStrategy.ServerSideApply)) as V1ConfigMap;
    expect(created.data).toEqual({ a: '1' });
    // WHEN another configuration is applied THEN it is merged in
    const updated = (await sim.objects.patch({ ...desired, data: { b: '2' } }, undefined, undefined, 'lattice', true, PatchStrategy.ServerSideApply)) as V1ConfigMap;
    expect(updated.data).toEqual({ a: '1', b: '2' });
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
  });

  it('an unsupported patch content type is 415 UnsupportedMediaType', async () => {
    // GIVEN a ConfigMap
    const ns = await freshNamespace();
    await configMap(ns);
    // WHEN it is patched with a text/plain body
    const res = await fetch(`${sim.url}/api/v1/namespaces/${ns}/configmaps/p`, { method: 'PATCH', body: '{}', headers: { 'Content-Type': 'text/plain' } });
    // THEN the media type is refused
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ reason: 'UnsupportedMediaType', code: 415 });
  });

  it('patching a missing object is 404', async () => {
    // GIVEN no ConfigMap named none WHEN it is patched THEN it is not found
    const ns = await freshNamespace();
    expect((await failure(sim.core.patchNamespacedConfigMap({ namespace: ns, name: 'none', body: { data: {} } }, merge))).code).toBe(404);
  });
});

describe('delete', () => {
  it('DELETE of a ConfigMap answers with a Success Status and the object is gone', async () => {
    // GIVEN a ConfigMap
    const ns = await freshNamespace();
    const cm = await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'd' } } });
    // WHEN it is deleted
    const status = await sim.core.deleteNamespacedConfigMap({ namespace: ns, name: 'd' });
    // THEN the answer is a Success Status and the object is gone
    expect(status).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'd', kind: 'configmaps', uid: cm.metadata?.uid } });
    expect((await failure(sim.core.readNamespacedConfigMap({ namespace: ns, name: 'd' }))).code).toBe(404);
  });

  it('deletecollection with a label selector deletes exactly the matching objects', async () => {
    // GIVEN three ConfigMaps in two tiers
    const ns = await freshNamespace();
    for (const [name, tier] of [['a', 'web'], ['b', 'web'], ['c', 'db']]) {
      await sim.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name, labels: { tier: tier ?? '' } } } });
    }
    // WHEN the web tier is deleted as a collection
    await sim.core.deleteCollectionNamespacedConfigMap({ namespace: ns, labelSelector: 'tier=web' });
    // THEN only the db tier remains
    expect((await sim.core.listNamespacedConfigMap({ namespace: ns })).items.map((c) => c.metadata?.name)).toEqual(['c']);
  });

  it('KubernetesObjectApi resolves kinds through discovery for create, read, replace, list and delete', async () => {
    // GIVEN a ServiceAccount described only by apiVersion and kind
    const ns = await freshNamespace();
    const spec = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'robot', namespace: ns } };
    // WHEN it goes through every verb of KubernetesObjectApi THEN each reaches the same object
    const created = await sim.objects.create(spec);
    const read = await sim.objects.read({ ...spec });
    expect((read as KubernetesObject).metadata?.uid).toBe((created as KubernetesObject).metadata?.uid);
    const replaced = await sim.objects.replace({ ...read, automountServiceAccountToken: false } as KubernetesObject);
    expect((replaced as { automountServiceAccountToken?: boolean }).automountServiceAccountToken).toBe(false);
    expect((await sim.objects.list('v1', 'ServiceAccount', ns)).items.map((i) => i.metadata?.name)).toEqual(['robot']);
    await sim.objects.delete({ ...spec });
    expect((await failure(sim.objects.read({ ...spec }))).code).toBe(404);
  });
});
