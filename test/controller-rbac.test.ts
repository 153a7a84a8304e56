/**
 * Least privilege, checked: the controller talks to the simulated API server through a recording proxy
 * while it takes clusters through everything it does (credentials copies with an AWS identity, CAPI,
 * registration in Argo CD and in Flux, deletion), and every request it makes must be allowed by the
 * RBAC in deploy/, and every verb deploy/ grants must have been used.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../cli/load.js';
import { isRecord } from '../core/data.js';
import { StageCondition } from '../core/plan/stages.js';
import { conditionOf, eventually, startHarness, StatusRecorder } from '../controller/testing.js';
import { failure, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const renderer = specRenderer();
const LC = { group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters' };

/** One API request as RBAC sees it (k8s.io/apiserver's RequestInfo). */
interface Call {
  readonly verb: string;
  readonly group: string;
  /** `resource` or `resource/subresource`. */
  readonly resource: string;
  /** '' for cluster-scoped requests. */
  readonly namespace: string;
}

/** RequestInfo for the request paths client-node sends (no non-resource URLs expected). */
function requestInfo(method: string, url: string): Call | { nonResource: string } {
  const u = new URL(url, 'http://x');
  const parts = u.pathname.split('/').filter((p) => p !== '');
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 2) [group, rest] = ['', parts.slice(2)];
  else if (parts[0] === 'apis' && parts.length >= 3) [group, rest] = [parts[1] ?? '', parts.slice(3)];
  else return { nonResource: u.pathname };
  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1] ?? '';
    rest = rest.slice(2);
  }
  const [resource = '', name, subresource] = rest;
  const collection = name === undefined;
  const verb = method === 'GET' ? (collection ? (u.searchParams.get('watch') === 'true' ? 'watch' : 'list') : 'get')
    : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch'
      : method === 'DELETE' ? (collection ? 'deletecollection' : 'delete') : method.toLowerCase();
  // GET /api/v1/namespaces/<name> is a get of the namespace itself.
  if (resource === 'namespaces' && rest.length === 2 && namespace === '') return { verb, group, resource, namespace: '' };
  return { verb, group, resource: subresource ? `${resource}/${subresource}` : resource, namespace };
}

interface Rule {
  readonly scope: string;
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/** The rules of deploy/'s Roles and ClusterRoles; a Role's rules apply in its namespace only. */
function deployRules(...files: string[]): Rule[] {
  return files.flatMap((f) => parseAllDocuments(readFileSync(join(REPO, 'deploy', f), 'utf8')).map((d) => rec(d.toJS())))
    .filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')
    .flatMap((o) => (o.rules as Rule[]).map((r) => ({ ...r, scope: o.kind === 'Role' ? String(rec(o.metadata).namespace) : '*' })));
}

const allows = (rule: Rule, c: Call) => (rule.scope === '*' || rule.scope === c.namespace)
  && rule.apiGroups.includes(c.group) && rule.resources.includes(c.resource) && rule.verbs.includes(c.verb);

/** A plain HTTP proxy that records every request (watches stream through). */
async function recordingProxy(target: string): Promise<{ server: Server; url: string; calls: { method: string; url: string }[] }> {
  const calls: { method: string; url: string }[] = [];
  const server = createServer((req, res) => {
    calls.push({ method: req.method ?? '', url: req.url ?? '' });
    const upstream = request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      // A watch may send nothing for a while: pass its headers on at once, as the API server sends them.
      res.flushHeaders();
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

let sim: SimClients;
let capi: CapiSim;
let recorder: StatusRecorder;
let proxy: Awaited<ReturnType<typeof recordingProxy>>;
let viaProxy: KubeConfig;

const lc = async (name: string) => rec(await sim.custom.getClusterCustomObject({ ...LC, name }));

async function applyCluster(example: string, name: string): Promise<void> {
  const base = exampleClusters().find((c) => c.metadata.name === example);
  if (!base) throw new Error(`no example ${example}`);
  const text = renderer.renderCluster({ ...base, metadata: { name } }).map((d) => `---\n${d.text}`).join('');
  for (const doc of parseAllDocuments(text)) await sim.objects.create(doc.toJS() as KubernetesObject);
}

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'flux-system', 'lattice-system', 'capa-system'] });
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions, deletionDelayMs: 100 });
  capi.start();
  recorder = new StatusRecorder(sim.kc);
  await recorder.start();
  proxy = await recordingProxy(sim.url);
  viaProxy = new KubeConfig();
  viaProxy.loadFromOptions({ clusters: [{ name: 'proxy', server: proxy.url, skipTLSVerify: true }], users: [{ name: 'controller' }], contexts: [{ name: 'proxy', cluster: 'proxy', user: 'controller' }], currentContext: 'proxy' });
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'aws-prod', namespace: 'lattice-system' }, spec: { type: 'aws', credentialsSecretRef: { name: 'aws-prod-credentials' } } } as KubernetesObject);
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
  await sim.core.createNamespacedSecret({ namespace: 'lattice-system', body: { metadata: { name: 'aws-prod-credentials' }, data: { AccessKeyID: 'QQ==', SecretAccessKey: 'Qg==' } } });
}, 60_000);
afterAll(async () => {
  await capi.stop();
  await recorder.stop();
  await new Promise((resolve) => proxy.server.close(resolve));
  proxy.server.closeAllConnections();
  await sim.server.close();
}, 60_000);
afterEach(() => {
  recorder.assertKstatus();
});

