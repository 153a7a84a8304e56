/**
 * Conformance of the simulated API server, part 5: discovery, /version, and the server itself (factory
 * without listening, close, bearer tokens, TLS, kubeconfigs, independent instances, logging).
 */
import { eventually, failure, hasOpenssl, selfSignedCert, startSim, type SimClients } from './testing.js';
import { Writable } from 'node:stream';
import { ApisApi, CoreApi, CoreV1Api, KubeConfig, VersionApi, Watch } from '@kubernetes/client-node';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { simKubeConfig } from './client.js';
import { createApiServer } from './server.js';

const TEST_CRDS = fileURLToPath(new URL('./testdata/test-crds.yaml', import.meta.url));

describe('discovery', () => {
  let sim: SimClients;
  beforeAll(async () => {
    sim = await startSim({ crds: [TEST_CRDS] });
  });
  afterAll(async () => {
    await sim.server.close();
  });

  it('/version reports a Kubernetes version', async () => {
    // WHEN the version is asked for THEN it is a Kubernetes 1.33
    const version = await sim.kc.makeApiClient(VersionApi).getCode();
    expect(version).toMatchObject({ major: '1', minor: '33', gitVersion: expect.stringMatching(/^v1\.33\./) });
  });

  it('/api lists v1; /api/v1 lists the core kinds with scope, verbs, short names and status subresources', async () => {
    // WHEN the core group is discovered THEN it offers v1
    expect((await sim.kc.makeApiClient(CoreApi).getAPIVersions()).versions).toEqual(['v1']);
    // AND v1's resources describe each kind and status subresource
    const list = await sim.kc.makeApiClient(CoreV1Api).getAPIResources();
    const byName = new Map(list.resources.map((r) => [r.name, r]));
    expect(list.groupVersion).toBe('v1');
    expect([...byName.keys()]).toEqual(expect.arrayContaining(['configmaps', 'secrets', 'namespaces', 'namespaces/status', 'serviceaccounts', 'events', 'nodes', 'nodes/status', 'services', 'services/status']));
    expect(byName.get('configmaps')).toMatchObject({ kind: 'ConfigMap', namespaced: true, singularName: 'configmap', shortNames: ['cm'], verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] });
    expect(byName.get('namespaces')).toMatchObject({ kind: 'Namespace', namespaced: false, shortNames: ['ns'] });
    expect(byName.get('namespaces/status')).toMatchObject({ kind: 'Namespace', verbs: ['get', 'patch', 'update'] });
    expect(byName.has('configmaps/status')).toBe(false);
  });

  it('/apis lists built-in and CRD groups, preferred version first by Kubernetes version priority', async () => {
    // WHEN the groups are discovered THEN built-in and custom groups list their versions, preferred first
    const groups = (await sim.kc.makeApiClient(ApisApi).getAPIVersions()).groups;
    const byName = new Map(groups.map((g) => [g.name, g]));
    expect(byName.get('coordination.k8s.io')?.preferredVersion?.groupVersion).toBe('coordination.k8s.io/v1');
    expect(byName.get('apiextensions.k8s.io')?.preferredVersion?.version).toBe('v1');
    // Widgets serve v1 and v1beta1, Gadgets v1alpha1: the group offers all three, GA first.
    expect(byName.get('test.lattice.dev')?.versions.map((v) => v.version)).toEqual(['v1', 'v1beta1', 'v1alpha1']);
    expect(byName.get('test.lattice.dev')?.preferredVersion?.version).toBe('v1');
    const group = await (await fetch(`${sim.url}/apis/test.lattice.dev`)).json();
    expect(group).toMatchObject({ kind: 'APIGroup', name: 'test.lattice.dev', preferredVersion: { groupVersion: 'test.lattice.dev/v1' } });
  });

  it('/apis/<group>/<version> lists custom resources with kind, scope, short names, categories and x/status', async () => {
    // WHEN a custom group version is discovered THEN it lists exactly the resources served in that version
    const list = await sim.custom.getAPIResources({ group: 'test.lattice.dev', version: 'v1beta1' });
    expect(list.resources).toEqual(expect.arrayContaining([
      expect.objectContaining({ name: 'widgets', kind: 'Widget', namespaced: true, singularName: 'widget', shortNames: ['wd'], categories: ['lattice-test'] }),
      expect.objectContaining({ name: 'widgets/status', kind: 'Widget', verbs: ['get', 'patch', 'update'] }),
    ]));
    expect(list.resources.some((r) => r.name.startsWith('gadgets'))).toBe(false);
    const alpha = await sim.custom.getAPIResources({ group: 'test.lattice.dev', version: 'v1alpha1' });
    expect(alpha.resources.map((r) => `${r.name}:${r.namespaced}`)).toEqual(['gadgets:false']);
    expect((await fetch(`${sim.url}/apis/test.lattice.dev/v9`)).status).toBe(404);
  });
});

