/**
 * The controller's configuration: flags, then `LATTICE_*` environment variables, then defaults; validated
 * once at start and frozen (nothing reads flags or env after this). Pure: the caller passes the raw flag
 * values, the environment and the random suffix of the leader identity.
 */
import { LOG_LEVELS } from '../cli/process.js';

export type GitOpsMode = 'argocd' | 'flux';

export interface ControllerConfig {
  /** Path of a kubeconfig; undefined: the in-cluster service account. */
  readonly kubeconfig?: string;
  /** The LatticeCluster that describes the cluster this controller runs in (a parent): never torn down by it. */
  readonly self?: string;
  readonly gitops: GitOpsMode;
  /** The controller's namespace: its Lease, the InfraProviders and their credentials Secrets. */
  readonly namespace: string;
  readonly argocdNamespace: string;
  /** Where the Flux HelmReleases and Kustomizations live, and so the kubeconfig Secrets they reference. */
  readonly fluxNamespace: string;
  /** CAPA's namespace: AWSClusterStaticIdentity Secrets are read there (research/capi.md B.4.2). */
  readonly capaNamespace: string;
  /** Namespace of Events about LatticeClusters (cluster-scoped objects: kubectl looks in `default`). */
  readonly eventNamespace: string;
  /** This replica's leader-election identity. */
  readonly identity: string;
  readonly leaseName: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  /** Reconciles running at once (never two for one cluster). */
  readonly concurrency: number;
  /** Requeue of a settled cluster (a jittered periodic resync). */
  readonly resyncIntervalMs: number;
  /** Requeue of a cluster that is still coming up (watches usually trigger sooner). */
  readonly progressIntervalMs: number;
  /** Requeue while waiting for a dependency (an InfraProvider, a namespace, CAPI to delete). */
  readonly waitIntervalMs: number;
  /** Backoff of a cluster whose reconcile failed: base × 2^failures up to max. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** Backoff of watch restarts (with jitter). */
  readonly watchBackoffBaseMs: number;
  readonly watchBackoffMaxMs: number;
  /** Infrastructure not ready this long after its Cluster appeared: phase Failed. 0 disables. */
  readonly provisioningTimeoutMs: number;
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
  /**
   * The address children dial (DNS name or IP, in the cell's serving certificate): set, the controller runs
   * the cell (bootstrap endpoint and agent gRPC stream) and delivers bootstrap tokens; unset, it does not.
   */
  readonly cellHost?: string;
  readonly grpcPort: number;
  readonly bootstrapPort: number;
  /** The API proxy (M9): where it listens, and the address registrations of pivoted clusters point at. */
  readonly proxyPort: number;
  readonly proxyHost: string;
  /** How often agents send heartbeats; an agent silent for 3 intervals is disconnected. */
  readonly heartbeatIntervalMs: number;
  /** Pivot clusters into themselves once they are up (DESIGN §7); false keeps them managed from here. */
  readonly pivot: boolean;
  /** A pivot not complete this long after it started is aborted (the source unpaused) and retried later. */
  readonly pivotTimeoutMs: number;
  /** How long one move command (a batch, MoveComplete, an unpivot request) may wait for its Ack. */
  readonly moveCommandTimeoutMs: number;
}

/** One setting: flag name, env variable, default, and how to read it. */
interface Setting {
  readonly flag: string;
  readonly env: string;
  readonly help: string;
  readonly default?: string;
}

