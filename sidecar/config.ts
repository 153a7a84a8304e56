/**
 * `lattice sidecar` configuration: flags and `LATTICE_SIDECAR_*` environment variables (flags win), checked
 * once at start. Every problem is reported at once, each naming the flag and its variable; secrets are
 * read from files and never appear in a message.
 */
import { LOG_LEVELS } from '../cli/process.js';
import type { AddonOverrides } from '../core/plan/addons.js';
import { checkOverrides, type AddonSpec } from '../core/plan/addons.js';

/** Raw option values as commander gives them (strings; undefined when unset). */
export interface RawSidecarOptions {
  readonly gitUrl?: string;
  readonly gitBranch?: string;
  readonly gitUsernameFile?: string;
  readonly gitPasswordFile?: string;
  readonly gitSshKeyFile?: string;
  readonly gitKnownHostsFile?: string;
  readonly gitrepository?: string;
  readonly path?: string;
  readonly pollInterval?: string;
  readonly hookTokenFile?: string;
  readonly storageDir?: string;
  readonly cacheDir?: string;
  readonly listen?: string;
  readonly advertiseUrl?: string;
  readonly namespace?: string;
  readonly fluxNamespace?: string;
  readonly gcGrace?: string;
  readonly publish?: string;
  readonly allowEmpty?: string;
  readonly leaseName?: string;
  readonly identity?: string;
  readonly kubeconfig?: string;
  readonly chartRepositories?: string;
  readonly chartVersions?: string;
  readonly maxSourceBytes?: string;
  readonly logLevel?: string;
}

