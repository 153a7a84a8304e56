/**
 * `lattice controller`: the status controller in the parent cluster. Configuration comes from flags, then
 * `LATTICE_*` variables, then defaults (controller/config.ts), checked once and frozen; a bad setting exits
 * 2 before anything connects. JSON logs go to stderr (stdout stays empty, like every lattice command); the
 * health and metrics server listens on --host:--port until SIGINT or SIGTERM, then the controller stops
 * its work, releases its Lease and exits 0.
 */
import { untilSignal } from '../cli/process.js';
import { leaderCell, stateSecretTokenStore } from './agents.js';
import { startCell } from './cell/cell.js';
import { cellMetrics } from './cell/metrics.js';
import { createKube } from './kube.js';
import { leaderPodLabel, together } from './leader-label.js';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { pino } from 'pino';
import { specRenderer, specValidator } from '../cli/load.js';
import { ExitCode, type Streams } from '../cli/report.js';
import { createControllerApp } from './app.js';
import { loadControllerConfig, SETTINGS, type ControllerConfig } from './config.js';
import { Controller, FIELD_MANAGER } from './controller.js';

export interface ControllerCommandDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves when the controller should stop. @default the first SIGINT or SIGTERM */
  readonly waitForShutdown?: () => Promise<void>;
  /** The client configuration. @default --kubeconfig, else the in-cluster service account */
  readonly kubeConfig?: (config: ControllerConfig) => KubeConfig;
  /** Called once the HTTP server listens (tests learn the port). */
  readonly onListening?: (address: { port: number }) => void;
}

const defaultDeps = (): ControllerCommandDeps => ({ env: process.env });

function defaultKubeConfig(config: ControllerConfig): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

/** Adds `lattice controller` to the program. */
export function registerControllerCommands(program: Command, io: Streams, setExit: (code: number) => void, deps: () => ControllerCommandDeps = defaultDeps): void {
  const command = program
    .command('controller')
    .description('Run the status controller: watch LatticeClusters and what GitOps applied, write phase and conditions, register clusters.');
  for (const s of SETTINGS) command.option(`--${s.flag} <value>`, `${s.help} [env ${s.env}${s.default !== undefined ? `, default ${s.default}` : ''}]`);
  command.action(async (opts: Record<string, unknown>) => {
    const d = deps();
    const fail = (lines: readonly string[]) => {
      for (const line of lines) io.stderr.write(`lattice controller: ${line}\n`);
      setExit(ExitCode.USAGE);
    };
    const loaded = loadControllerConfig(opts, d.env, { identitySuffix: randomBytes(4).toString('hex') });
    if (!loaded.ok) return fail(loaded.errors);
    const config = loaded.value;
    if (!config.kubeconfig && !d.kubeConfig && !d.env.KUBERNETES_SERVICE_HOST) {
      return fail(['no cluster to talk to: pass --kubeconfig (or LATTICE_KUBECONFIG), or run in a pod with a service account']);
    }
    let kubeConfig: KubeConfig;
    try {
      kubeConfig = (d.kubeConfig ?? defaultKubeConfig)(config);
    } catch (e) {
      return fail([`cannot load the kubeconfig: ${(e as NodeJS.ErrnoException).code ?? 'unreadable or invalid'}`]);
    }
    const log = pino({ level: config.logLevel, base: { component: 'lattice-controller' } }, { write: (s: string) => io.stderr.write(s) });
    // The cell serves agents and bootstrap requests while this replica leads; its token store is the
    // clusters' state Secrets.
    const cellHost = config.cellHost;
    const tokens = stateSecretTokenStore({ kube: createKube(kubeConfig, { fieldManager: FIELD_MANAGER }) });
    // The proxy's answers are counted on the controller's registry, which exists once the controller does.
    const proxyCounter: { count?: (o: { code: number; verb: string; watch: boolean }) => void } = {};
    const heartbeats: { handled?: (seconds: number) => void } = {};
    const cell = cellHost ? leaderCell({
      host: cellHost,
      tokens,
      proxyHost: config.proxyHost,
      start: () => startCell({
        core: kubeConfig.makeApiClient(CoreV1Api), hosts: [...new Set([cellHost, config.proxyHost])], tokens,
        grpcPort: config.grpcPort, bootstrapPort: config.bootstrapPort, proxyPort: config.proxyPort,
        heartbeatIntervalMs: config.heartbeatIntervalMs, log: log.child({ component: 'cell' }),
        proxyObserver: { request: (o) => proxyCounter.count?.(o) },
        observer: { heartbeatHandled: (seconds) => heartbeats.handled?.(seconds) },
      }),
    }) : undefined;
    // In a Pod, the leader labels itself so that the cell's Services reach the replica that listens.
    const podName = d.env.POD_NAME;
    const podLabel = cell && podName ? leaderPodLabel({ core: kubeConfig.makeApiClient(CoreV1Api), fieldManager: FIELD_MANAGER, namespace: config.namespace, pod: podName, log }) : undefined;
    await podLabel?.stop();
    const whileLeading = cell ? (podLabel ? together(cell.service, podLabel) : cell.service) : undefined;
    const controller = new Controller({ kubeConfig, config, log, validator: specValidator(), renderer: specRenderer(), ...(cell && whileLeading ? { agents: cell.integration, whileLeading } : {}) });
    proxyCounter.count = (o) => controller.metrics.proxyRequests.inc({ code: String(o.code), verb: o.verb, watch: String(o.watch) });
    heartbeats.handled = cellMetrics(controller.metrics.registry).heartbeatHandled;
    const app = createControllerApp({ health: () => controller.health(), registry: controller.metrics.registry, beforeScrape: () => controller.refreshMetrics() });
    let server: Server;
    try {
      server = await new Promise<Server>((resolve, reject) => {
        const s = app.listen(config.port, config.host, (err?: Error) => (err ? reject(err) : resolve(s)));
        s.once('error', reject);
      });
    } catch (e) {
      return fail([`cannot listen on ${config.host}:${config.port}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`]);
    }
    const address = server.address();
    if (address && typeof address === 'object') d.onListening?.({ port: address.port });
    log.info({ host: config.host, port: typeof address === 'object' && address ? address.port : config.port, identity: config.identity, gitops: config.gitops }, 'controller serving');
    controller.start();
    await (d.waitForShutdown ?? untilSignal)();
    log.info({}, 'shutting down');
    await controller.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    log.info({}, 'stopped');
    setExit(ExitCode.OK);
  });
}
