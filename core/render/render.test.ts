import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { loadTemplateSources } from '../../cli/assets.js';
import { specRenderer } from '../../cli/load.js';
import { verifyDocuments } from '../../cli/render.js';
import { REPO, exampleClusters, repoValidator } from '../../test/support/repo.js';
import { loadUpstreamSchemas } from '../../test/support/upstream-schemas.js';
import { STAGES, stageIndex } from '../plan/stages.js';
import type { LatticeCluster } from '../spec/model.js';
import { AUTOSCALER } from './plan.js';
import { createRenderer, toYamlStream } from './render.js';
import { parseVersions } from './versions.js';

const renderer = specRenderer();
const clusters = exampleClusters();
const upstream = loadUpstreamSchemas();
const byName = (name: string): LatticeCluster => {
  const c = clusters.find((x) => x.metadata.name === name);
  if (!c) throw new Error(`no example ${name}`);
  return structuredClone(c);
};
// Rendered objects are inspected deep inside upstream shapes; a loose type keeps the assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const objectsOf = (cluster: LatticeCluster) => renderer.renderCluster(cluster).map((d) => ({ doc: d, obj: parse(d.text) as Record<string, any> }));

describe('golden files', () => {
  for (const cluster of clusters) {
    it(`${cluster.metadata.name} renders as reviewed (core/render/testdata/golden)`, async () => {
      await expect(toYamlStream(renderer.renderCluster(cluster))).toMatchFileSnapshot(join(REPO, 'core/render/testdata/golden', `${cluster.metadata.name}.yaml`));
    });
  }
});

describe('every rendered object', () => {
  for (const cluster of clusters) {
    it(`of ${cluster.metadata.name} validates against its upstream schema (defaults applied first)`, () => {
      // GIVEN the cluster's rendered documents
      const docs = renderer.renderCluster(cluster);
      // THEN each one parses to exactly what the plan said, and its schema accepts it
      expect(verifyDocuments(docs)).toEqual([]);
      for (const doc of docs) {
        const obj = parse(doc.text) as { kind: string };
        if (doc.kind === 'Namespace') continue;
        if (doc.kind === 'LatticeCluster') {
          const r = repoValidator().validate([{ path: 'rendered.yaml', bytes: new TextEncoder().encode(doc.text) }]);
          expect(r.ok ? [] : r.issues).toEqual([]);
          continue;
        }
        const result = upstream.validate(obj);
        expect(result.ok ? [] : result.errors, `${doc.kind}/${doc.name}`).toEqual([]);
      }
    });
  }

  it('carries the lattice, Cluster API and managed-by labels (DESIGN §4)', () => {
    for (const cluster of clusters) {
      for (const { doc, obj } of objectsOf(cluster)) {
        if (doc.kind === 'LatticeCluster') continue;
        expect(obj.metadata.labels, `${doc.kind}/${doc.name}`).toMatchObject({
          'lattice.dev/cluster': cluster.metadata.name, 'cluster.x-k8s.io/cluster-name': cluster.metadata.name, 'app.kubernetes.io/managed-by': 'lattice',
        });
      }
    }
  });

  it('has no empty optional value anywhere (CAPI v1beta2 rejects {}, [] and "")', () => {
    const empties: string[] = [];
    const walk = (v: unknown, path: string) => {
      if (v === '' || (Array.isArray(v) && v.length === 0) || (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)) empties.push(path);
      if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
    };
    for (const cluster of clusters) for (const { doc, obj } of objectsOf(cluster)) if (obj.spec !== undefined && doc.kind !== 'LatticeCluster') walk(obj.spec, `${doc.kind}/${doc.name}`);
    // Documented exceptions: DevCluster's `backend.docker: {}` is the minimal value of a required field;
    // CAPA reads `sshKeyName: ""` as "no SSH key", while omitting it means "the key named default".
    const allowed = [/^DevCluster\/[^.]+\.backend\.docker$/, /^AWS(Cluster|MachineTemplate)\/[^.]+(\.template\.spec)?\.sshKeyName$/];
    expect(empties.filter((p) => !allowed.some((re) => re.test(p)))).toEqual([]);
  });
});

