/**
 * The install manifests and examples under argocd/: Argo CD kinds validated against the upstream v3.5.1 CRDs,
 * the repo-server sidecar checked against Argo CD's "Register the plugin sidecar" rules and our security bar,
 * the kustomization checked to reference what exists. The plugin contract (name `lattice`, no version, no
 * discovery, parameters) is the lead's, see docs/argocd.md.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { argocdDir } from '../sim/health/lua.js';
import { loadUpstreamSchemas } from './support/upstream-schemas.js';

// Manifests are inspected deep inside upstream shapes; a loose type keeps the assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const ARGOCD = argocdDir();
const upstream = loadUpstreamSchemas();

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'health' ? [] : yamlFiles(path);
    return /\.ya?ml$/.test(e.name) ? [path] : [];
  }).sort();
}

function docs(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors[0]) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS() as Obj;
  });
}

function only(file: string): Obj {
  const all = docs(join(ARGOCD, file));
  if (all.length !== 1 || !all[0]) throw new Error(`${file}: expected one document`);
  return all[0];
}

describe('argocd/ manifests', () => {
  it('validates every Argo CD object against the upstream CRDs (argoproj.io, v3.5.1)', () => {
    // GIVEN every YAML document under argocd/ except the health check fixtures
    const argoObjects = yamlFiles(ARGOCD).flatMap((file) => docs(file).map((obj) => ({ file: relative(ARGOCD, file), obj })))
      .filter(({ obj }) => typeof obj.apiVersion === 'string' && obj.apiVersion.startsWith('argoproj.io/'));
    // THEN both examples are among them, and each is valid for its apiVersion and kind
    expect(argoObjects.map(({ file, obj }) => `${file} ${obj.kind}`)).toEqual(['examples/app-of-apps.yaml Application', 'examples/applicationset.yaml ApplicationSet']);
    for (const { file, obj } of argoObjects) expect(upstream.validate(obj), file).toEqual({ ok: true });
  });

  it('the validation can fail: a misspelt field of an example is rejected', () => {
    const app = only('examples/app-of-apps.yaml');
    app.spec.source.plugin.parameter = app.spec.source.plugin.parameters;
    expect(upstream.validate(app)).toEqual({ ok: false, errors: ['spec.source.plugin.parameter: unknown field'] });
  });
});

describe('argocd/examples/app-of-apps.yaml', () => {
  const app = only('examples/app-of-apps.yaml');

  it('renders the clusters path with the lattice plugin, named without a version and without discovery', () => {
    expect(app.metadata.namespace).toBe('argocd');
    expect(app.spec.source.path).toBe('clusters');
    // plugin.yaml has no spec.version, so the socket and the name are plain `lattice`.
    expect(app.spec.source.plugin.name).toBe('lattice');
    expect(app.spec.source).not.toHaveProperty('helm');
    expect(app.spec.source).not.toHaveProperty('kustomize');
    expect(app.spec.source).not.toHaveProperty('directory');
  });

  it('syncs automatically with prune and self-heal, and retries with backoff', () => {
    expect(app.spec.syncPolicy.automated).toEqual({ prune: true, selfHeal: true });
    expect(app.spec.syncPolicy.retry.limit).toBe(-1);
    expect(app.spec.syncPolicy.retry.backoff).toEqual({ duration: '10s', factor: 2, maxDuration: '5m' });
  });

  it('targets the management cluster and carries no resources finalizer (deleting it must not tear clusters down)', () => {
    expect(app.spec.destination.server).toBe('https://kubernetes.default.svc');
    expect(app.metadata.finalizers).toBeUndefined();
  });
});

describe('argocd/examples/applicationset.yaml', () => {
  const set = only('examples/applicationset.yaml');

  it('generates one Application per clusters/* directory with the lattice plugin', () => {
    expect(set.spec.generators).toEqual([{ git: { repoURL: set.spec.template.spec.source.repoURL, revision: 'main', directories: [{ path: 'clusters/*' }] } }]);
    expect(set.spec.template.metadata.name).toBe('lattice-{{ .path.basename }}');
    expect(set.spec.template.spec.source.path).toBe('{{ .path.path }}');
    expect(set.spec.template.spec.source.plugin).toEqual({ name: 'lattice' });
  });

  it('keeps what it applied when a directory disappears, and syncs automatically with retries', () => {
    expect(set.spec.syncPolicy.preserveResourcesOnDeletion).toBe(true);
    expect(set.spec.template.metadata.finalizers).toBeUndefined();
    expect(set.spec.template.spec.syncPolicy.automated).toEqual({ prune: true, selfHeal: true });
    expect(set.spec.template.spec.syncPolicy.retry.backoff).toEqual({ duration: '10s', factor: 2, maxDuration: '5m' });
  });
});

describe('argocd/repo-server-patch.yaml', () => {
  const patch = only('repo-server-patch.yaml');
  const containers: Obj[] = patch.spec.template.spec.containers;
  const sidecar = containers.find((c) => c.name === 'lattice-cmp') ?? {};

  it('patches the argocd-repo-server Deployment with one sidecar and one volume, leaving the stock ones alone', () => {
    expect(patch.apiVersion).toBe('apps/v1');
    expect(patch.kind).toBe('Deployment');
    expect(patch.metadata).toEqual({ name: 'argocd-repo-server' });
    expect(containers.map((c) => c.name)).toEqual(['lattice-cmp']);
    expect(patch.spec.template.spec.volumes).toEqual([{ name: 'cmp-tmp', emptyDir: { sizeLimit: '2Gi' } }]);
  });

  it('runs argocd-cmp-server from the shared var-files volume in the Lattice image, config baked in', () => {
    expect(sidecar.image).toBe('ghcr.io/lattice-gitops/lattice:0.1.0');
    expect(sidecar.command).toEqual(['/var/run/argocd/argocd-cmp-server']);
    expect(sidecar.args).toBeUndefined();
    expect(sidecar.env).toEqual([{ name: 'HOME', value: '/tmp' }]);
  });

  it('mounts var-files, plugins and its own cmp-tmp at /tmp, never the repo-server tmp volume or a plugin ConfigMap', () => {
    expect(sidecar.volumeMounts).toEqual([
      { name: 'var-files', mountPath: '/var/run/argocd' },
      { name: 'plugins', mountPath: '/home/argocd/cmp-server/plugins' },
      { name: 'cmp-tmp', mountPath: '/tmp' },
    ]);
  });

  it('runs as user 999, non-root, read-only, without privilege escalation or capabilities, with RuntimeDefault seccomp', () => {
    expect(sidecar.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 999,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  it('declares resource requests and limits', () => {
    for (const kind of ['requests', 'limits']) {
      expect(sidecar.resources?.[kind]?.memory, kind).toMatch(/^\d+(Mi|Gi)$/);
      expect(sidecar.resources?.[kind]?.cpu, kind).toBeDefined();
    }
  });
});

describe('argocd/kustomization.yaml', () => {
  const k = only('kustomization.yaml');

  it('installs a pinned Argo CD into argocd with both patches, which exist', () => {
    expect(k.kind).toBe('Kustomization');
    expect(k.namespace).toBe('argocd');
    expect(k.resources).toEqual(['https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml']);
    expect(k.patches).toEqual([{ path: 'repo-server-patch.yaml' }, { path: 'argocd-cm-health.yaml' }]);
    for (const { path } of k.patches as { path: string }[]) expect(existsSync(join(ARGOCD, path)), path).toBe(true);
  });

  it('patches the objects the Argo CD install defines, by kind and name', () => {
    const targets = (k.patches as { path: string }[]).map(({ path }) => {
      const p = only(path);
      return `${p.kind}/${p.metadata.name}`;
    });
    expect(targets).toEqual(['Deployment/argocd-repo-server', 'ConfigMap/argocd-cm']);
  });
});
