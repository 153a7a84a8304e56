/**
 * The plugin run the way argocd-cmp-server runs it (research/argocd-cmp.md §2): a child process whose
 * cwd is the app path inside an unpacked copy of the repository (files 0644, dirs 0755), with only the
 * sidecar's env plus the variables the repo-server sends, stdin closed, stdout and stderr piped (no TTY).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { CLI, REPO } from '../test/support/repo.js';
import { loadUpstreamSchemas } from '../test/support/upstream-schemas.js';
import { STAGES, stageIndex, isStage } from '../core/plan/stages.js';

/** An unpacked repository as the CMP server leaves it: `<tmp>/repo/clusters` holds the app. */
function unpackedRepo(extra: Record<string, string> = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'lattice-cmp-'));
  const app = join(root, 'repo', 'clusters');
  cpSync(join(REPO, 'examples', 'clusters'), app, { recursive: true });
  mkdirSync(join(root, 'repo', 'docs'), { recursive: true });
  writeFileSync(join(root, 'repo', 'README.md'), '# clusters\n');
  for (const [file, content] of Object.entries(extra)) writeFileSync(join(app, file), content);
  const normalize = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) {
        chmodSync(p, 0o755);
        normalize(p);
      } else chmodSync(p, 0o644);
    }
  };
  normalize(join(root, 'repo'));
  return app;
}

/** The env the repo-server sends with generate, on top of the sidecar's own (PATH, HOME). */
function cmpEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: tmpdir(),
    ARGOCD_APP_NAME: 'clusters',
    ARGOCD_APP_NAMESPACE: 'argocd',
    ARGOCD_APP_PROJECT_NAME: 'default',
    ARGOCD_APP_REVISION: '0123456789abcdef0123456789abcdef01234567',
    ARGOCD_APP_REVISION_SHORT: '0123456',
    ARGOCD_APP_REVISION_SHORT_8: '01234567',
    ARGOCD_APP_SOURCE_REPO_URL: 'https://git.example.com/platform/clusters.git',
    ARGOCD_APP_SOURCE_PATH: 'clusters',
    ARGOCD_APP_SOURCE_TARGET_REVISION: 'main',
    KUBE_VERSION: '1.34.1',
    KUBE_API_VERSIONS: 'v1,apps/v1,argoproj.io/v1alpha1',
    ...extra,
  };
}

