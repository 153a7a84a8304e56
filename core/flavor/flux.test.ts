import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '@bufbuild/cel';
import { parse } from 'yaml';
import { specRenderer } from '../../cli/load.js';
import { REPO, exampleClusters } from '../../test/support/repo.js';
import { UPSTREAM_CRDS_DIR, loadUpstreamSchemas } from '../../test/support/upstream-schemas.js';
import { Stage, stageIndex } from '../plan/stages.js';
import type { LatticeCluster } from '../spec/model.js';
import {
  FLUX, INDEX_ARTIFACT, clusterArtifactName, fluxArtifacts, fluxName, fluxYamlStream, renderFluxArtifacts,
  type FluxOptions, type RenderedFluxArtifact,
} from './flux.js';

const renderer = specRenderer();
const clusters = exampleClusters();
// Flux's CRDs only: the Cluster API objects are the plain renderer's, validated with its own tests.
const upstream = loadUpstreamSchemas(join(UPSTREAM_CRDS_DIR, 'flux'));
const options: FluxOptions = { namespace: 'flux-system' };
const byName = (name: string): LatticeCluster => {
  const c = clusters.find((x) => x.metadata.name === name);
  if (!c) throw new Error(`no example ${name}`);
  return structuredClone(c);
};
// Rendered objects are inspected deep inside upstream shapes; a loose type keeps the assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
interface Doc { artifact: string; file: string; obj: Obj }

const renderAll = (cs: readonly LatticeCluster[], opts: FluxOptions = options): RenderedFluxArtifact[] => renderFluxArtifacts(renderer, fluxArtifacts(renderer, { clusters: cs }, opts));
const docsOf = (artifacts: readonly RenderedFluxArtifact[]): Doc[] => artifacts.flatMap((a) => a.files.flatMap((f) => f.docs.map((d) => ({ artifact: a.name, file: f.path, obj: parse(d.text) as Obj }))));
const render = (c: LatticeCluster, opts: FluxOptions = options): Doc[] => docsOf(renderAll([c], opts));
const find = (docs: readonly Doc[], kind: string, name: string): Obj => {
  const d = docs.find((x) => x.obj.kind === kind && x.obj.metadata.name === name);
  if (!d) throw new Error(`no ${kind}/${name}`);
  return d.obj;
};

describe('Flux flavor golden files', () => {
  for (const cluster of clusters) {
    it(`${cluster.metadata.name} renders as reviewed (core/flavor/testdata/golden-flux)`, async () => {
      await expect(fluxYamlStream(renderAll([cluster]))).toMatchFileSnapshot(join(REPO, 'core/flavor/testdata/golden-flux', `${cluster.metadata.name}.yaml`));
    });
  }
});