/** Every option: its flag, its environment variable, and what it means (the help text). */
export const SIDECAR_OPTIONS: readonly { readonly key: keyof RawSidecarOptions; readonly flag: string; readonly env: string; readonly help: string }[] = [
  { key: 'gitUrl', flag: '--git-url <url>', env: 'LATTICE_SIDECAR_GIT_URL', help: 'clone and fetch this repository (https://, http://, ssh://, git@host:path, file://); credentials only from files' },
  { key: 'gitBranch', flag: '--git-branch <branch>', env: 'LATTICE_SIDECAR_GIT_BRANCH', help: 'branch to follow (default main)' },
  { key: 'gitUsernameFile', flag: '--git-username-file <file>', env: 'LATTICE_SIDECAR_GIT_USERNAME_FILE', help: 'HTTP basic auth user name (default "git" when a password file is given)' },
  { key: 'gitPasswordFile', flag: '--git-password-file <file>', env: 'LATTICE_SIDECAR_GIT_PASSWORD_FILE', help: 'HTTP basic auth password or token' },
  { key: 'gitSshKeyFile', flag: '--git-ssh-key-file <file>', env: 'LATTICE_SIDECAR_GIT_SSH_KEY_FILE', help: 'SSH private key (needs --git-known-hosts-file)' },
  { key: 'gitKnownHostsFile', flag: '--git-known-hosts-file <file>', env: 'LATTICE_SIDECAR_GIT_KNOWN_HOSTS_FILE', help: 'known_hosts for SSH (host keys are always checked)' },
  { key: 'gitrepository', flag: '--gitrepository <[namespace/]name>', env: 'LATTICE_SIDECAR_GITREPOSITORY', help: 'follow this Flux GitRepository\'s artifact instead of cloning' },
  { key: 'path', flag: '--path <dir>', env: 'LATTICE_SIDECAR_PATH', help: 'directory of the specs inside the repository (default .)' },
  { key: 'pollInterval', flag: '--poll-interval <duration>', env: 'LATTICE_SIDECAR_POLL_INTERVAL', help: 'how often to fetch (default 1m)' },
  { key: 'hookTokenFile', flag: '--hook-token-file <file>', env: 'LATTICE_SIDECAR_HOOK_TOKEN_FILE', help: 'enables POST /hooks/git, authenticated with the token in this file' },
  { key: 'storageDir', flag: '--storage-dir <dir>', env: 'LATTICE_SIDECAR_STORAGE_DIR', help: 'where artifacts are stored (default /data/artifacts)' },
  { key: 'cacheDir', flag: '--cache-dir <dir>', env: 'LATTICE_SIDECAR_CACHE_DIR', help: 'where the repository is cloned or unpacked (default /data/cache)' },
  { key: 'listen', flag: '--listen <[host]:port>', env: 'LATTICE_SIDECAR_LISTEN', help: 'HTTP address (default :9090)' },
  { key: 'advertiseUrl', flag: '--advertise-url <url>', env: 'LATTICE_SIDECAR_ADVERTISE_URL', help: 'base URL written into artifact URLs (default http://lattice-sidecar.<namespace>.svc.cluster.local.)' },
  { key: 'namespace', flag: '--namespace <namespace>', env: 'LATTICE_SIDECAR_NAMESPACE', help: 'namespace of the ExternalArtifacts and the Lease (default $POD_NAMESPACE, else flux-system)' },
  { key: 'fluxNamespace', flag: '--flux-namespace <namespace>', env: 'LATTICE_SIDECAR_FLUX_NAMESPACE', help: 'namespace of the generated Kustomizations and HelmReleases (default: --namespace)' },
  { key: 'gcGrace', flag: '--gc-grace <duration>', env: 'LATTICE_SIDECAR_GC_GRACE', help: 'how long superseded artifacts stay served (default 10m)' },
  { key: 'publish', flag: '--publish <true|false>', env: 'LATTICE_SIDECAR_PUBLISH', help: 'write ExternalArtifacts (default true; false serves artifacts only)' },
  { key: 'allowEmpty', flag: '--allow-empty <true|false>', env: 'LATTICE_SIDECAR_ALLOW_EMPTY', help: 'publish an index without clusters, which makes Flux prune every cluster (default false)' },
  { key: 'leaseName', flag: '--lease-name <name>', env: 'LATTICE_SIDECAR_LEASE_NAME', help: 'Lease for electing the one replica that writes (default lattice-sidecar)' },
  { key: 'identity', flag: '--identity <id>', env: 'LATTICE_SIDECAR_IDENTITY', help: 'this replica in the Lease (default $POD_NAME, else the host name)' },
  { key: 'kubeconfig', flag: '--kubeconfig <file>', env: 'LATTICE_SIDECAR_KUBECONFIG', help: 'kubeconfig (default $KUBECONFIG, else in-cluster)' },
  { key: 'chartRepositories', flag: '--chart-repositories <id=url,...>', env: 'LATTICE_SIDECAR_CHART_REPOSITORIES', help: 'chart repository per addon (air-gapped mirrors)' },
  { key: 'chartVersions', flag: '--chart-versions <id=version,...>', env: 'LATTICE_SIDECAR_CHART_VERSIONS', help: 'chart version per addon' },
  { key: 'maxSourceBytes', flag: '--max-source-bytes <bytes>', env: 'LATTICE_SIDECAR_MAX_SOURCE_BYTES', help: 'largest GitRepository tarball, and largest unpacked size (default 64Mi)' },
  { key: 'logLevel', flag: '--log-level <level>', env: 'LATTICE_SIDECAR_LOG_LEVEL', help: 'fatal, error, warn, info, debug (default info)' },
];

export type GitCredentials =
  | { readonly kind: 'none' }
  | { readonly kind: 'basic'; readonly usernameFile?: string; readonly passwordFile: string }
  | { readonly kind: 'ssh'; readonly keyFile: string; readonly knownHostsFile: string };

export type SourceConfig =
  | { readonly kind: 'git'; readonly url: string; readonly branch: string; readonly credentials: GitCredentials }
  | { readonly kind: 'gitrepository'; readonly namespace: string; readonly name: string; readonly maxBytes: number };