/** Every setting, in the order `--help` lists them. Flag names map to config keys by camelCase. */
export const SETTINGS: readonly Setting[] = [
  { flag: 'kubeconfig', env: 'LATTICE_KUBECONFIG', help: 'kubeconfig of the parent cluster (default: the in-cluster service account)' },
  { flag: 'self', env: 'LATTICE_SELF', help: 'name of the LatticeCluster describing the cluster the controller runs in' },
  { flag: 'gitops', env: 'LATTICE_GITOPS', help: 'GitOps engine that applies the rendered clusters: argocd or flux', default: 'argocd' },
  { flag: 'namespace', env: 'LATTICE_NAMESPACE', help: 'namespace of the controller, its Lease, the InfraProviders and their credentials', default: 'lattice-system' },
  { flag: 'argocd-namespace', env: 'LATTICE_ARGOCD_NAMESPACE', help: 'Argo CD namespace (Applications, cluster Secrets)', default: 'argocd' },
  { flag: 'flux-namespace', env: 'LATTICE_FLUX_NAMESPACE', help: 'namespace of the Flux HelmReleases and Kustomizations (and the kubeconfig Secrets they use)', default: 'flux-system' },
  { flag: 'capa-namespace', env: 'LATTICE_CAPA_NAMESPACE', help: 'namespace of Cluster API Provider AWS (static identity Secrets)', default: 'capa-system' },
  { flag: 'event-namespace', env: 'LATTICE_EVENT_NAMESPACE', help: 'namespace of Events about LatticeClusters', default: 'default' },
  { flag: 'identity', env: 'LATTICE_IDENTITY', help: 'leader election identity (default: $POD_NAME or $HOSTNAME plus a random suffix)' },
  { flag: 'lease-name', env: 'LATTICE_LEASE_NAME', help: 'name of the leader election Lease', default: 'lattice-controller' },
  { flag: 'lease-duration', env: 'LATTICE_LEASE_DURATION', help: 'how long a lease holds without renewal', default: '15s' },
  { flag: 'renew-deadline', env: 'LATTICE_RENEW_DEADLINE', help: 'a leader that cannot renew for this long steps down', default: '10s' },
  { flag: 'retry-period', env: 'LATTICE_RETRY_PERIOD', help: 'time between leader election attempts', default: '2s' },
  { flag: 'concurrency', env: 'LATTICE_CONCURRENCY', help: 'clusters reconciled at once', default: '4' },
  { flag: 'resync-interval', env: 'LATTICE_RESYNC_INTERVAL', help: 'periodic re-check of a settled cluster (jittered)', default: '5m' },
  { flag: 'progress-interval', env: 'LATTICE_PROGRESS_INTERVAL', help: 're-check of a cluster that is coming up (jittered)', default: '30s' },
  { flag: 'wait-interval', env: 'LATTICE_WAIT_INTERVAL', help: 're-check while waiting for a dependency (jittered)', default: '15s' },
  { flag: 'retry-base', env: 'LATTICE_RETRY_BASE', help: 'first retry delay after a failed reconcile (doubles per failure)', default: '1s' },
  { flag: 'retry-max', env: 'LATTICE_RETRY_MAX', help: 'longest retry delay after failed reconciles', default: '5m' },
  { flag: 'watch-backoff-base', env: 'LATTICE_WATCH_BACKOFF_BASE', help: 'first delay before restarting a failed watch (doubles, with jitter)', default: '500ms' },
  { flag: 'watch-backoff-max', env: 'LATTICE_WATCH_BACKOFF_MAX', help: 'longest delay before restarting a failed watch', default: '30s' },
  { flag: 'provisioning-timeout', env: 'LATTICE_PROVISIONING_TIMEOUT', help: 'phase Failed when the infrastructure is not ready this long after its Cluster appeared (0: never)', default: '30m' },
  { flag: 'host', env: 'LATTICE_HOST', help: 'address of the health and metrics server', default: '0.0.0.0' },
  { flag: 'port', env: 'LATTICE_PORT', help: 'port of the health and metrics server (/healthz, /readyz, /metrics)', default: '8080' },
  { flag: 'log-level', env: 'LATTICE_LOG_LEVEL', help: 'log level: fatal, error, warn, info, debug, trace', default: 'info' },
  { flag: 'cell-host', env: 'LATTICE_CELL_HOST', help: 'address children dial to reach the cell (enables the cell: agent bootstrap and gRPC); usually the parent spec\'s parentConfig.host' },
  { flag: 'grpc-port', env: 'LATTICE_GRPC_PORT', help: 'port of the cell\'s agent gRPC stream (mutual TLS)', default: '50051' },
  { flag: 'bootstrap-port', env: 'LATTICE_BOOTSTRAP_PORT', help: 'port of the cell\'s HTTPS bootstrap endpoint', default: '8443' },
  { flag: 'proxy-port', env: 'LATTICE_PROXY_PORT', help: 'port of the cell\'s Kubernetes API proxy to pivoted clusters (for the parent\'s GitOps engine only)', default: '8081' },
  { flag: 'proxy-host', env: 'LATTICE_PROXY_HOST', help: 'address the parent\'s GitOps engine reaches the API proxy at (default: the in-cluster Service lattice-cell-proxy.<namespace>.svc)' },
  { flag: 'heartbeat-interval', env: 'LATTICE_HEARTBEAT_INTERVAL', help: 'agent heartbeat interval; 3 missed ones mark the agent disconnected', default: '10s' },
  { flag: 'pivot', env: 'LATTICE_PIVOT', help: 'move each cluster\'s Cluster API objects into the cluster once it is up (true or false)', default: 'true' },
  { flag: 'pivot-timeout', env: 'LATTICE_PIVOT_TIMEOUT', help: 'abort (unpause the source) and retry a pivot not complete after this long', default: '30m' },
  { flag: 'move-command-timeout', env: 'LATTICE_MOVE_COMMAND_TIMEOUT', help: 'how long a move batch, MoveComplete or unpivot request waits for the agent', default: '2m' },
];

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration (`500ms`, `30s`, `5m`, `1h30m`, `0`); undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * (UNITS[m[2] ?? ''] ?? 0);
  return Math.round(total);
}