describe('Flux flavor layout', () => {
  it('gives the index first, then one artifact per cluster with infrastructure/, addons/ and agent/', () => {
    // GIVEN every example cluster
    const artifacts = renderAll(clusters);
    // THEN the artifacts and their files are the documented layout
    expect(artifacts.map((a) => a.name)).toEqual([INDEX_ARTIFACT, ...clusters.map((c) => clusterArtifactName(c.metadata.name)).sort()]);
    expect(artifacts[0]?.files.map((f) => f.path)).toEqual(clusters.map((c) => `clusters/${c.metadata.name}.yaml`).sort());
    for (const a of artifacts.slice(1)) expect(a.files.map((f) => f.path)).toEqual(['infrastructure/manifests.yaml', 'addons/manifests.yaml', 'agent/manifests.yaml']);
  });

  it('points each Kustomization at its cluster\'s ExternalArtifact and at a directory that artifact has', () => {
    const artifacts = renderAll(clusters);
    const dirs = new Map(artifacts.map((a) => [a.name, new Set(a.files.map((f) => `./${f.path.split('/')[0] ?? ''}`))]));
    const kustomizations = docsOf(artifacts).filter((d) => d.obj.kind === 'Kustomization');
    expect(kustomizations).toHaveLength(3 * clusters.length);
    for (const { obj } of kustomizations) {
      expect(obj.spec.sourceRef.kind, obj.metadata.name).toBe('ExternalArtifact');
      expect(dirs.get(obj.spec.sourceRef.name)?.has(obj.spec.path), `${obj.metadata.name} ${obj.spec.path}`).toBe(true);
      // Never postBuild: the objects are rendered already, and `${...}` in scripts must reach the cluster as is.
      expect(obj.spec.postBuild).toBeUndefined();
    }
  });

  it('names a sourceRef namespace only when the artifacts live elsewhere', () => {
    const same = find(render(byName('dev')), 'Kustomization', 'dev-infrastructure');
    const other = find(render(byName('dev'), { namespace: 'flux-system', artifactNamespace: 'lattice-system' }), 'Kustomization', 'dev-infrastructure');
    expect(same.spec.sourceRef).toEqual({ kind: 'ExternalArtifact', name: 'lattice-cluster-dev' });
    expect(other.spec.sourceRef).toEqual({ kind: 'ExternalArtifact', name: 'lattice-cluster-dev', namespace: 'lattice-system' });
  });

  it('puts the InfraProviders and other objects found beside the specs into the index', () => {
    // GIVEN an InfraProvider and a ConfigMap next to the cluster
    const provider = { apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } };
    const configMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'notes', namespace: 'default' }, data: { a: 'b' } };
    // WHEN the index is rendered
    const index = renderFluxArtifacts(renderer, fluxArtifacts(renderer, { clusters: [byName('dev')], infraProviders: [provider] as never, others: [configMap] }, options))[0];
    // THEN they come first, as given
    expect(index?.files.map((f) => f.path)).toEqual(['infraproviders.yaml', 'objects.yaml', 'clusters/dev.yaml']);
    expect(parse(index?.files[0]?.text ?? '')).toEqual(provider);
    expect(parse(index?.files[1]?.text ?? '')).toEqual(configMap);
  });

  it('renders byte-identical output twice', () => {
    expect(fluxYamlStream(renderAll(clusters))).toBe(fluxYamlStream(renderAll(clusters)));
  });
});

