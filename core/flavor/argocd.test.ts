import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { specRenderer } from '../../cli/load.js';
import { REPO, exampleClusters } from '../../test/support/repo.js';
import { loadUpstreamSchemas } from '../../test/support/upstream-schemas.js';
import { STAGES, Stage, stageIndex } from '../plan/stages.js';
import { toYamlStream } from '../render/render.js';
import type { LatticeCluster } from '../spec/model.js';
import { AGENT, ADDON_API_GROUPS } from './agent.js';
import { ARGOCD } from './argocd.js';
import { agentObjects, argocdObjects } from './flavors.js';

const renderer = specRenderer();
const clusters = exampleClusters();
const upstream = loadUpstreamSchemas();
const options = { namespace: 'argocd', project: 'platform', plugin: 'lattice', source: { repoURL: 'https://git.example.com/clusters.git', path: 'clusters', targetRevision: 'main' } };
const byName = (name: string): LatticeCluster => {
  const c = clusters.find((x) => x.metadata.name === name);
  if (!c) throw new Error(`no example ${name}`);
  return structuredClone(c);
};
// Rendered objects are inspected deep inside upstream shapes; a loose type keeps the assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
const render = (cluster: LatticeCluster, opts: Parameters<typeof argocdObjects>[2] = options) => renderer.renderObjects(argocdObjects(renderer, cluster, opts)).map((d) => ({ doc: d, obj: parse(d.text) as Obj }));
const wave = (o: Obj): number => Number(o.metadata.annotations?.[ARGOCD.syncWave]);

describe('Argo CD flavor golden files', () => {
  for (const cluster of clusters) {
    it(`${cluster.metadata.name} renders as reviewed (core/flavor/testdata/golden)`, async () => {
      await expect(toYamlStream(renderer.renderObjects(argocdObjects(renderer, cluster, options)))).toMatchFileSnapshot(join(REPO, 'core/flavor/testdata/golden', `${cluster.metadata.name}.yaml`));
    });
  }
});