const run = (cwd: string, args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [CLI, ...args], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
function objectsOf(stdout: string): Obj[] {
  const docs = parseAllDocuments(stdout);
  const list = Array.isArray(docs) ? docs : [docs];
  expect(list.flatMap((d) => d.errors.map((e) => e.message))).toEqual([]);
  return list.map((d) => d.toJS() as Obj).filter((o) => o !== null);
}

const upstream = loadUpstreamSchemas();

describe('lattice cmp generate (as argocd-cmp-server runs it)', () => {
  const app = unpackedRepo();

  it('prints every cluster\'s objects as a YAML stream with correct waves, Applications valid upstream', () => {
    // GIVEN the examples as an app path and the repo-server's env
    // WHEN the plugin generates
    const r = run(app, ['cmp', 'generate'], cmpEnv());
    // THEN it succeeds and stdout holds only manifests
    expect(r.stderr).toMatch(/7 cluster\(s\), \d+ objects/);
    expect(r.status).toBe(0);
    const objs = objectsOf(r.stdout);
    expect(objs.filter((o) => o.kind === 'LatticeCluster')).toHaveLength(7);
    expect(objs.filter((o) => o.kind === 'InfraProvider')).toHaveLength(4);
    for (const o of objs) {
      expect(o.apiVersion, JSON.stringify(o.metadata)).toEqual(expect.any(String));
      const wave = o.metadata.annotations?.['argocd.argoproj.io/sync-wave'];
      expect(wave, `${o.kind}/${o.metadata.name}`).toMatch(/^[0-9]$/);
      const stage = o.metadata.labels?.['lattice.dev/stage'];
      if (isStage(stage)) expect(Number(wave)).toBe(STAGES[stageIndex(stage)]?.wave);
      if (o.kind === 'Application') expect(upstream.validate(o), o.metadata.name).toEqual({ ok: true });
    }
    // every cluster's objects come in wave order
    for (const cluster of new Set(objs.map((o) => o.metadata.labels?.['lattice.dev/cluster']).filter(Boolean))) {
      const waves = objs.filter((o) => o.metadata.labels?.['lattice.dev/cluster'] === cluster).map((o) => Number(o.metadata.annotations['argocd.argoproj.io/sync-wave']));
      expect(waves).toEqual([...waves].sort((a, b) => a - b));
    }
  });

  it('prints byte-identical output for the same commit and parameters (Argo CD caches by commit)', () => {
    const a = run(app, ['cmp', 'generate'], cmpEnv());
    const b = run(app, ['cmp', 'generate'], cmpEnv({ ARGOCD_APP_REVISION: 'fedcba9876543210fedcba9876543210fedcba98' }));
    expect(a.status).toBe(0);
    expect(b.stdout).toBe(a.stdout);
  });

  it('selects clusters from ARGOCD_APP_PARAMETERS, PARAM_* or ARGOCD_ENV_* alike', () => {
    const names = (env: Record<string, string>) => {
      const r = run(app, ['cmp', 'generate'], cmpEnv(env));
      expect(r.status, r.stderr).toBe(0);
      return objectsOf(r.stdout).filter((o) => o.kind === 'LatticeCluster').map((o) => o.metadata.name);
    };
    expect(names({ ARGOCD_APP_PARAMETERS: JSON.stringify([{ name: 'include', array: ['dev', 'lab'] }]), PARAM_INCLUDE_0: 'dev', PARAM_INCLUDE_1: 'lab' })).toEqual(['dev', 'lab']);
    expect(names({ PARAM_INCLUDE_0: 'secure' })).toEqual(['secure']);
    expect(names({ ARGOCD_ENV_EXCLUDE: 'dev,lab,secure' })).toEqual(['edge-dc1', 'mgmt', 'ml-inference', 'prod-eu']);
  });

  it('prints the agent component of one cluster for component=agent', () => {
    const r = run(app, ['cmp', 'generate'], cmpEnv({ ARGOCD_APP_PARAMETERS: JSON.stringify([{ name: 'component', string: 'agent' }, { name: 'cluster', string: 'dev' }]) }));
    expect(r.status, r.stderr).toBe(0);
    const objs = objectsOf(r.stdout);
    expect(objs.map((o) => o.kind)).toEqual([
      'Namespace', 'Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Role', 'RoleBinding',
      // the API proxy's identity (M9)
      'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment',
    ]);
    expect(JSON.parse(objs.find((o) => o.kind === 'ConfigMap')?.data['config.json'] as string)).toMatchObject({ cluster: 'dev' });
  });

  it('exits non-zero with nothing on stdout and located errors on stderr for an invalid spec', () => {
    // GIVEN one broken spec beside the valid ones
    const broken = unpackedRepo({ 'broken.yaml': 'apiVersion: lattice.dev/v1alpha1\nkind: LatticeCluster\nmetadata:\n  name: broken\nspec:\n  providerRef: docker\n  provider:\n    kubernetes:\n      version: "1.34.1"\n    config:\n      docker: {}\n  nodes:\n    controlPlane:\n      replicas: 2\n' });
    const r = run(broken, ['cmp', 'generate'], cmpEnv());
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^broken\.yaml:14:\d+: error \w+ spec\.nodes\.controlPlane\.replicas/m);
    expect(r.stderr).toContain('no output was produced');
  });

  it('refuses to print nothing: an empty selection is an error unless allow-empty is set', () => {
    const empty = mkdtempSync(join(tmpdir(), 'lattice-cmp-empty-'));
    const r = run(empty, ['cmp', 'generate'], cmpEnv());
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('prune');
    const allowed = run(empty, ['cmp', 'generate'], cmpEnv({ PARAM_ALLOW_EMPTY: 'true' }));
    expect(allowed.status).toBe(0);
    expect(allowed.stdout).toBe('');
  });

  it('rejects unknown parameters and unknown cluster names with exit codes 2 and 1, stdout empty', () => {
    const unknown = run(app, ['cmp', 'generate'], cmpEnv({ ARGOCD_APP_PARAMETERS: JSON.stringify([{ name: 'clusters', array: ['dev'] }]) }));
    expect(unknown.status).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toContain('parameter "clusters" is unknown');
    const typo = run(app, ['cmp', 'generate'], cmpEnv({ PARAM_INCLUDE_0: 'dve' }));
    expect(typo.status).toBe(1);
    expect(typo.stdout).toBe('');
    expect(typo.stderr).toContain('no LatticeCluster named "dve"');
  });
});

describe('lattice cmp parameters', () => {
  it('prints a JSON array of announcements naming the clusters found', () => {
    const app = unpackedRepo();
    const r = run(app, ['cmp', 'parameters'], { PATH: process.env.PATH ?? '', ARGOCD_APP_NAME: 'clusters', ARGOCD_APP_SOURCE_PATH: 'clusters' });
    expect(r.status).toBe(0);
    const announced = JSON.parse(r.stdout) as { name: string; array?: string[] }[];
    expect(Array.isArray(announced)).toBe(true);
    expect(announced.find((p) => p.name === 'include')?.array).toEqual(['dev', 'edge-dc1', 'lab', 'mgmt', 'ml-inference', 'prod-eu', 'secure']);
  });
});

describe('plugin/plugin.yaml', () => {
  it('names the plugin lattice, runs our commands, and has no discover block', async () => {
    const { readFileSync } = await import('node:fs');
    const plugin = parse(readFileSync(join(REPO, 'plugin/plugin.yaml'), 'utf8')) as Obj;
    expect(plugin).toMatchObject({ kind: 'ConfigManagementPlugin', metadata: { name: 'lattice' }, spec: { generate: { command: ['lattice', 'cmp', 'generate'] }, parameters: { dynamic: { command: ['lattice', 'cmp', 'parameters'] } } } });
    expect(plugin.spec.discover).toBeUndefined();
    const { DEFAULT_PLUGIN_NAME } = await import('./plugin-name.js');
    expect(plugin.metadata.name).toBe(DEFAULT_PLUGIN_NAME);
  });
});