describe('rendering', () => {
  it('is byte-identical across runs and across renderer instances', () => {
    const templates = loadTemplateSources(REPO);
    const versions = parseVersions(parse(templates.get('versions.yaml') ?? ''));
    if (!versions.ok) throw new Error(versions.errors.join());
    const fresh = createRenderer({ templates, versions: versions.value });
    for (const cluster of clusters) {
      const a = toYamlStream(renderer.renderCluster(cluster));
      expect(toYamlStream(renderer.renderCluster(cluster))).toBe(a);
      expect(toYamlStream(fresh.renderCluster(structuredClone(cluster)))).toBe(a);
    }
  });

  it('orders documents by stage, as the plan says (MachineDeployments wait for the CNI)', () => {
    const docs = renderer.renderCluster(byName('prod-eu'));
    const stages = docs.map((d) => stageIndex(d.stage));
    expect(stages).toEqual([...stages].sort((a, b) => a - b));
    expect(docs.map((d) => `${d.stage}:${d.kind}`)).toEqual([
      'cluster:Namespace', 'cluster:LatticeCluster',
      'infrastructure:Cluster', 'infrastructure:AWSCluster', 'infrastructure:AWSMachineTemplate', 'infrastructure:KubeadmControlPlane',
      'infrastructure:KubeadmConfigTemplate', 'infrastructure:AWSMachineTemplate', 'infrastructure:KubeadmConfigTemplate', 'infrastructure:AWSMachineTemplate',
      'cni:MachineDeployment', 'cni:MachineHealthCheck', 'cni:MachineDeployment', 'cni:MachineHealthCheck',
    ]);
    expect(STAGES.map((s) => s.wave)).toEqual(STAGES.map((_, i) => i));
  });

  it('omits replicas and sets the autoscaler annotations on an autoscaled pool', () => {
    // GIVEN the GPU example: pool gpu autoscales 0..8 with a taint, pool system has 2 fixed replicas
    const objs = objectsOf(byName('ml-inference'));
    const md = (pool: string) => objs.find((o) => o.doc.kind === 'MachineDeployment' && o.doc.name === `ml-inference-pool-${pool}`)?.obj;
    // THEN the autoscaled pool leaves replicas to the autoscaler and tells it the bounds, labels and taints
    expect(md('gpu')?.spec).not.toHaveProperty('replicas');
    expect(md('gpu')?.metadata.annotations).toEqual({
      [AUTOSCALER.min]: '0', [AUTOSCALER.max]: '8',
      [AUTOSCALER.labels]: 'lattice.dev/pool=gpu,nvidia.com/gpu.present=true',
      [AUTOSCALER.taints]: 'nvidia.com/gpu=present:NoSchedule',
    });
    expect(md('system')?.spec.replicas).toBe(2);
    expect(md('system')?.metadata).not.toHaveProperty('annotations');
  });

  it('gives scale-from-zero capacity for explicitly sized autoscaled pools', () => {
    const cluster = byName('lab');
    const pool = cluster.spec.nodes.workerPools?.general;
    if (!pool) throw new Error('lab has a general pool');
    Object.assign(pool, { min: 0, max: 5 });
    delete pool.replicas;
    const md = objectsOf(cluster).find((o) => o.doc.kind === 'MachineDeployment')?.obj;
    expect(md?.metadata.annotations).toMatchObject({ [AUTOSCALER.cpu]: '16', [AUTOSCALER.memory]: '32Gi', [AUTOSCALER.disk]: '120Gi' });
  });

  it('puts pool labels and taints into kubeadm v1beta2 list-form kubelet arguments', () => {
    const bootstrap = objectsOf(byName('prod-eu')).find((o) => o.doc.kind === 'KubeadmConfigTemplate' && o.doc.name.startsWith('prod-eu-pool-batch-'))?.obj;
    expect(bootstrap?.spec.template.spec.joinConfiguration.nodeRegistration).toEqual({
      name: '{{ ds.meta_data.local_hostname }}',
      kubeletExtraArgs: [{ name: 'cloud-provider', value: 'external' }, { name: 'node-labels', value: 'lattice.dev/pool=batch,workload.example.com/class=batch' }],
      taints: [{ key: 'workload.example.com/batch', value: 'true', effect: 'NoSchedule' }],
    });
  });

  it('puts pool labels and taints into the RKE2 agent config and versions RKE2 as +rke2r1', () => {
    const objs = objectsOf(byName('secure'));
    expect(objs.find((o) => o.doc.kind === 'RKE2ControlPlane')?.obj.spec.version).toBe('v1.33.5+rke2r1');
    const cfg = objs.find((o) => o.doc.kind === 'RKE2ConfigTemplate')?.obj;
    expect(cfg?.spec.template.spec.agentConfig.nodeLabels).toEqual(['lattice.dev/pool=general']);
  });

  it('renames only the changed pool\'s machine template when its instance type changes', () => {
    // GIVEN prod-eu rendered as is, and again with one pool's instance type changed
    const before = renderer.renderCluster(byName('prod-eu'));
    const changed = byName('prod-eu');
    const general = changed.spec.nodes.workerPools?.general;
    if (!general) throw new Error('prod-eu has a general pool');
    general.instanceType = { name: 'm6i.2xlarge' };
    const after = renderer.renderCluster(changed);
    // THEN the same objects exist, and only the general pool's machine template (and the reference to it
    // in its MachineDeployment, and the LatticeCluster spec) differ
    const names = (docs: typeof before) => docs.map((d) => `${d.kind}/${d.name}`);
    const renamed = names(before).filter((n, i) => n !== names(after)[i]);
    expect(renamed).toHaveLength(1);
    expect(renamed[0]).toMatch(/^AWSMachineTemplate\/prod-eu-pool-general-[0-9a-f]{10}$/);
    const changedText = before.map((d, i) => (d.text !== after[i]?.text ? `${d.kind}/${d.name}` : '')).filter(Boolean);
    expect(changedText).toEqual(['LatticeCluster/prod-eu', renamed[0], 'MachineDeployment/prod-eu-pool-general']);
  });

  it('uses the provider credentials Secret name <providerRef>-credentials', () => {
    const pve = objectsOf(byName('lab')).find((o) => o.doc.kind === 'ProxmoxCluster')?.obj;
    expect(pve?.spec.credentialsRef).toEqual({ name: 'proxmox-lab-credentials', namespace: 'capi-lab' });
    const os = objectsOf(byName('edge-dc1')).find((o) => o.doc.kind === 'OpenStackCluster')?.obj;
    expect(os?.spec.identityRef).toEqual({ name: 'openstack-dc1-credentials', cloudName: 'dc1' });
  });
});