describe('lattice controller RBAC (deploy/)', () => {
  it('makes only requests deploy/ allows, and uses every verb deploy/ grants', async () => {
    // GIVEN the controller in Argo CD mode, reaching the API server only through the recording proxy
    const argo = startHarness({ sim, kubeConfig: viaProxy, config: { leaseName: 'rbac-argocd' } });
    // WHEN it takes an AWS cluster through credentials, identity, CAPI, registration, a rotation, a repair and deletion
    await applyCluster('secure', 'audit');
    await eventually(async () => expect((await sim.core.readNamespacedSecret({ namespace: 'argocd', name: 'cluster-audit' })).data?.name).toBeDefined());
    const identity = rec(await sim.custom.getClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities', name: 'aws-prod' }));
    await sim.custom.replaceClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities', name: 'aws-prod', body: { ...identity, spec: { secretRef: 'tampered' } } });
    const source = await sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'aws-prod-credentials' });
    await sim.core.replaceNamespacedSecret({ namespace: 'lattice-system', name: 'aws-prod-credentials', body: { ...source, data: { AccessKeyID: 'QQ==', SecretAccessKey: 'Qw==' } } });
    await eventually(async () => {
      expect((await sim.core.readNamespacedSecret({ namespace: 'capi-audit', name: 'aws-prod-credentials' })).data?.SecretAccessKey).toBe('Qw==');
      expect(rec(rec(await sim.custom.getClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities', name: 'aws-prod' })).spec).secretRef).toBe('aws-prod-credentials');
    });
    await sim.custom.deleteClusterCustomObject({ ...LC, name: 'audit' });
    await eventually(async () => expect((await failure(sim.custom.getClusterCustomObject({ ...LC, name: 'audit' }))).code).toBe(404));
    await argo.stop();
    // AND, in Flux mode, a docker cluster up to its registration
    const flux = startHarness({ sim, kubeConfig: viaProxy, config: { leaseName: 'rbac-flux', gitops: 'flux', fluxNamespace: 'flux-system' } });
    await applyCluster('dev', 'audit-flux');
    await eventually(async () => expect((await sim.core.readNamespacedSecret({ namespace: 'flux-system', name: 'audit-flux-kubeconfig' })).data?.value).toBeDefined());
    await eventually(async () => expect(conditionOf(await lc('audit-flux'), StageCondition.CNI)?.status).toBe('Unknown'));
    await flux.stop();

    // THEN every request is allowed by deploy/'s rules (Flux's Role replacing Argo CD's in Flux mode, both checked)
    const calls = proxy.calls.map((c) => ({ raw: `${c.method} ${c.url.split('?')[0] ?? ''}`, info: requestInfo(c.method, c.url) }));
    expect(calls.filter((c) => 'nonResource' in c.info).map((c) => c.raw)).toEqual([]);
    const resourceCalls = calls.flatMap((c) => ('nonResource' in c.info ? [] : [{ ...c.info, raw: c.raw }]));
    const rules = deployRules('base/rbac.yaml', 'rbac-argocd.yaml', 'flux/rbac-flux.yaml');
    const denied = [...new Set(resourceCalls.filter((c) => !rules.some((r) => allows(r, c))).map((c) => `${c.verb} ${c.group}/${c.resource} in "${c.namespace}" (${c.raw})`))];
    expect(denied).toEqual([]);
    // AND every granted verb was needed (exactly what it uses)
    const unused = rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((verb) => ({ verb, res, r }))))
      .filter(({ verb, res, r }) => !resourceCalls.some((c) => c.verb === verb && c.resource === res && r.apiGroups.includes(c.group) && (r.scope === '*' || r.scope === c.namespace)))
      .map(({ verb, res, r }) => `${verb} ${res} (${r.scope})`);
    expect(unused).toEqual([]);
    expect(resourceCalls.length).toBeGreaterThan(100);
  }, 90_000);
});