describe('Argo CD flavor', () => {
  it('gives strictly increasing waves in stage order (the stage table)', () => {
    for (let i = 1; i < STAGES.length; i++) expect(STAGES[i]?.wave).toBeGreaterThan(STAGES[i - 1]?.wave ?? Infinity);
  });

  for (const cluster of clusters) {
    it(`annotates every object of ${cluster.metadata.name} with its stage's wave, in non-decreasing order`, () => {
      // GIVEN the cluster's Argo CD documents
      const objs = render(cluster);
      // THEN every object's wave is its stage's, and the stream never goes back a wave
      for (const { doc, obj } of objs) expect(wave(obj), `${doc.kind}/${doc.name}`).toBe(STAGES[stageIndex(doc.stage)]?.wave);
      const waves = objs.map(({ obj }) => wave(obj));
      expect(waves).toEqual([...waves].sort((a, b) => a - b));
    });
  }

  it('protects every Cluster API object and the capi namespace from pruning and deletion, but not the LatticeCluster', () => {
    for (const cluster of clusters) {
      for (const { doc, obj } of render(cluster)) {
        const opts = obj.metadata.annotations?.[ARGOCD.syncOptions];
        if (doc.kind === 'Application' || doc.kind === 'LatticeCluster') expect(opts, `${doc.kind}/${doc.name}`).toBeUndefined();
        else expect(opts, `${doc.kind}/${doc.name}`).toBe('Prune=false,Delete=false');
      }
    }
  });

  it('puts MachineDeployments (and their health checks) in the CNI wave, with Cilium', () => {
    const objs = render(byName('prod-eu'));
    const cniWave = STAGES[stageIndex(Stage.cni)]?.wave;
    const inCni = objs.filter(({ obj }) => wave(obj) === cniWave).map(({ doc }) => `${doc.kind}/${doc.name}`);
    expect(inCni).toEqual(expect.arrayContaining(['MachineDeployment/prod-eu-pool-general', 'MachineDeployment/prod-eu-pool-batch', 'Application/prod-eu-cilium']));
    expect(objs.filter(({ doc }) => doc.kind === 'MachineDeployment').every(({ obj }) => wave(obj) === cniWave)).toBe(true);
  });

  for (const cluster of clusters) {
    it(`emits Applications for ${cluster.metadata.name} that validate against the upstream Argo CD CRD`, () => {
      const apps = render(cluster).filter(({ doc }) => doc.kind === 'Application');
      expect(apps.length).toBeGreaterThan(4);
      for (const { doc, obj } of apps) expect(upstream.validate(obj), doc.name).toEqual({ ok: true });
    });
  }

  it('shapes addon Applications as DESIGN §4.1 says: Helm source, destination by name, automated, retried, no finalizer', () => {
    for (const { doc, obj } of render(byName('prod-eu')).filter(({ doc: d }) => d.kind === 'Application' && d.stage !== Stage.agent)) {
      expect(obj.metadata.namespace).toBe('argocd');
      expect(obj.metadata.finalizers, doc.name).toBeUndefined();
      expect(obj.metadata.labels).toMatchObject({ 'lattice.dev/cluster': 'prod-eu', 'lattice.dev/stage': doc.stage });
      expect(obj.spec.project).toBe('platform');
      expect(obj.spec.destination).toEqual({ name: 'prod-eu', namespace: expect.any(String) });
      expect(obj.spec.source).toMatchObject({ repoURL: expect.stringMatching(/^(https|oci):\/\//), chart: expect.any(String), targetRevision: expect.any(String) });
      expect(obj.spec.syncPolicy.automated).toEqual({ prune: true, selfHeal: true });
      expect(obj.spec.syncPolicy.syncOptions).toEqual(expect.arrayContaining(['CreateNamespace=true', 'ServerSideApply=true']));
      expect(obj.spec.syncPolicy.retry).toMatchObject({ limit: -1, backoff: { duration: expect.any(String), factor: 2, maxDuration: expect.any(String) } });
    }
  });

  it('renders Cilium values from the spec: pod CIDR, k8sServiceHost auto, kube-proxy replacement', () => {
    const cluster = byName('prod-eu');
    cluster.spec.networking.podCidrBlocks = ['10.244.0.0/16'];
    const cilium = render(cluster).find(({ doc }) => doc.name === 'prod-eu-cilium')?.obj;
    expect(cilium?.spec.source.helm.valuesObject).toMatchObject({
      cluster: { name: 'prod-eu' },
      k8sServiceHost: 'auto',
      kubeProxyReplacement: true,
      ipam: { operator: { clusterPoolIPv4PodCIDRList: ['10.244.0.0/16'] } },
    });
  });

  it('installs the Cluster API providers of the cluster\'s own provider type and bootstrap', () => {
    const values = (name: string) => render(byName(name)).find(({ doc }) => doc.name === `${name}-cluster-api-operator`)?.obj.spec.source.helm.valuesObject;
    expect(values('secure')).toMatchObject({ core: { 'cluster-api': { version: 'v1.14.0' } }, bootstrap: { rke2: {} }, controlPlane: { rke2: {} }, infrastructure: { aws: {} } });
    expect(values('lab')).toMatchObject({ bootstrap: { kubeadm: {} }, infrastructure: { proxmox: {} }, ipam: { 'in-cluster': {} } });
    expect(values('lab')['cert-manager']).toEqual({ enabled: false });
  });

  it('includes stages per the spec flags services, gpu, monitoring and backups', () => {
    // GIVEN a cluster with every flag off, and the same cluster with every flag on
    const off = byName('prod-eu');
    Object.assign(off.spec, { services: false, gpu: false, monitoring: false, backups: false });
    const on = byName('prod-eu');
    Object.assign(on.spec, { services: true, gpu: true, monitoring: true, backups: true });
    const apps = (c: LatticeCluster) => render(c).filter(({ doc }) => doc.kind === 'Application').map(({ doc }) => doc.name.replace('prod-eu-', ''));
    // THEN the optional stages come and go with their flags; the rest is always there
    expect(apps(off)).toEqual(['cilium', 'cert-manager', 'external-secrets', 'cluster-api-operator', 'lattice-agent']);
    expect(apps(on)).toEqual(['cilium', 'cert-manager', 'istio-base', 'istiod', 'istio-cni', 'ztunnel', 'external-secrets', 'vmagent', 'victoria-metrics', 'keda', 'velero', 'node-feature-discovery', 'nvidia-device-plugin', 'hami', 'cluster-api-operator', 'lattice-agent']);
  });

  it('takes chart repositories and versions from render options (air-gapped mirrors)', () => {
    const objs = render(byName('dev'), { ...options, overrides: { repositories: { cilium: 'oci://mirror.internal/charts' }, versions: { cilium: '1.19.2' } } });
    const cilium = objs.find(({ doc }) => doc.name === 'dev-cilium')?.obj;
    expect(cilium?.spec.source).toMatchObject({ repoURL: 'oci://mirror.internal/charts', targetRevision: '1.19.2' });
    expect(objs.find(({ doc }) => doc.name === 'dev-cert-manager')?.obj.spec.source.repoURL).toBe('https://charts.jetstack.io');
  });

  it('points the agent Application at this plugin with component=agent for the cluster', () => {
    const agent = render(byName('dev')).find(({ doc }) => doc.name === 'dev-lattice-agent')?.obj;
    expect(agent?.spec.source).toEqual({ ...options.source, plugin: { name: 'lattice', parameters: [{ name: 'component', string: 'agent' }, { name: 'cluster', string: 'dev' }] } });
    expect(agent?.spec.destination).toEqual({ name: 'dev', namespace: 'lattice-system' });
    expect(wave(agent ?? {})).toBe(STAGES[stageIndex(Stage.agent)]?.wave);
  });

  it('renders every addon\'s values as one YAML mapping', () => {
    const all = byName('prod-eu');
    Object.assign(all.spec, { services: true, gpu: true, monitoring: true, backups: true });
    for (const addon of renderer.addons(all)) {
      const values = renderer.renderValues(addon);
      if (!values) continue;
      const docs = parseAllDocuments(values.text);
      expect(Array.isArray(docs) ? docs.length : 1, addon.id).toBe(1);
      expect(typeof parse(values.text), addon.id).toBe('object');
    }
  });
});

describe('agent component', () => {
  const objs = renderer.renderObjects(agentObjects(renderer, byName('prod-eu'), 'argocd')).map((d) => ({ doc: d, obj: parse(d.text) as Obj }));

  it('holds the Namespace, ServiceAccounts, RBAC, config and Deployment, in the agent wave', () => {
    expect(objs.map(({ doc }) => `${doc.kind}/${doc.name}`)).toEqual([
      'Namespace/lattice-system', 'Namespace/capi-prod-eu', 'ServiceAccount/lattice-agent', 'ClusterRole/lattice-agent', 'ClusterRoleBinding/lattice-agent',
      'Role/lattice-agent', 'RoleBinding/lattice-agent', 'Role/lattice-agent', 'RoleBinding/lattice-agent',
      'ServiceAccount/lattice-proxy', 'ClusterRole/lattice-proxy', 'ClusterRoleBinding/lattice-proxy', 'ConfigMap/lattice-agent', 'Deployment/lattice-agent',
    ]);
    for (const { obj } of objs) expect(wave(obj)).toBe(STAGES[stageIndex(Stage.agent)]?.wave);
  });

  it('grants the agent no wildcard verbs, no cluster-wide Secret access and nothing on RBAC itself', () => {
    for (const { doc, obj } of objs.filter(({ doc: d }) => (d.kind === 'ClusterRole' || d.kind === 'Role') && d.name === AGENT.name)) {
      for (const rule of obj.rules as Obj[]) {
        expect(rule.verbs, doc.name).not.toContain('*');
        expect(rule.apiGroups).not.toContain('rbac.authorization.k8s.io');
        expect(rule.apiGroups).not.toContain('*');
        if (doc.kind === 'ClusterRole') expect(rule.resources).not.toContain('secrets');
      }
    }
  });

  it('lets the agent impersonate the proxy identity and nothing else', () => {
    const impersonating = objs.flatMap(({ doc, obj }) => (doc.kind.endsWith('Role') ? (obj.rules as Obj[]).filter((r) => (r.verbs as string[]).includes('impersonate')).map((r) => ({ doc, r })) : []));
    expect(impersonating.map(({ doc, r }) => [doc.kind, doc.name, doc.namespace, r.resources, r.resourceNames])).toEqual([['Role', AGENT.name, AGENT.namespace, ['serviceaccounts'], [AGENT.proxyServiceAccount]]]);
  });

  it('gives the proxy identity reads everywhere but no write on Cluster API groups and no wildcard verb', () => {
    const role = objs.find(({ doc }) => doc.kind === 'ClusterRole' && doc.name === AGENT.proxyServiceAccount)?.obj;
    const rules = role?.rules as Obj[];
    for (const rule of rules) {
      expect(rule.verbs).not.toContain('*');
      if ((rule.apiGroups as string[]).includes('*')) expect(rule.verbs).toEqual(['get', 'list', 'watch']);
      for (const group of rule.apiGroups as string[]) expect(group.endsWith('cluster.x-k8s.io') && group !== 'operator.cluster.x-k8s.io', group).toBe(false);
    }
    const binding = objs.find(({ doc }) => doc.kind === 'ClusterRoleBinding' && doc.name === AGENT.proxyServiceAccount)?.obj;
    expect(binding?.subjects).toEqual([{ kind: 'ServiceAccount', name: AGENT.proxyServiceAccount, namespace: AGENT.namespace }]);
  });

  it('knows the API groups of every addon in the catalog', () => {
    expect(Object.keys(ADDON_API_GROUPS).sort()).toEqual(renderer.versions.addons.map((a) => a.id).sort());
  });

  it('runs the agent unprivileged, read-only, with the cluster\'s image override', () => {
    const cluster = byName('prod-eu');
    cluster.spec.latticeImage = 'registry.internal/lattice:1.2.3';
    const deployment = renderer.renderObjects(agentObjects(renderer, cluster, 'plain')).map((d) => parse(d.text) as Obj).find((o) => o.kind === 'Deployment');
    const pod = deployment?.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0].securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.containers[0].image).toBe('registry.internal/lattice:1.2.3');
    expect(deployment?.metadata.annotations).toBeUndefined();
  });
});