describe('templates', () => {
  const sources = loadTemplateSources(REPO);
  const macros = [...(sources.get('_macros.njk') ?? '').matchAll(/\{%-?\s*macro\s+(\w+)/g)].map((m) => m[1]);

  it('interpolate only through the escaping filters y and block (and nested, for template-rendered YAML)', () => {
    const offenders: string[] = [];
    for (const [name, src] of sources) {
      if (!name.endsWith('.njk')) continue;
      for (const m of src.matchAll(/\{\{-?([\s\S]*?)-?\}\}/g)) {
        const expr = (m[1] ?? '').trim();
        const escaped = /\|\s*(y|block\(\d+\)|nested\(\d+\))$/.test(expr);
        const macroCall = macros.some((mac) => expr.startsWith(`${mac}(`));
        if (!escaped && !macroCall) offenders.push(`${name}: {{ ${expr} }}`);
      }
    }
    expect(offenders).toEqual([]);
    expect(sources.size).toBeGreaterThan(15);
  });

  it('versions.yaml names an apiVersion for every kind the renderer emits', () => {
    const versions = parseVersions(parse(readFileSync(join(REPO, 'templates/versions.yaml'), 'utf8')));
    expect(versions.ok).toBe(true);
    expect(parseVersions({ apiVersions: { Cluster: 'v1 beta' }, images: {} })).toMatchObject({ ok: false, errors: expect.arrayContaining([expect.stringContaining('apiVersions.Cluster')]) });
  });

  it('render one document per planned object', () => {
    for (const cluster of clusters) {
      const docs = renderer.renderCluster(cluster);
      expect(parseAllDocuments(toYamlStream(docs))).toHaveLength(docs.length);
    }
  });
});
