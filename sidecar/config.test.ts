import { describe, expect, it } from 'vitest';
import { specRenderer } from '../cli/load.js';
import { parseDuration, parseSidecarConfig, type ConfigEnvironment, type RawSidecarOptions } from './config.js';

const catalog = specRenderer().versions.addons;
const files: Record<string, string> = { '/etc/lattice/hook-token': 's3cret-token-0123456789\n', '/etc/git/password': 'pw', '/etc/git/key': 'k', '/etc/git/known_hosts': 'h' };
const environment = (env: Record<string, string> = {}): ConfigEnvironment => ({
  env, hostname: 'host-a',
  readFile: (p) => {
    const f = files[p];
    if (f === undefined) throw new Error('ENOENT');
    return f;
  },
  readable: (p) => p in files,
});
const parse = (raw: RawSidecarOptions, env?: Record<string, string>) => parseSidecarConfig(raw, catalog, environment(env));
const errors = (raw: RawSidecarOptions, env?: Record<string, string>): string[] => {
  const r = parse(raw, env);
  return r.ok ? [] : r.errors;
};

describe('sidecar configuration', () => {
  it('fills in defaults around a git URL, the namespace coming from the downward API', () => {
    // GIVEN only a repository and the pod's namespace and name
    const r = parse({ gitUrl: 'https://git.example.com/platform/clusters.git' }, { POD_NAMESPACE: 'flux-system', POD_NAME: 'lattice-sidecar-7d9f' });
    // THEN everything else has its documented default
    expect(r).toEqual({
      ok: true,
      value: expect.objectContaining({
        source: { kind: 'git', url: 'https://git.example.com/platform/clusters.git', branch: 'main', credentials: { kind: 'none' } },
        path: '.', pollIntervalMs: 60_000, listen: { host: '', port: 9090 }, namespace: 'flux-system', fluxNamespace: 'flux-system',
        advertiseUrl: 'http://lattice-sidecar.flux-system.svc.cluster.local.', gcGraceMs: 600_000, publish: true, allowEmpty: false,
        leaseName: 'lattice-sidecar', identity: 'lattice-sidecar-7d9f', overrides: {}, logLevel: 'info',
      }),
    });
  });

  it('reads the hook token from its file and takes credentials as file paths', () => {
    const r = parse({ gitUrl: 'https://git.example.com/c.git', hookTokenFile: '/etc/lattice/hook-token', gitPasswordFile: '/etc/git/password', listen: '127.0.0.1:8080', pollInterval: '1m30s' });
    expect(r.ok && r.value.hookToken).toBe('s3cret-token-0123456789');
    expect(r.ok && r.value.source).toEqual({ kind: 'git', url: 'https://git.example.com/c.git', branch: 'main', credentials: { kind: 'basic', passwordFile: '/etc/git/password' } });
    expect(r.ok && r.value.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(r.ok && r.value.pollIntervalMs).toBe(90_000);
  });

  it('follows a GitRepository, in its own namespace unless one is named', () => {
    expect(parse({ gitrepository: 'clusters' }, { POD_NAMESPACE: 'flux-system' })).toMatchObject({ ok: true, value: { source: { kind: 'gitrepository', namespace: 'flux-system', name: 'clusters', maxBytes: 64 * 1024 * 1024 } } });
    expect(parse({ gitrepository: 'platform/clusters', maxSourceBytes: '8Mi' })).toMatchObject({ ok: true, value: { source: { namespace: 'platform', name: 'clusters', maxBytes: 8 * 1024 * 1024 } } });
  });

  it('reports every problem at once, naming the flag and its variable', () => {
    // GIVEN a configuration wrong in many ways
    const found = errors({
      gitUrl: 'https://alice:hunter2@git.example.com/c.git', gitBranch: '../main', path: '../outside', pollInterval: 'soon',
      listen: 'everywhere', advertiseUrl: 'ftp://x', namespace: 'Flux_System', publish: 'yes', logLevel: 'loud',
      hookTokenFile: '/missing', gitSshKeyFile: '/etc/git/key', chartVersions: 'cilium=latest,nope', chartRepositories: 'unknown=https://x',
    });
    // THEN each is reported, the flag and variable named
    expect(found).toEqual(expect.arrayContaining([
      '--git-url (LATTICE_SIDECAR_GIT_URL): must not carry credentials (use --git-username-file and --git-password-file)',
      '--git-branch (LATTICE_SIDECAR_GIT_BRANCH): expected a branch name, found "../main"',
      '--git-ssh-key-file (LATTICE_SIDECAR_GIT_SSH_KEY_FILE) needs --git-known-hosts-file (LATTICE_SIDECAR_GIT_KNOWN_HOSTS_FILE): SSH host keys are always checked',
      '--path (LATTICE_SIDECAR_PATH): expected a relative directory inside the repository, found "../outside"',
      '--hook-token-file (LATTICE_SIDECAR_HOOK_TOKEN_FILE): cannot read /missing',
      '--listen (LATTICE_SIDECAR_LISTEN): expected [host]:port such as :9090, found "everywhere"',
      '--namespace (LATTICE_SIDECAR_NAMESPACE): expected a namespace name, found "Flux_System"',
      '--publish (LATTICE_SIDECAR_PUBLISH): expected true or false, found "yes"',
      '--log-level (LATTICE_SIDECAR_LOG_LEVEL): expected one of fatal, error, warn, info, debug, trace, silent, found "loud"',
      '--poll-interval (LATTICE_SIDECAR_POLL_INTERVAL): expected a duration of at least 1000 ms such as 30s, 5m or 1h30m, found "soon"',
      '--chart-versions (LATTICE_SIDECAR_CHART_VERSIONS): expected id=value pairs separated by commas, found "nope"',
      'chart-versions.cilium: expected a chart version such as 1.2.3, found "latest"',
      expect.stringMatching(/^chart-repositories: unknown addon "unknown"/),
      expect.stringMatching(/^--advertise-url \(LATTICE_SIDECAR_ADVERTISE_URL\): expected an http/),
    ]));
    // AND no secret reaches a message
    expect(found.join('\n')).not.toContain('hunter2');
  });

  it('requires exactly one source, and git options only with a git URL', () => {
    expect(errors({})).toEqual(['exactly one source is required: --git-url (LATTICE_SIDECAR_GIT_URL) or --gitrepository (LATTICE_SIDECAR_GITREPOSITORY)']);
    expect(errors({ gitUrl: 'https://x/y.git', gitrepository: 'c' })).toHaveLength(1);
    expect(errors({ gitrepository: 'c', gitBranch: 'dev' })).toEqual(['--git-branch (LATTICE_SIDECAR_GIT_BRANCH) applies to --git-url (LATTICE_SIDECAR_GIT_URL) only: a GitRepository brings its own branch and credentials']);
  });

  it('parses Go-style durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h2m3s')).toBe(3_723_000);
    expect(parseDuration('1.5m')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
  });
});
