/** The install manifests in flux/: hardened, least privilege, consistent with the sidecar's options. */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { SIDECAR_OPTIONS } from '../sidecar/config.js';
import { REPO } from './support/repo.js';
import { UPSTREAM_CRDS_DIR, loadUpstreamSchemas } from './support/upstream-schemas.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const FLUX = join(REPO, 'flux');
const read = (file: string): Obj[] => parseAllDocuments(readFileSync(join(FLUX, file), 'utf8')).map((d) => d.toJS() as Obj);
const all = (): Obj[] => (parse(readFileSync(join(FLUX, 'kustomization.yaml'), 'utf8')) as { resources: string[] }).resources.flatMap(read);
const one = (kind: string): Obj => {
  const o = all().find((x) => x.kind === kind);
  if (!o) throw new Error(`no ${kind}`);
  return o;
};

describe('flux/ install manifests', () => {
  it('list every manifest file in the kustomization, all in flux-system', () => {
    const listed = (parse(readFileSync(join(FLUX, 'kustomization.yaml'), 'utf8')) as { resources: string[] }).resources;
    const files = readdirSync(FLUX).filter((f) => f.endsWith('.yaml') && !['kustomization.yaml', 'feature-gates-patch.yaml'].includes(f));
    expect([...listed].sort()).toEqual(files.sort());
    for (const o of all()) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('flux-system');
  });

  it('run the sidecar hardened: non-root, read-only root, no privilege escalation, no capabilities, probes and resources', () => {
    const pod = one('Deployment').spec.template.spec;
    const c = pod.containers[0];
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.args).toEqual(['sidecar']);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.resources).toMatchObject({ requests: { cpu: expect.any(String), memory: expect.any(String) }, limits: { memory: expect.any(String) } });
    expect(one('Deployment').spec.replicas).toBeGreaterThan(1);
  });

  it('set only LATTICE_SIDECAR_* variables the sidecar knows, commented-out ones included', () => {
    const text = readFileSync(join(FLUX, 'deployment.yaml'), 'utf8');
    const known = new Set(SIDECAR_OPTIONS.map((o) => o.env));
    const used = [...text.matchAll(/LATTICE_SIDECAR_[A-Z_]+/g)].map((m) => m[0]);
    expect(used.length).toBeGreaterThan(8);
    for (const v of used) expect(known.has(v), v).toBe(true);
  });

  it('grant a namespaced Role only: ExternalArtifacts and their status, read GitRepositories, its own Lease', () => {
    expect(all().map((o) => o.kind)).not.toContain('ClusterRole');
    const rules = one('Role').rules as Obj[];
    for (const r of rules) {
      expect(r.verbs).not.toContain('*');
      expect(r.resources).not.toContain('*');
      expect(r.apiGroups).not.toContain('*');
    }
    const verbs = (resource: string) => rules.filter((r) => r.resources.includes(resource)).flatMap((r) => r.verbs as string[]);
    expect(verbs('externalartifacts')).toEqual(expect.arrayContaining(['get', 'list', 'create', 'update', 'delete']));
    expect(verbs('externalartifacts/status')).toEqual(expect.arrayContaining(['get', 'update']));
    expect(verbs('gitrepositories').sort()).toEqual(['get', 'list', 'watch']);
    expect(rules.find((r) => r.resources.includes('leases') && r.verbs.includes('update'))?.resourceNames).toEqual(['lattice-sidecar']);
    expect(one('RoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'lattice-sidecar', namespace: 'flux-system' }]);
  });

  it('admit only Flux\'s source, kustomize and helm controllers to the artifact port', () => {
    const np = one('NetworkPolicy');
    expect(np.spec.podSelector.matchLabels).toEqual(one('Deployment').spec.selector.matchLabels);
    expect(np.spec.ingress).toEqual([{
      from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['source-controller', 'kustomize-controller', 'helm-controller'] }] } }],
      ports: [{ port: 'http' }],
    }]);
    expect(one('Service').spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 'http' }]);
  });

  it('enable the ExternalArtifact feature gate with a JSON patch', () => {
    expect(read('feature-gates-patch.yaml')[0]).toEqual([{ op: 'add', path: '/spec/template/spec/containers/0/args/-', value: '--feature-gates=ExternalArtifact=true' }]);
  });

  it('give examples that validate against the upstream Flux CRDs, the root pointing at the index artifact', () => {
    const upstream = loadUpstreamSchemas(join(UPSTREAM_CRDS_DIR, 'flux'));
    const examples = readdirSync(join(FLUX, 'examples')).flatMap((f) => read(join('examples', f)));
    expect(examples.map((o) => o.kind).sort()).toEqual(['GitRepository', 'Kustomization']);
    for (const o of examples) expect(upstream.validate(o), o.kind).toEqual({ ok: true });
    expect(examples.find((o) => o.kind === 'Kustomization')?.spec).toMatchObject({ sourceRef: { kind: 'ExternalArtifact', name: 'lattice-index' }, path: './', prune: true });
  });

  it('are documented: every option\'s flag and variable is in docs/flux.md', () => {
    const doc = readFileSync(join(REPO, 'docs/flux.md'), 'utf8');
    for (const o of SIDECAR_OPTIONS) expect(doc, o.env).toContain(`| \`${o.flag.split(' ')[0] ?? ''}\` | \`${o.env}\` |`);
  });
});
