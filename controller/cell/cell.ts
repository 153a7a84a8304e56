/**
 * The cell as the controller starts it: the CA from the parent, a serving certificate for the parent's
 * host names, the gRPC server on grpcPort, the bootstrap HTTPS endpoint on bootstrapPort and the Kubernetes
 * API proxy on proxyPort. Only the
 * leader replica runs a cell (the Services select the leader), but nothing here is a singleton: tests
 * start several cells in one process.
 */
import type { CoreV1Api } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { caCertificateSigner, ensureCellCa, type CellCa } from './ca.js';
import { createBootstrapApp, startBootstrapServer, type BootstrapLimits, type BootstrapServer, type TokenStore } from './bootstrap.js';
import { issueServingCertificate } from './pki.js';
import { createApiProxy, type ProxyObserver } from './proxy.js';
import { ensureProxyKey, proxyTokens, type ProxyTokens } from './proxy-token.js';
import { listenHttps } from './https.js';
import { createCellServer, type AgentIdentity, type CellObserver, type CellServer } from './server.js';
import type { Hello } from './protocol.js';

export interface CellOptions {
  /** A client of the parent cluster (the CA Secret lives there). */
  readonly core: CoreV1Api;
  /** Host names and IPs agents dial (spec.parentConfig.host, Service names, LB addresses): the serving certificate's SANs. */
  readonly hosts: readonly string[];
  /** Where bootstrap token hashes live (the controller's state-Secret store). */
  readonly tokens: TokenStore;
  /** @default 50051 */
  readonly grpcPort?: number;
  /** @default 8443 */
  readonly bootstrapPort?: number;
  /** The Kubernetes API proxy (M9), for the parent's GitOps engine only: expose it in-cluster. @default 8081 */
  readonly proxyPort?: number;
  /** Counts the proxy's answers (the controller's metrics). */
  readonly proxyObserver?: ProxyObserver;
  /** Times heartbeat handling (the controller's metrics: `cellMetrics(registry)`). */
  readonly observer?: CellObserver;
  /** Proxy key Secret location. @default lattice-system/lattice-proxy-key */
  readonly proxyKeySecret?: { readonly namespace: string; readonly name: string };
  /** Bind address of both servers. @default 0.0.0.0 */
  readonly bindHost?: string;
  /** @default 10000 */
  readonly heartbeatIntervalMs?: number;
  /** @default 3 */
  readonly missedHeartbeats?: number;
  /** @default 30000 */
  readonly commandTimeoutMs?: number;
  /** Agent certificate lifetime. @default 30 */
  readonly certificateValidityDays?: number;
  readonly bootstrapLimits?: BootstrapLimits;
  readonly authorize?: (identity: AgentIdentity, hello: Hello) => boolean | Promise<boolean>;
  /** @default silent */
  readonly log?: Logger;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** CA Secret location. @default lattice-system/lattice-cell-ca */
  readonly caSecret?: { readonly namespace: string; readonly name: string };
}

export interface Cell {
  /** Connected agents, their events, and `send` (see CellServer). */
  readonly agents: CellServer;
  /** The CA as loaded at start: `trustBundle` goes into each child's bootstrap Secret as ca.crt. */
  readonly ca: CellCa;
  readonly grpcPort: number;
  readonly bootstrapPort: number;
  readonly proxyPort: number;
  /** The proxy's per-cluster bearer tokens: what the registration of a pivoted cluster carries. */
  readonly proxyTokens: ProxyTokens;
  /** Stops the servers (streams end with UNAVAILABLE so agents reconnect). Idempotent. */
  close(): Promise<void>;
}

/** Loads (or creates) the CA, issues the serving certificate and starts both servers. */
export async function startCell(options: CellOptions): Promise<Cell> {
  const log = options.log ?? pino({ level: 'silent' });
  const now = options.now ?? (() => new Date());
  const ca = await ensureCellCa({ core: options.core, now, log, ...(options.caSecret ?? {}) });
  const tokens = proxyTokens(await ensureProxyKey({ core: options.core, log, ...(options.proxyKeySecret ?? {}) }));
  // A fresh serving key per start: nothing to store, and any replica can become the cell.
  const serving = await issueServingCertificate({ ca: ca.signer, hosts: options.hosts, now: now() });
  const agents = createCellServer({
    tls: { certificate: serving.certificate, privateKey: serving.privateKey, clientCaBundle: ca.clientCaBundle },
    now,
    log: log.child({ component: 'cell' }),
    ...(options.heartbeatIntervalMs !== undefined ? { heartbeatIntervalMs: options.heartbeatIntervalMs } : {}),
    ...(options.missedHeartbeats !== undefined ? { missedHeartbeats: options.missedHeartbeats } : {}),
    ...(options.commandTimeoutMs !== undefined ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
    ...(options.authorize ? { authorize: options.authorize } : {}),
    ...(options.observer ? { observer: options.observer } : {}),
  });
  const host = options.bindHost ?? '0.0.0.0';
  try {
    const grpcPort = await agents.listen(options.grpcPort ?? 50051, host);
    const app = createBootstrapApp({
      tokens: options.tokens,
      signer: caCertificateSigner(ca, options.certificateValidityDays !== undefined ? { validityDays: options.certificateValidityDays } : {}),
      log: log.child({ component: 'bootstrap' }),
      now,
      ...(options.bootstrapLimits ? { limits: options.bootstrapLimits } : {}),
    });
    const started: BootstrapServer = await startBootstrapServer({ app, tls: serving, port: options.bootstrapPort ?? 8443, host });
    let proxy;
    try {
      proxy = await listenHttps({
        // HTTP/2 as well: Argo CD and Flux keep a watch per resource type, multiplexed on one connection.
        h2Handler: createApiProxy({ agents, tokens, log: log.child({ component: 'proxy' }), ...(options.proxyObserver ? { observer: options.proxyObserver } : {}) }),
        tls: serving,
        port: options.proxyPort ?? 8081,
        host,
        // A caller sends small requests; a watch's response may run for an hour, which these do not limit.
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 60_000,
      });
    } catch (e) {
      await started.close({ graceMs: 0 });
      throw e;
    }
    const proxyServer = proxy;
    let closing: Promise<void> | undefined;
    return {
      agents,
      ca,
      grpcPort,
      bootstrapPort: started.port,
      proxyPort: proxyServer.port,
      proxyTokens: tokens,
      close() {
        // The gRPC streams end first, which ends every proxied request with them.
        closing ??= Promise.all([agents.close(), started.close(), proxyServer.close({ graceMs: 1000 })]).then(() => undefined);
        return closing;
      },
    };
  } catch (e) {
    await agents.close({ graceMs: 0 });
    throw e;
  }
}
