/**
 * Wires a checked configuration into a running sidecar: store, source, renderer, the ExternalArtifact
 * writer behind a Lease, the HTTP server. `stop()` is the graceful shutdown: the Lease is released so
 * another replica takes over at once, the loop ends, the server stops accepting and drains.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { specRenderer } from '../cli/load.js';
import { LeaderElector } from '../kube/leader.js';
import { createSidecarHandler } from './app.js';
import type { SidecarConfig } from './config.js';
import { createSidecarMetrics, type SidecarMetrics } from './metrics.js';
import { ExternalArtifactWriter } from './publisher.js';
import { Sidecar } from './sidecar.js';
import { GitSource } from './source-git.js';
import { GitRepositorySource } from './source-gitrepository.js';
import type { Source } from './source.js';
import { ArtifactStore } from './store.js';

export interface SidecarHandle {
  /** Where the HTTP server listens, e.g. http://127.0.0.1:9090. */
  readonly url: string;
  readonly sidecar: Sidecar;
  readonly metrics: SidecarMetrics;
  stop(): Promise<void>;
}

export interface RuntimeDeps {
  readonly log: Logger;
  readonly now?: () => Date;
  /** Collect Node process metrics too (off in tests that start several sidecars). @default true */
  readonly processMetrics?: boolean;
  /** Lease timing (kube/leader.ts defaults: 15 s lease, 10 s renew deadline, 2 s retry). */
  readonly lease?: { readonly leaseDurationSeconds?: number; readonly renewDeadlineMs?: number; readonly retryPeriodMs?: number };
}

function kubeConfigFor(config: SidecarConfig): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

export async function startSidecar(config: SidecarConfig, deps: RuntimeDeps): Promise<SidecarHandle> {
  const { log } = deps;
  const now = deps.now ?? (() => new Date());
  const metrics = createSidecarMetrics({ processMetrics: deps.processMetrics ?? true });
  const store = new ArtifactStore({ dir: config.storageDir, graceMs: config.gcGraceMs, now: () => now().getTime(), log });
  await store.init();
  const needsKube = config.publish || config.source.kind === 'gitrepository';
  const kc = needsKube ? kubeConfigFor(config) : undefined;

  let source: Source;
  if (config.source.kind === 'git') {
    source = new GitSource({ url: config.source.url, branch: config.source.branch, credentials: config.source.credentials, cacheDir: config.cacheDir, log });
  } else {
    if (!kc) throw new Error('a GitRepository source needs Kubernetes access');
    source = new GitRepositorySource({ namespace: config.source.namespace, name: config.source.name, kubeConfig: kc, cacheDir: config.cacheDir, maxBytes: config.source.maxBytes, log });
  }

  let elector: LeaderElector | undefined;
  const writer = config.publish && kc ? new ExternalArtifactWriter({ kubeConfig: kc, namespace: config.namespace, now, log, metrics }) : undefined;
  const sidecar = new Sidecar({
    source, store, renderer: specRenderer(), path: config.path,
    flux: { namespace: config.fluxNamespace, artifactNamespace: config.namespace, overrides: config.overrides },
    advertiseUrl: config.advertiseUrl, pollIntervalMs: config.pollIntervalMs, allowEmpty: config.allowEmpty,
    ...(writer ? { writer, isLeader: () => elector?.isLeader ?? false } : {}),
    ...(config.source.kind === 'gitrepository' ? { indexSource: { namespace: config.source.namespace, name: config.source.name } } : {}),
    metrics, log, now,
  });
  if (writer && kc) {
    elector = new LeaderElector({
      kubeConfig: kc, namespace: config.namespace, name: config.leaseName,
      // Unique across restarts of the same pod (kube/leader.ts).
      identity: `${config.identity}_${randomUUID().slice(0, 8)}`,
      log,
      ...deps.lease,
      // Sync before the first write: a new leader may be a poll behind the one that left.
      onStartedLeading: () => void sidecar.refresh(),
    });
  }

  const handler = createSidecarHandler({
    store, metrics, log, isReady: () => sidecar.isReady,
    ...(config.hookToken !== undefined ? { hookToken: config.hookToken } : {}),
    onHook: () => sidecar.trigger(),
    onMiss: () => sidecar.refreshForMiss(),
  });
  // Bounded headers and slow-client timeouts: oversized or dribbled requests never tie the server up.
  const server: Server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host || undefined, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host === '[::]' || host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`;
  log.info({ url, source: source.description, namespace: config.namespace, publish: config.publish }, 'sidecar listening');
  sidecar.start();
  elector?.start();

  return {
    url, sidecar, metrics,
    async stop() {
      await elector?.stop();
      await sidecar.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      log.info({}, 'sidecar stopped');
    },
  };
}