export interface SidecarConfig {
  readonly source: SourceConfig;
  readonly path: string;
  readonly pollIntervalMs: number;
  readonly hookToken?: string;
  readonly storageDir: string;
  readonly cacheDir: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly advertiseUrl: string;
  readonly namespace: string;
  readonly fluxNamespace: string;
  readonly gcGraceMs: number;
  readonly publish: boolean;
  readonly allowEmpty: boolean;
  readonly leaseName: string;
  readonly identity: string;
  readonly kubeconfig?: string;
  readonly overrides: AddonOverrides;
  readonly logLevel: string;
}

export interface ConfigEnvironment {
  /** Downward-API and standard variables: POD_NAMESPACE, POD_NAME, KUBECONFIG. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads a mounted file (token); throws when it cannot. */
  readonly readFile: (path: string) => string;
  /** Whether a file exists and can be read (credentials are read at each fetch, so they can rotate). */
  readonly readable: (path: string) => boolean;
  readonly hostname: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DURATION = /^([0-9]+(ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `1m30s` → 90000; undefined when malformed. */
export function parseDuration(value: string): number | undefined {
  if (!DURATION.test(value)) return undefined;
  let ms = 0;
  for (const m of value.matchAll(/([0-9]+)(ms|s|m|h)/g)) ms += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
  return ms;
}

/** `64Mi`, `1G`, `1048576` → bytes; undefined when malformed. */
export function parseBytes(value: string): number | undefined {
  const m = /^([0-9]+)(Ki|Mi|Gi|K|M|G)?$/.exec(value);
  if (!m) return undefined;
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1000, M: 1000 ** 2, G: 1000 ** 3 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

/** Git refs a branch may be (a conservative subset of `git check-ref-format --branch`). */
const isBranch = (b: string): boolean => /^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(b) && b.length <= 255 && !b.includes('..') && !b.includes('//') && !b.endsWith('/') && !b.endsWith('.lock') && !b.endsWith('.');

/** A relative directory inside the repository, `.` for its root. */
const isRepoPath = (p: string): boolean => p === '.' || (/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/?$/.test(p) && !p.split('/').some((s) => s === '..' || s === '.'));

function checkGitUrl(url: string): string | undefined {
  if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/.test(url)) return undefined; // scp-like ssh
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (!['https:', 'http:', 'ssh:', 'file:'].includes(u.protocol)) return `scheme ${u.protocol} is not supported (https, http, ssh, file)`;
  // Credentials in the URL would reach logs, error messages and `ps`: they come from files only.
  if (u.password !== '' || ((u.protocol === 'https:' || u.protocol === 'http:') && u.username !== '')) return 'must not carry credentials (use --git-username-file and --git-password-file)';
  if (u.search !== '' || u.hash !== '') return 'must not have a query or fragment';
  return undefined;
}

function parseOverrides(value: string | undefined, what: string, errors: string[]): Record<string, string> | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const out: Record<string, string> = {};
  for (const part of value.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) {
      errors.push(`${what}: expected id=value pairs separated by commas, found ${JSON.stringify(part)}`);
      continue;
    }
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** Checks every option; returns the configuration or every problem found. */
export function parseSidecarConfig(raw: RawSidecarOptions, catalog: readonly AddonSpec[], environment: ConfigEnvironment): { ok: true; value: SidecarConfig } | { ok: false; errors: string[] } {
  const errors: string[] = [];
  const opt = (key: keyof RawSidecarOptions): string => {
    const o = SIDECAR_OPTIONS.find((x) => x.key === key);
    return o ? `${o.flag.split(' ')[0] ?? ''} (${o.env})` : key;
  };
  const value = (key: keyof RawSidecarOptions): string | undefined => {
    const v = raw[key];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const duration = (key: keyof RawSidecarOptions, fallback: number, min: number): number => {
    const v = value(key);
    if (v === undefined) return fallback;
    const ms = parseDuration(v);
    if (ms === undefined || ms < min) {
      errors.push(`${opt(key)}: expected a duration of at least ${min} ms such as 30s, 5m or 1h30m, found ${JSON.stringify(v)}`);
      return fallback;
    }
    return ms;
  };
  const file = (key: keyof RawSidecarOptions): string | undefined => {
    const v = value(key);
    if (v !== undefined && !environment.readable(v)) errors.push(`${opt(key)}: cannot read ${v}`);
    return v;
  };

  // The source: exactly one of a git URL and a GitRepository.
  const gitUrl = value('gitUrl');
  const gitRepository = value('gitrepository');
  const namespace = value('namespace') ?? environment.env.POD_NAMESPACE ?? 'flux-system';
  if (!DNS_LABEL.test(namespace) || namespace.length > 63) errors.push(`${opt('namespace')}: expected a namespace name, found ${JSON.stringify(namespace)}`);
  const maxBytes = (() => {
    const v = value('maxSourceBytes');
    const n = v === undefined ? 64 * 1024 ** 2 : parseBytes(v);
    if (n === undefined || n < 1024) {
      errors.push(`${opt('maxSourceBytes')}: expected a size of at least 1Ki such as 64Mi, found ${JSON.stringify(v)}`);
      return 64 * 1024 ** 2;
    }
    return n;
  })();
  let source: SourceConfig | undefined;
  if ((gitUrl === undefined) === (gitRepository === undefined)) {
    errors.push(`exactly one source is required: ${opt('gitUrl')} or ${opt('gitrepository')}`);
  } else if (gitUrl !== undefined) {
    const problem = checkGitUrl(gitUrl);
    // The URL is the user's own input: echo it only when it carries no credentials.
    if (problem) errors.push(`${opt('gitUrl')}: ${problem}${problem.startsWith('must not carry') ? '' : ` (found ${JSON.stringify(gitUrl)})`}`);
    const branch = value('gitBranch') ?? 'main';
    if (!isBranch(branch)) errors.push(`${opt('gitBranch')}: expected a branch name, found ${JSON.stringify(branch)}`);
    const usernameFile = file('gitUsernameFile');
    const passwordFile = file('gitPasswordFile');
    const keyFile = file('gitSshKeyFile');
    const knownHostsFile = file('gitKnownHostsFile');
    let credentials: GitCredentials = { kind: 'none' };
    if (passwordFile !== undefined && keyFile !== undefined) errors.push(`${opt('gitPasswordFile')} and ${opt('gitSshKeyFile')} exclude each other`);
    else if (passwordFile !== undefined) credentials = { kind: 'basic', passwordFile, ...(usernameFile ? { usernameFile } : {}) };
    else if (usernameFile !== undefined) errors.push(`${opt('gitUsernameFile')} needs ${opt('gitPasswordFile')}`);
    else if (keyFile !== undefined) {
      if (knownHostsFile === undefined) errors.push(`${opt('gitSshKeyFile')} needs ${opt('gitKnownHostsFile')}: SSH host keys are always checked`);
      else credentials = { kind: 'ssh', keyFile, knownHostsFile };
    }
    source = { kind: 'git', url: gitUrl, branch, credentials };
  } else if (gitRepository !== undefined) {
    const [ns, name] = gitRepository.includes('/') ? gitRepository.split('/', 2) : [namespace, gitRepository];
    if (!ns || !name || !DNS_LABEL.test(ns) || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || gitRepository.split('/').length > 2) {
      errors.push(`${opt('gitrepository')}: expected [namespace/]name, found ${JSON.stringify(gitRepository)}`);
    } else {
      source = { kind: 'gitrepository', namespace: ns, name, maxBytes };
    }
    for (const key of ['gitBranch', 'gitUsernameFile', 'gitPasswordFile', 'gitSshKeyFile', 'gitKnownHostsFile'] as const) {
      if (value(key) !== undefined) errors.push(`${opt(key)} applies to ${opt('gitUrl')} only: a GitRepository brings its own branch and credentials`);
    }
  }

  const path = value('path') ?? '.';
  if (!isRepoPath(path)) errors.push(`${opt('path')}: expected a relative directory inside the repository, found ${JSON.stringify(path)}`);

  let hookToken: string | undefined;
  const tokenFile = value('hookTokenFile');
  if (tokenFile !== undefined) {
    try {
      hookToken = environment.readFile(tokenFile).trim();
      if (hookToken.length < 16) errors.push(`${opt('hookTokenFile')}: the token must be at least 16 characters`);
    } catch {
      errors.push(`${opt('hookTokenFile')}: cannot read ${tokenFile}`);
    }
  }

  const listenRaw = value('listen') ?? ':9090';
  const lm = /^(?:\[?([A-Za-z0-9.:-]*?)\]?)?:([0-9]{1,5})$/.exec(listenRaw) ?? /^()([0-9]{1,5})$/.exec(listenRaw);
  const port = lm ? Number(lm[2]) : NaN;
  if (!lm || port > 65535) errors.push(`${opt('listen')}: expected [host]:port such as :9090, found ${JSON.stringify(listenRaw)}`);

  const advertiseUrl = (value('advertiseUrl') ?? `http://lattice-sidecar.${namespace}.svc.cluster.local.`).replace(/\/+$/, '');
  try {
    const u = new URL(advertiseUrl);
    if (!['http:', 'https:'].includes(u.protocol) || u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') throw new Error('bad');
  } catch {
    errors.push(`${opt('advertiseUrl')}: expected an http:// or https:// URL without credentials, query or fragment, found ${JSON.stringify(advertiseUrl)}`);
  }

  const fluxNamespace = value('fluxNamespace') ?? namespace;
  if (!DNS_LABEL.test(fluxNamespace) || fluxNamespace.length > 63) errors.push(`${opt('fluxNamespace')}: expected a namespace name, found ${JSON.stringify(fluxNamespace)}`);

  const bool = (key: keyof RawSidecarOptions, fallback: boolean): boolean => {
    const v = value(key)?.toLowerCase();
    if (v === undefined) return fallback;
    if (v !== 'true' && v !== 'false') errors.push(`${opt(key)}: expected true or false, found ${JSON.stringify(v)}`);
    return v === 'true';
  };
  const publish = bool('publish', true);
  const allowEmpty = bool('allowEmpty', false);
  const leaseName = value('leaseName') ?? 'lattice-sidecar';
  if (!DNS_LABEL.test(leaseName)) errors.push(`${opt('leaseName')}: expected a DNS label, found ${JSON.stringify(leaseName)}`);
  const identity = value('identity') ?? environment.env.POD_NAME ?? environment.hostname;
  const logLevel = value('logLevel') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) errors.push(`${opt('logLevel')}: expected one of ${LOG_LEVELS.join(', ')}, found ${JSON.stringify(logLevel)}`);

  const repositories = parseOverrides(value('chartRepositories'), opt('chartRepositories'), errors);
  const versions = parseOverrides(value('chartVersions'), opt('chartVersions'), errors);
  const overrides: AddonOverrides = { ...(repositories ? { repositories } : {}), ...(versions ? { versions } : {}) };
  errors.push(...checkOverrides(catalog, overrides));

  const kubeconfig = file('kubeconfig') ?? environment.env.KUBECONFIG;
  const pollIntervalMs = duration('pollInterval', 60_000, 1000);
  const gcGraceMs = duration('gcGrace', 600_000, 0);
  if (errors.length > 0 || !source) return { ok: false, errors };
  return {
    ok: true,
    value: {
      source, path: path.replace(/\/$/, ''), pollIntervalMs, ...(hookToken !== undefined ? { hookToken } : {}),
      storageDir: value('storageDir') ?? '/data/artifacts', cacheDir: value('cacheDir') ?? '/data/cache',
      listen: { host: lm?.[1] ?? '', port }, advertiseUrl, namespace, fluxNamespace, gcGraceMs,
      publish, allowEmpty, leaseName, identity, ...(kubeconfig ? { kubeconfig } : {}), overrides, logLevel,
    },
  };
}
