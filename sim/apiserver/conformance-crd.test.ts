/**
 * Conformance of the simulated API server, part 2: custom resources. CRDs loaded from YAML and created at
 * runtime, every served version, structural schemas (pruning, defaulting, validation), the status
 * subresource and metadata.generation, checked through @kubernetes/client-node over loopback HTTP.
 */
import { failure, startSim, type SimClients } from './testing.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiextensionsV1Api, PatchStrategy, setHeaderOptions, type KubernetesObject, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleClusters, REPO, SHARED } from '../../test/support/repo.js';
import { loadCrdFiles } from './crds.js';

const TEST_CRDS = fileURLToPath(new URL('./testdata/test-crds.yaml', import.meta.url));
const G = 'test.lattice.dev';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface Widget extends KubernetesObject {
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

let sim: SimClients;
let seq = 0;
const name = () => `w${++seq}`;
const widget = (n: string, spec: Record<string, unknown> = { size: 'small' }, extra: Record<string, unknown> = {}) => ({
  apiVersion: `${G}/v1`, kind: 'Widget', metadata: { name: n }, spec, ...extra,
});
const create = (body: object, version = 'v1') => sim.custom.createNamespacedCustomObject({ group: G, version, namespace: 'default', plural: 'widgets', body }) as Promise<Widget>;
const get = (n: string, version = 'v1') => sim.custom.getNamespacedCustomObject({ group: G, version, namespace: 'default', plural: 'widgets', name: n }) as Promise<Widget>;

beforeAll(async () => {
  sim = await startSim({ crds: [TEST_CRDS] });
});
afterAll(async () => {
  await sim.server.close();
});

describe('custom resources from CRD files', () => {
  it('every served version is served; the object is stored once and returned with apiVersion rewritten (no conversion)', async () => {
    // GIVEN a Widget created as v1
    const n = name();
    await create(widget(n));
    // WHEN it is read as v1beta1 and updated through v1beta1
    const asBeta = await get(n, 'v1beta1');
    expect(asBeta.apiVersion).toBe(`${G}/v1beta1`);
    const patched = await sim.custom.patchNamespacedCustomObject({ group: G, version: 'v1beta1', namespace: 'default', plural: 'widgets', name: n, body: { spec: { color: 'red' } } }, merge) as Widget;
    // THEN there is one object, visible in both versions with the same uid and resourceVersion
    const asV1 = await get(n);
    expect(asV1.apiVersion).toBe(`${G}/v1`);
    expect(asV1.metadata?.uid).toBe(asBeta.metadata?.uid);
    expect(asV1.metadata?.resourceVersion).toBe(patched.metadata?.resourceVersion);
    expect(asV1.spec?.color).toBe('red');
    const list = await sim.custom.listNamespacedCustomObject({ group: G, version: 'v1beta1', namespace: 'default', plural: 'widgets' }) as { kind: string; items: Widget[] };
    expect(list.kind).toBe('WidgetList');
    expect(list.items.find((i) => i.metadata?.name === n)?.apiVersion).toBe(`${G}/v1beta1`);
  });

  it('cluster-scoped custom resources live outside namespaces; a namespaced URL for them is 404', async () => {
    // GIVEN a Gadget (cluster-scoped) whose body names a namespace
    const body = { apiVersion: `${G}/v1alpha1`, kind: 'Gadget', metadata: { name: 'g1', namespace: 'default' }, spec: { anything: { goes: 1 } } };
    // WHEN it is created
    const created = await sim.custom.createClusterCustomObject({ group: G, version: 'v1alpha1', plural: 'gadgets', body }) as Widget;
    // THEN it has no namespace, is found cluster-wide, and not under a namespace
    expect(created.metadata?.namespace).toBeUndefined();
    expect(((await sim.custom.getClusterCustomObject({ group: G, version: 'v1alpha1', plural: 'gadgets', name: 'g1' })) as Widget).spec).toEqual({ anything: { goes: 1 } });
    expect((await failure(sim.custom.getNamespacedCustomObject({ group: G, version: 'v1alpha1', namespace: 'default', plural: 'gadgets', name: 'g1' }))).code).toBe(404);
  });

  it('an object the openAPIV3Schema rejects is 422 Invalid with a cause per violation', async () => {
    // GIVEN a Widget breaking an enum, a minimum and a pattern WHEN it is created
    const { code, status } = await failure(create(widget('bad', { size: 'huge', replicas: -1, color: 'Red1' })));
    // THEN it is Invalid with one cause per violation
    expect(code).toBe(422);
    expect(status.reason).toBe('Invalid');
    expect(status.message).toMatch(/^Widget\.test\.lattice\.dev "bad" is invalid: \[/);
    const causes = (status.details?.causes ?? []) as { field: string; reason: string }[];
    expect(causes.map((c) => `${c.field}:${c.reason}`).sort()).toEqual(['spec.color:FieldValueInvalid', 'spec.replicas:FieldValueInvalid', 'spec.size:FieldValueNotSupported']);
    // AND a missing required field is a FieldValueRequired cause
    const missing = await failure(create(widget('bad2', {})));
    expect(missing.status.details?.causes).toEqual([{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.size' }]);
  });

  it('schema defaults are applied on create', async () => {
    // GIVEN a Widget without replicas (schema default 1) WHEN it is created
    const created = await create(widget(name()));
    // THEN the default is stored
    expect(created.spec).toEqual({ size: 'small', replicas: 1 });
  });

  it('unknown fields are pruned with a Warning, except under x-kubernetes-preserve-unknown-fields; nulls of non-nullable fields go too', async () => {
    const n = name();
    // GIVEN a Widget with unknown fields, nulls and free-form extra fields WHEN it is posted
    const res = await fetch(`${sim.url}/apis/${G}/v1/namespaces/default/widgets`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(widget(n, { size: 'large', bogus: 1, tags: null, note: null, extra: { free: { form: true } } }, { topLevel: 'x' })),
    });
    // THEN it is created with a warning naming the pruned field
    expect(res.status).toBe(201);
    expect(res.headers.get('warning')).toContain('unknown field \\"spec.bogus\\"');
    // AND only the unknown fields and the non-nullable null are gone
    const stored = await get(n);
    expect(stored.spec).toEqual({ size: 'large', replicas: 1, note: null, extra: { free: { form: true } } });
    expect(stored).not.toHaveProperty('topLevel');
  });

  it('with validation: false the schema is not consulted', async () => {
    // GIVEN a server with validation off
    const loose = await startSim({ crds: [TEST_CRDS], validation: false });
    try {
      // WHEN a Widget the schema would reject is created
      const created = await loose.custom.createNamespacedCustomObject({ group: G, version: 'v1', namespace: 'default', plural: 'widgets', body: widget('any', { size: 'huge', unknown: true }) }) as Widget;
      // THEN it is stored as sent
      expect(created.spec).toEqual({ size: 'huge', unknown: true });
    } finally {
      await loose.server.close();
    }
  });

  it('strategic merge patch on a custom resource is 415, as on the real API server', async () => {
    const n = name();
    await create(widget(n));
    // GIVEN a Widget WHEN KubernetesObjectApi patches it with its default strategic merge patch
    const { code, status } = await failure(sim.objects.patch({ apiVersion: `${G}/v1`, kind: 'Widget', metadata: { name: n, namespace: 'default' }, spec: { color: 'blue' } } as KubernetesObject));
    // THEN the media type is refused
    expect(code).toBe(415);
    expect(status.reason).toBe('UnsupportedMediaType');
  });

  it('a PUT without metadata.resourceVersion is 422 for custom resources (no unconditional update)', async () => {
    const n = name();
    await create(widget(n));
    // GIVEN a Widget WHEN it is replaced by a body without resourceVersion
    const { code, status } = await failure(sim.custom.replaceNamespacedCustomObject({ group: G, version: 'v1', namespace: 'default', plural: 'widgets', name: n, body: widget(n, { size: 'large' }) }));
    // THEN it is Invalid: custom resources allow no unconditional update
    expect(code).toBe(422);
    expect(status.message).toContain('metadata.resourceVersion: Invalid value: 0: must be specified for an update');
  });
});

describe('status subresource', () => {
  it('create ignores status when the version has a status subresource', async () => {
    // GIVEN a Widget body with a status WHEN it is created
    const created = await create(widget(name(), { size: 'small' }, { status: { phase: 'Ready' } }));
    // THEN the status is dropped
    expect(created.status).toBeUndefined();
  });

  it('writes to the main resource ignore status; writes to /status change status only, metadata included', async () => {
    // GIVEN a widget with a status
    const n = name();
    const created = await create(widget(n));
    const withStatus = await sim.custom.patchNamespacedCustomObjectStatus({ group: G, version: 'v1', namespace: 'default', plural: 'widgets', name: n, body: { status: { phase: 'Ready' }, spec: { size: 'large' }, metadata: { labels: { via: 'status' } } } }, merge) as Widget;
    // THEN only the status changed
    expect(withStatus.status).toEqual({ phase: 'Ready' });
    expect(withStatus.spec?.size).toBe('small');
    expect(withStatus.metadata?.labels).toBeUndefined();
    expect(withStatus.metadata?.generation).toBe(created.metadata?.generation);
    // WHEN the main resource is replaced with another status
    const replaced = await sim.custom.replaceNamespacedCustomObject({ group: G, version: 'v1', namespace: 'default', plural: 'widgets', name: n, body: { ...withStatus, spec: { size: 'large' }, status: { phase: 'Broken' } } }) as Widget;
    // THEN the spec changed and the status did not
    expect(replaced.spec?.size).toBe('large');
    expect(replaced.status).toEqual({ phase: 'Ready' });
    // AND a PUT to /status with a stale resourceVersion conflicts
    const stale = await failure(sim.custom.replaceNamespacedCustomObjectStatus({ group: G, version: 'v1', namespace: 'default', plural: 'widgets', name: n, body: { ...withStatus, status: { phase: 'X' } } }));
    expect(stale.code).toBe(409);
  });

  it('/status of a kind without the subresource is 404', async () => {
    // GIVEN a Gadget, whose CRD has no status subresource
    await sim.custom.createClusterCustomObject({ group: G, version: 'v1alpha1', plural: 'gadgets', body: { apiVersion: `${G}/v1alpha1`, kind: 'Gadget', metadata: { name: 'nostatus' } } });
    // WHEN its /status is read THEN it is not found
    expect((await failure(sim.custom.getClusterCustomObjectStatus({ group: G, version: 'v1alpha1', plural: 'gadgets', name: 'nostatus' }))).code).toBe(404);
  });
});

describe('metadata.generation', () => {
  it('starts at 1 and is bumped by spec changes only, not by metadata or status changes', async () => {
    // GIVEN a new Widget: generation 1
    const n = name();
    const created = await create(widget(n));
    expect(created.metadata?.generation).toBe(1);
    const patch = (body: object, status = false) => (status
      ? sim.custom.patchNamespacedCustomObjectStatus({ group: G, version: 'v1', namespace: 'default', plural: 'widgets', name: n, body }, merge)
      : sim.custom.patchNamespacedCustomObject({ group: G, version: 'v1', namespace: 'default', plural: 'widgets', name: n, body }, merge)) as Promise<Widget>;
    // WHEN labels and annotations change THEN the resourceVersion moves but the generation does not
    const labelled = await patch({ metadata: { labels: { a: 'b' }, annotations: { x: 'y' } } });
    expect(labelled.metadata?.generation).toBe(1);
    expect(Number(labelled.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
    // WHEN the status changes THEN the generation does not
    const statused = await patch({ status: { phase: 'Ready', observedGeneration: 1 } }, true);
    expect(statused.metadata?.generation).toBe(1);
    // WHEN the spec changes THEN the generation is bumped
    const specced = await patch({ spec: { replicas: 3 } });
    expect(specced.metadata?.generation).toBe(2);
  });

  it('without a status subresource any non-metadata change, status included, bumps generation', async () => {
    // GIVEN a Gadget, whose CRD has no status subresource
    const gadget = await sim.custom.createClusterCustomObject({ group: G, version: 'v1alpha1', plural: 'gadgets', body: { apiVersion: `${G}/v1alpha1`, kind: 'Gadget', metadata: { name: 'gen' }, spec: {} } }) as Widget;
    // WHEN its status is patched through the main resource THEN the status is stored and the generation bumped
    const patched = await sim.custom.patchClusterCustomObject({ group: G, version: 'v1alpha1', plural: 'gadgets', name: 'gen', body: { status: { ok: true } } }, merge) as Widget;
    expect(patched.status).toEqual({ ok: true });
    expect(patched.metadata?.generation).toBe((gadget.metadata?.generation ?? 0) + 1);
  });
});

describe('CustomResourceDefinitions at runtime', () => {
  const crd = (plural: string, kind: string): V1CustomResourceDefinition => ({
    apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: `${plural}.runtime.lattice.dev` },
    spec: {
      group: 'runtime.lattice.dev', scope: 'Namespaced', names: { kind, plural },
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { n: { type: 'integer' } } } } } } }],
    },
  });

  it('a CRD created through apiextensions.k8s.io/v1 is established and served at once; deleting it deletes its objects and stops serving it', async () => {
    const ext = sim.kc.makeApiClient(ApiextensionsV1Api);
    // GIVEN a CRD created through the API
    const created = await ext.createCustomResourceDefinition({ body: crd('sprockets', 'Sprocket') });
    expect(created.status?.conditions?.find((c) => c.type === 'Established')?.status).toBe('True');
    expect(created.status?.acceptedNames?.listKind).toBe('SprocketList');
    // WHEN an object of it is created, through discovery (KubernetesObjectApi)
    const obj = await sim.objects.create({ apiVersion: 'runtime.lattice.dev/v1', kind: 'Sprocket', metadata: { name: 's1', namespace: 'default' }, spec: { n: 1 } } as KubernetesObject);
    expect(obj.metadata?.generation).toBe(1);
    const invalid = await failure(sim.custom.createNamespacedCustomObject({ group: 'runtime.lattice.dev', version: 'v1', namespace: 'default', plural: 'sprockets', body: { apiVersion: 'runtime.lattice.dev/v1', kind: 'Sprocket', metadata: { name: 's2' }, spec: { n: 'one' } } }));
    expect(invalid.code).toBe(422);
    // AND the CRD is deleted
    await ext.deleteCustomResourceDefinition({ name: 'sprockets.runtime.lattice.dev' });
    // THEN the objects are gone and the resource is no longer served
    const list = await failure(sim.custom.listNamespacedCustomObject({ group: 'runtime.lattice.dev', version: 'v1', namespace: 'default', plural: 'sprockets' }));
    expect(list.code).toBe(404);
    expect((await failure(ext.readCustomResourceDefinition({ name: 'sprockets.runtime.lattice.dev' }))).code).toBe(404);
  });

  it('an invalid CRD is 422 Invalid', async () => {
    // GIVEN a CRD whose name does not match its names and which has no storage version
    const ext = sim.kc.makeApiClient(ApiextensionsV1Api);
    const bad = crd('cogs', 'Cog');
    // WHEN it is created
    const { code, status } = await failure(ext.createCustomResourceDefinition({ body: { ...bad, metadata: { name: 'wrong.runtime.lattice.dev' }, spec: { ...bad.spec, versions: [{ name: 'v1', served: true, storage: false }] } } }));
    // THEN creating it is Invalid, with a cause for each problem
    expect(code).toBe(422);
    expect((status.details?.causes as { field: string }[]).map((c) => c.field)).toEqual(expect.arrayContaining(['metadata.name', 'spec.versions']));
  });
});