/** `1h30m`, `5m`, `45s`, `500ms`: for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export type ConfigResult = { ok: true; value: ControllerConfig } | { ok: false; errors: string[] };

/**
 * Resolves every setting (flag, else env, else default), checks it, and returns a frozen config or every
 * problem at once. `flags` holds raw flag values by camelCase name (commander's option names).
 */
export function loadControllerConfig(flags: Readonly<Record<string, unknown>>, env: Readonly<Record<string, string | undefined>>, options: { identitySuffix: string }): ConfigResult {
  const errors: string[] = [];
  const raw = new Map<string, { value: string; from: string }>();
  for (const s of SETTINGS) {
    const flag = flags[camel(s.flag)];
    if (typeof flag === 'string') raw.set(s.flag, { value: flag, from: `--${s.flag}` });
    else if (env[s.env] !== undefined && env[s.env] !== '') raw.set(s.flag, { value: String(env[s.env]), from: s.env });
    else if (s.default !== undefined) raw.set(s.flag, { value: s.default, from: `the default of --${s.flag}` });
  }
  const text = (flag: string): string | undefined => raw.get(flag)?.value;
  const bad = (flag: string, expected: string) => errors.push(`${raw.get(flag)?.from ?? `--${flag}`}: expected ${expected}, found ${JSON.stringify(text(flag))}`);
  const duration = (flag: string, min = 1): number => {
    const ms = parseDuration(text(flag) ?? '');
    if (ms === undefined || ms < min) {
      bad(flag, min === 0 ? 'a duration such as 30s, 5m or 0' : 'a positive duration such as 500ms, 30s or 5m');
      return 0;
    }
    return ms;
  };
  const integer = (flag: string, min: number, max: number): number => {
    const v = text(flag) ?? '';
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) {
      bad(flag, `an integer from ${min} to ${max}`);
      return min;
    }
    return n;
  };
  const boolean = (flag: string): boolean => {
    const v = text(flag);
    if (v !== 'true' && v !== 'false') bad(flag, 'true or false');
    return v === 'true';
  };
  const name = (flag: string): string => {
    const v = text(flag) ?? '';
    if (!DNS_LABEL.test(v) || v.length > 63) bad(flag, 'a DNS label (lowercase letters, digits and -)');
    return v;
  };

  const gitops = text('gitops');
  if (gitops !== 'argocd' && gitops !== 'flux') bad('gitops', 'argocd or flux');
  const self = text('self');
  if (self !== undefined && (!DNS_LABEL.test(self) || self.length > 63)) bad('self', 'a LatticeCluster name');
  const logLevel = text('log-level') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) bad('log-level', LOG_LEVELS.join(', '));
  const host = text('host') ?? '';
  if (host === '' || /\s/.test(host)) bad('host', 'an address to listen on');
  const cellHost = text('cell-host');
  if (cellHost !== undefined && !/^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|[0-9a-fA-F:.]+)$/.test(cellHost)) bad('cell-host', 'a DNS name or an IP address');
  const proxyHost = text('proxy-host');
  if (proxyHost !== undefined && !/^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|[0-9a-fA-F:.]+)$/.test(proxyHost)) bad('proxy-host', 'a DNS name or an IP address');
  const baseIdentity = text('identity') ?? env.POD_NAME ?? env.HOSTNAME ?? 'lattice-controller';
  const config: ControllerConfig = {
    ...(text('kubeconfig') ? { kubeconfig: text('kubeconfig') } : {}),
    ...(self ? { self } : {}),
    gitops: gitops === 'flux' ? 'flux' : 'argocd',
    namespace: name('namespace'),
    argocdNamespace: name('argocd-namespace'),
    fluxNamespace: name('flux-namespace'),
    capaNamespace: name('capa-namespace'),
    eventNamespace: name('event-namespace'),
    // A random suffix: a restarted pod with the same name must not inherit the old lease as its own.
    identity: text('identity') ?? `${baseIdentity}_${options.identitySuffix}`,
    leaseName: name('lease-name'),
    leaseDurationMs: duration('lease-duration'),
    renewDeadlineMs: duration('renew-deadline'),
    retryPeriodMs: duration('retry-period'),
    concurrency: integer('concurrency', 1, 64),
    resyncIntervalMs: duration('resync-interval'),
    progressIntervalMs: duration('progress-interval'),
    waitIntervalMs: duration('wait-interval'),
    retryBaseMs: duration('retry-base'),
    retryMaxMs: duration('retry-max'),
    watchBackoffBaseMs: duration('watch-backoff-base'),
    watchBackoffMaxMs: duration('watch-backoff-max'),
    provisioningTimeoutMs: duration('provisioning-timeout', 0),
    host,
    port: integer('port', 0, 65535),
    logLevel,
    ...(cellHost ? { cellHost } : {}),
    grpcPort: integer('grpc-port', 0, 65535),
    bootstrapPort: integer('bootstrap-port', 0, 65535),
    proxyPort: integer('proxy-port', 0, 65535),
    proxyHost: proxyHost ?? `lattice-cell-proxy.${text('namespace') ?? 'lattice-system'}.svc`,
    heartbeatIntervalMs: duration('heartbeat-interval'),
    pivot: boolean('pivot'),
    pivotTimeoutMs: duration('pivot-timeout'),
    moveCommandTimeoutMs: duration('move-command-timeout'),
  };
  // client-go's rules: the lease must outlive the renew deadline, which must outlive a retry period.
  if (errors.length === 0 && !(config.leaseDurationMs > config.renewDeadlineMs && config.renewDeadlineMs > config.retryPeriodMs)) {
    errors.push('leader election: expected --lease-duration > --renew-deadline > --retry-period');
  }
  if (errors.length === 0 && config.retryBaseMs > config.retryMaxMs) errors.push('expected --retry-base <= --retry-max');
  if (errors.length === 0 && config.watchBackoffBaseMs > config.watchBackoffMaxMs) errors.push('expected --watch-backoff-base <= --watch-backoff-max');
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: Object.freeze(config) };
}

/** A config for tests and embedding: defaults plus overrides, unvalidated. */
export function defaultConfig(overrides: Partial<ControllerConfig> = {}): ControllerConfig {
  const loaded = loadControllerConfig({}, {}, { identitySuffix: 'default' });
  if (!loaded.ok) throw new Error(`the default controller configuration is invalid: ${loaded.errors.join('; ')}`);
  return Object.freeze({ ...loaded.value, ...overrides });
}