describe('the server', () => {
  it('builds without listening: its handler serves requests in-process (supertest)', async () => {
    // GIVEN a server that is not listening
    const server = createApiServer();
    // WHEN requests go through its handler THEN they are served
    const res = await request(server.handler).post('/api/v1/namespaces/default/configmaps').send({ metadata: { name: 'x' } });
    expect(res.status).toBe(201);
    const got = await request(server.handler).get('/api/v1/namespaces/default/configmaps/x');
    expect(got.body).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'x' } });
    expect(() => server.url).toThrow(/listen/);
    await server.close();
  });

  it('listen() resolves to its URL; close() ends open watches and stops accepting connections', async () => {
    // GIVEN a listening server with an open watch
    const sim = await startSim();
    expect(sim.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    let ended: unknown = 'pending';
    await new Watch(sim.kc).watch('/api/v1/namespaces', {}, () => undefined, (err: unknown) => {
      ended = err;
    });
    // WHEN it is closed (twice: close is idempotent)
    await sim.server.close();
    await sim.server.close();
    // THEN the watch ended cleanly and the port is closed
    await eventually(() => expect(ended).toBeNull());
    const refused = await fetch(`${sim.url}/version`).then(() => 'answered', (e: Error) => e.message);
    expect(refused).not.toBe('answered');
  });

  it('requires the bearer token when configured: 401 Status without it or with a wrong one; health checks are open', async () => {
    // GIVEN a server requiring a token
    const sim = await startSim({ token: 'sekret-token' });
    try {
      // WHEN clients call with the token, a wrong token, no token, or on /healthz THEN only the first and the last are served
      expect((await sim.core.listNamespace()).items.length).toBeGreaterThan(0);
      const wrong = simKubeConfig(sim.server, { token: 'nope-nope-nope' }).makeApiClient(CoreV1Api);
      expect((await failure(wrong.listNamespace())).code).toBe(401);
      const anonymous = await fetch(`${sim.url}/api/v1/namespaces`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
      expect((await fetch(`${sim.url}/healthz`)).status).toBe(200);
    } finally {
      await sim.server.close();
    }
  });

  it('never logs the bearer token, even at debug level', async () => {
    // GIVEN a debug-level logger capturing every line, and a server with a token
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const sim = await startSim({ token: 'do-not-log-me', logger: pino({ level: 'debug' }, sink) });
    try {
      // WHEN requests with the right and a wrong token are served
      await sim.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'x' } } });
      await fetch(`${sim.url}/api/v1/namespaces`, { headers: { Authorization: 'Bearer wrong-do-not-log-me' } });
    } finally {
      await sim.server.close();
    }
    // THEN requests were logged, but never the token
    expect(lines.some((l) => l.includes('"msg":"request served"'))).toBe(true);
    expect(lines.join('')).not.toContain('do-not-log-me');
  });

  it.runIf(hasOpenssl())('serves HTTPS; client-node trusts it through the CA in the kubeconfig, with a token', async () => {
    // GIVEN a server with a self-signed certificate and a token
    const tls = selfSignedCert();
    const sim = await startSim({ tls, token: 't0ken' });
    try {
      // WHEN a client uses the kubeconfig (with the certificate as CA) THEN it is served
      expect(sim.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect((await sim.core.readNamespace({ name: 'default' })).metadata?.name).toBe('default');
      // A client that does not trust the CA cannot connect.
      const untrusting = new KubeConfig();
      untrusting.loadFromOptions({ ...sim.server.kubeconfigOptions(), clusters: [{ name: 'lattice-sim', server: sim.url, skipTLSVerify: false }] });
      await expect(untrusting.makeApiClient(CoreV1Api).listNamespace()).rejects.toThrow();
    } finally {
      await sim.server.close();
    }
  });

  it('kubeconfigYaml() loads into client-node (and kubectl) and reaches the server', async () => {
    // GIVEN a server with a token
    const sim = await startSim({ token: 'yaml-token' });
    try {
      // WHEN its kubeconfig YAML is loaded into client-node THEN the context namespace and the credentials work
      const kc = new KubeConfig();
      kc.loadFromString(sim.server.kubeconfigYaml({ namespace: 'kube-system' }));
      expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe('kube-system');
      expect((await kc.makeApiClient(CoreV1Api).readNamespace({ name: 'kube-system' })).status?.phase).toBe('Active');
    } finally {
      await sim.server.close();
    }
  });

  it('instances in one process are independent: objects, resourceVersions and CRDs', async () => {
    // GIVEN a parent server with CRDs and a child server without
    const parent = await startSim({ crds: [TEST_CRDS] });
    const child = await startSim();
    try {
      const before = (await child.core.listNamespace()).metadata?.resourceVersion;
      // WHEN the parent gets an object
      await parent.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'only-parent' } } });
      // THEN the child has neither the object, nor the parent's resourceVersions, nor its CRDs
      expect((await failure(child.core.readNamespacedConfigMap({ namespace: 'default', name: 'only-parent' }))).code).toBe(404);
      expect((await child.core.listNamespace()).metadata?.resourceVersion).toBe(before);
      expect((await failure(child.custom.listNamespacedCustomObject({ group: 'test.lattice.dev', version: 'v1', namespace: 'default', plural: 'widgets' }))).code).toBe(404);
      // AND the parent serves its CRDs
      expect((await parent.custom.listNamespacedCustomObject({ group: 'test.lattice.dev', version: 'v1', namespace: 'default', plural: 'widgets' }) as { items: unknown[] }).items).toEqual([]);
    } finally {
      await parent.server.close();
      await child.server.close();
    }
  });
});