describe('the project\'s CRDs and the upstream provider CRDs', () => {
  it('all load (schemas compile lazily); example LatticeClusters and a CAPI Cluster validate against them', async () => {
    // GIVEN every CRD of crds/ and of the shared upstream set
    const crds = loadCrdFiles([join(REPO, 'crds'), join(SHARED, 'upstream-crds')]);
    const big = await startSim({ crds });
    try {
      const capi = await big.custom.getAPIResources({ group: 'cluster.x-k8s.io', version: 'v1beta2' });
      expect(capi.resources.find((r) => r.name === 'clusters')).toMatchObject({ namespaced: true, kind: 'Cluster' });
      // WHEN the example clusters (cluster-scoped) are created
      for (const cluster of exampleClusters()) {
        const created = await big.custom.createClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', body: cluster }) as Widget;
        expect(created.metadata?.generation).toBe(1);
      }
      // AND a CAPI Cluster is created as v1beta2 and read as v1beta1
      await big.custom.createNamespacedCustomObject({
        group: 'cluster.x-k8s.io', version: 'v1beta2', namespace: 'default', plural: 'clusters',
        body: { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster', metadata: { name: 'c1' }, spec: { controlPlaneRef: { apiGroup: 'controlplane.cluster.x-k8s.io', kind: 'KubeadmControlPlane', name: 'c1' } } },
      });
      const asV1beta1 = await big.custom.getNamespacedCustomObject({ group: 'cluster.x-k8s.io', version: 'v1beta1', namespace: 'default', plural: 'clusters', name: 'c1' }) as Widget;
      // THEN they are all stored, and the CAPI schema rejects what it should
      expect(asV1beta1.apiVersion).toBe('cluster.x-k8s.io/v1beta1');
      const lcs = await big.custom.listClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters' }) as { items: unknown[] };
      expect(lcs.items).toHaveLength(exampleClusters().length);
      const rejected = await failure(big.custom.createNamespacedCustomObject({
        group: 'cluster.x-k8s.io', version: 'v1beta2', namespace: 'default', plural: 'clusters',
        body: { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster', metadata: { name: 'c2' }, spec: { paused: 'yes' } },
      }));
      expect(rejected.code).toBe(422);
    } finally {
      await big.server.close();
    }
  });
});