describe('Flux flavor objects', () => {
  for (const cluster of clusters) {
    it(`emits Flux objects for ${cluster.metadata.name} that validate against the upstream Flux CRDs`, () => {
      const flux = render(cluster).filter((d) => d.obj.apiVersion.includes('fluxcd.io'));
      expect(new Set(flux.map((d) => d.obj.kind))).toEqual(new Set(['Kustomization', 'HelmRepository', 'HelmRelease']));
      for (const { obj } of flux) expect(upstream.validate(obj), `${obj.kind}/${obj.metadata.name}`).toEqual({ ok: true });
    });
  }

  it('protects every infrastructure object from pruning, except the LatticeCluster', () => {
    for (const cluster of clusters) {
      for (const { file, obj } of render(cluster).filter((d) => d.file.startsWith('infrastructure/'))) {
        const prune = obj.metadata.annotations?.[FLUX.prune];
        expect(prune, `${obj.kind}/${obj.metadata.name}`).toBe(obj.kind === 'LatticeCluster' ? undefined : 'disabled');
        expect(file).toBe('infrastructure/manifests.yaml');
      }
    }
  });

  it('chains the Kustomizations infrastructure → addons → agent, waiting on each', () => {
    const docs = render(byName('prod-eu'));
    const infra = find(docs, 'Kustomization', 'prod-eu-infrastructure');
    const addons = find(docs, 'Kustomization', 'prod-eu-addons');
    const agent = find(docs, 'Kustomization', 'prod-eu-agent');
    expect(infra.spec).toMatchObject({ wait: true, prune: true, path: './infrastructure' });
    expect(infra.spec.dependsOn).toBeUndefined();
    expect(addons.spec).toMatchObject({ wait: true, dependsOn: [{ name: 'prod-eu-infrastructure' }], path: './addons' });
    expect(addons.spec.kubeConfig).toBeUndefined();
    expect(agent.spec).toMatchObject({ wait: true, dependsOn: [{ name: 'prod-eu-addons' }], path: './agent', deletionPolicy: 'Orphan', kubeConfig: { secretRef: { name: 'prod-eu-kubeconfig', key: 'value' } } });
    for (const k of [infra, addons, agent]) expect(k.metadata.namespace).toBe('flux-system');
  });

  it('applies the agent without a target namespace: its objects live in two namespaces of the child', () => {
    // GIVEN the agent directory
    const docs = render(byName('dev'));
    const namespaces = new Set(docs.filter((d) => d.file.startsWith('agent/') && d.obj.metadata.namespace).map((d) => d.obj.metadata.namespace));
    // THEN a targetNamespace would merge lattice-system and capi-dev (and collide the two Roles named lattice-agent)
    expect([...namespaces].sort()).toEqual(['capi-dev', 'lattice-system']);
    expect(find(docs, 'Kustomization', 'dev-agent').spec.targetNamespace).toBeUndefined();
  });

  it('shapes HelmReleases as DESIGN §4.2 says: kubeconfig, explicit namespaces, createNamespace, retried forever', () => {
    const docs = render(byName('prod-eu'));
    const releases = docs.filter((d) => d.obj.kind === 'HelmRelease').map((d) => d.obj);
    const catalog = new Map(renderer.addons(byName('prod-eu')).map((a) => [`prod-eu-${a.id}`, a]));
    expect(releases.map((r) => r.metadata.name)).toEqual([...catalog.keys()]);
    for (const r of releases) {
      const addon = catalog.get(r.metadata.name);
      expect(r.metadata.namespace).toBe('flux-system');
      expect(r.metadata.labels).toMatchObject({ 'lattice.dev/cluster': 'prod-eu', 'lattice.dev/stage': addon?.stage });
      expect(r.spec.kubeConfig).toEqual({ secretRef: { name: 'prod-eu-kubeconfig', key: 'value' } });
      expect(r.spec).toMatchObject({ releaseName: addon?.release, targetNamespace: addon?.namespace, storageNamespace: addon?.namespace });
      expect(r.spec.install).toMatchObject({ createNamespace: true, remediation: { retries: -1 } });
      expect(r.spec.upgrade).toMatchObject({ remediation: { retries: -1 } });
      expect(r.spec.chart.spec).toMatchObject({ chart: addon?.chart, version: addon?.version, sourceRef: { kind: 'HelmRepository' } });
      expect(find(docs, 'HelmRepository', r.spec.chart.spec.sourceRef.name).spec.url).toBe(addon?.repository);
    }
  });

  it('makes each HelmRelease depend on every release of the previous stage that has addons', () => {
    // GIVEN a cluster with every optional stage on
    const all = byName('prod-eu');
    Object.assign(all.spec, { services: true, gpu: true, monitoring: true, backups: true });
    const releases = render(all).filter((d) => d.obj.kind === 'HelmRelease').map((d) => d.obj);
    const deps: Record<string, string[]> = Object.fromEntries(releases.map((r) => [r.metadata.name.replace('prod-eu-', ''), (r.spec.dependsOn ?? []).map((d: Obj) => String(d.name).replace('prod-eu-', ''))]));
    // THEN the chain follows the stage table
    const mesh = ['istio-base', 'istiod', 'istio-cni', 'ztunnel'];
    const features = ['victoria-metrics', 'keda', 'velero', 'node-feature-discovery', 'nvidia-device-plugin', 'hami'];
    expect(deps).toEqual({
      cilium: [], 'cert-manager': ['cilium'],
      ...Object.fromEntries(mesh.map((m) => [m, ['cert-manager']])),
      'external-secrets': mesh, vmagent: ['external-secrets'],
      ...Object.fromEntries(features.map((f) => [f, ['vmagent']])),
      'cluster-api-operator': features,
    });
    // AND no release depends on a later stage
    const stageOf = new Map(renderer.addons(all).map((a) => [a.id, a.stage]));
    for (const [id, ds] of Object.entries(deps)) for (const d of ds) expect(stageIndex(stageOf.get(d) ?? Stage.agent)).toBeLessThan(stageIndex(stageOf.get(id) ?? Stage.cluster));
  });

  it('skips a stage the spec switches off when chaining', () => {
    const off = byName('prod-eu');
    Object.assign(off.spec, { services: false, monitoring: false, gpu: false, backups: false });
    const releases = render(off).filter((d) => d.obj.kind === 'HelmRelease').map((d) => d.obj);
    expect(releases.find((r) => r.metadata.name === 'prod-eu-external-secrets')?.spec.dependsOn).toEqual([{ name: 'prod-eu-cert-manager' }]);
    expect(releases.find((r) => r.metadata.name === 'prod-eu-cluster-api-operator')?.spec.dependsOn).toEqual([{ name: 'prod-eu-external-secrets' }]);
  });

  it('shares one HelmRepository per URL, and pulls oci:// charts through an OCIRepository per chart', () => {
    // GIVEN cilium moved to an OCI mirror
    const docs = render(byName('prod-eu'), { ...options, overrides: { repositories: { cilium: 'oci://mirror.internal/charts/' }, versions: { cilium: '1.19.2+build.1' } } });
    const cilium = find(docs, 'HelmRelease', 'prod-eu-cilium');
    const oci = find(docs, 'OCIRepository', 'prod-eu-cilium');
    // THEN the release references the chart by chartRef, and the repository names the chart and its tag
    expect(cilium.spec.chart).toBeUndefined();
    expect(cilium.spec.chartRef).toEqual({ kind: 'OCIRepository', name: 'prod-eu-cilium' });
    expect(oci.spec).toMatchObject({ url: 'oci://mirror.internal/charts/cilium', ref: { tag: '1.19.2_build.1' }, layerSelector: { mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', operation: 'copy' } });
    expect(upstream.validate(oci)).toEqual({ ok: true });
    // AND the four istio releases share one HelmRepository
    const repos = docs.filter((d) => d.obj.kind === 'HelmRepository').map((d) => d.obj.spec.url);
    expect(new Set(repos).size).toBe(repos.length);
  });

  it('renders Cilium values from the spec into the HelmRelease', () => {
    const cluster = byName('prod-eu');
    cluster.spec.networking.podCidrBlocks = ['10.244.0.0/16'];
    expect(find(render(cluster), 'HelmRelease', 'prod-eu-cilium').spec.values).toMatchObject({
      cluster: { name: 'prod-eu' }, k8sServiceHost: 'auto', kubeProxyReplacement: true,
      ipam: { operator: { clusterPoolIPv4PodCIDRList: ['10.244.0.0/16'] } },
    });
  });

  it('keeps every Flux object name within a label value, even for the longest cluster name', () => {
    // GIVEN a cluster whose name has the maximum length (58)
    const long = byName('prod-eu');
    long.metadata.name = `c${'x'.repeat(56)}1`;
    const docs = render(long);
    // THEN names that Flux copies into labels fit in 63 characters, and stay distinct
    const flux = docs.filter((d) => d.obj.apiVersion.includes('fluxcd.io')).map((d) => `${d.obj.kind}/${d.obj.metadata.name}`);
    for (const n of flux) expect(n.split('/')[1]?.length, n).toBeLessThanOrEqual(63);
    expect(new Set(flux).size).toBe(flux.length);
    const agent = docs.find((d) => d.obj.kind === 'Kustomization' && d.obj.spec.path === './agent')?.obj;
    expect(agent?.spec.dependsOn[0].name).toBe(docs.find((d) => d.obj.kind === 'Kustomization' && d.obj.spec.path === './addons')?.obj.metadata.name);
    expect(fluxName('dev', 'infrastructure')).toBe('dev-infrastructure');
  });
});

/**
 * Flux's CEL status evaluation (RFC-0009, fluxcd/pkg runtime/cel): observedGeneration behind generation →
 * InProgress; then inProgress, failed, current in that order, the first true wins; an evaluation error
 * leaves the status unknown (the health check keeps waiting).
 */
function evaluate(expr: { inProgress?: string; failed?: string; current: string }, obj: Obj): 'InProgress' | 'Failed' | 'Current' | 'Unknown' {
  const toCel = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(toCel);
    if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
    if (v instanceof Date) return v.toISOString();
    if (v !== null && typeof v === 'object') return new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
    return v;
  };
  if (obj.status?.observedGeneration !== undefined && obj.status.observedGeneration !== obj.metadata?.generation) return 'InProgress';
  const vars = Object.fromEntries(['metadata', 'spec', 'status'].filter((k) => obj[k] !== undefined).map((k) => [k, toCel(obj[k])]));
  for (const [key, result] of [['inProgress', 'InProgress'], ['failed', 'Failed'], ['current', 'Current']] as const) {
    const e = expr[key];
    if (e === undefined) continue;
    try {
      if (run(e, vars as never) === true) return result;
    } catch {
      return 'Unknown';
    }
  }
  return 'InProgress';
}

describe('infrastructure health checks (healthCheckExprs)', () => {
  const exprs = (cluster: string): Obj[] => find(render(byName(cluster)), 'Kustomization', `${cluster}-infrastructure`).spec.healthCheckExprs;
  const exprFor = (cluster: string, kind: string): Obj => {
    const e = exprs(cluster).find((x) => x.kind === kind);
    if (!e) throw new Error(`no expression for ${kind}`);
    return e as Obj;
  };
  const fixtures = (dir: string): { name: string; obj: Obj }[] => readdirSync(join(REPO, 'argocd/health', dir, 'testdata')).sort().map((name) => ({ name, obj: parse(readFileSync(join(REPO, 'argocd/health', dir, 'testdata', name), 'utf8')) as Obj }));

  it('cover the Cluster, the cluster\'s own control plane kind, MachineDeployments and the LatticeCluster', () => {
    expect(exprs('dev').map((e) => e.kind)).toEqual(['Cluster', 'KubeadmControlPlane', 'MachineDeployment', 'LatticeCluster']);
    expect(exprs('secure').map((e) => e.kind)).toEqual(['Cluster', 'RKE2ControlPlane', 'MachineDeployment', 'LatticeCluster']);
  });

  // The Argo CD health fixtures are real status shapes of both API versions; our gate is the same.
  for (const { dir, kind, cluster } of [
    { dir: 'cluster.x-k8s.io_Cluster', kind: 'Cluster', cluster: 'dev' },
    { dir: 'controlplane.cluster.x-k8s.io_KubeadmControlPlane', kind: 'KubeadmControlPlane', cluster: 'dev' },
    { dir: 'controlplane.cluster.x-k8s.io_RKE2ControlPlane', kind: 'RKE2ControlPlane', cluster: 'secure' },
  ]) {
    it(`call a ${kind} current once its control plane is initialized, and never before (argocd/health fixtures)`, () => {
      const expr = exprFor(cluster, kind) as { current: string };
      const seen: Record<string, string> = {};
      for (const { name, obj } of fixtures(dir)) {
        if (name.startsWith('healthy-')) expect(evaluate(expr, obj), name).toBe('Current');
        else if (/^progressing-(no-status|not-initialized|infrastructure|provision|generation)/.test(name)) expect(evaluate(expr, obj), name).not.toBe('Current');
        seen[name] = evaluate(expr, obj);
      }
      expect(Object.values(seen)).toContain('Current');
      expect(Object.values(seen).some((s) => s !== 'Current')).toBe(true);
    });
  }

  it('call a freshly applied Cluster (no status) not current, so wait: true really waits', () => {
    expect(evaluate(exprFor('dev', 'Cluster') as { current: string }, { metadata: { name: 'dev', generation: 1 }, spec: {} })).not.toBe('Current');
  });

  it('call a LatticeCluster current once accepted, failed when Failed or Stalled, waiting otherwise', () => {
    const e = exprFor('dev', 'LatticeCluster') as { current: string; failed: string };
    const lc = (status?: Obj): Obj => ({ metadata: { name: 'dev', generation: 2 }, spec: {}, ...(status ? { status } : {}) });
    expect(evaluate(e, lc())).not.toBe('Current');
    expect(evaluate(e, lc({ observedGeneration: 1, phase: 'Ready' }))).toBe('InProgress');
    for (const phase of ['Pending', 'Provisioning', 'Pivoting', 'Pivoted', 'Ready']) expect(evaluate(e, lc({ observedGeneration: 2, phase })), phase).toBe('Current');
    expect(evaluate(e, lc({ observedGeneration: 2, phase: 'Failed' }))).toBe('Failed');
    expect(evaluate(e, lc({ observedGeneration: 2, phase: 'Provisioning', conditions: [{ type: 'Stalled', status: 'True' }] }))).toBe('Failed');
    expect(evaluate(e, lc({ observedGeneration: 2, phase: 'Deleting' }))).toBe('InProgress');
  });

  it('never wait for MachineDeployments: their workers need the CNI of the addons stage', () => {
    expect(evaluate(exprFor('dev', 'MachineDeployment') as { current: string }, { metadata: { generation: 1 }, status: { observedGeneration: 1 } })).toBe('Current');
  });
});
