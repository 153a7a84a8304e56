/**
 * `lattice agent --config <file>`: the child-side agent (templates/agent/deployment.yaml.njk runs it).
 * Reads config.json, talks to its own cluster through the in-cluster service account (or
 * `--kubeconfig`), serves /healthz and /readyz, and runs until SIGTERM/SIGINT, when it closes its stream
 * to the cell cleanly. JSON logs go to stderr; stdout stays empty.
 */
import { untilSignal, parsePort, LOG_LEVELS } from '../cli/process.js';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { ExitCode, type Streams } from '../cli/report.js';
import { createAgent, type AgentOptions } from './agent.js';
import { parseAgentConfig } from './config.js';
import { createProbeApp, startProbeServer } from './probes.js';

export interface AgentCommandDeps {
  /** Resolves when the agent should stop. @default the first SIGINT or SIGTERM */
  readonly waitForShutdown?: () => Promise<void>;
  /** @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Extra agent options (tests: backoff, health source). */
  readonly agent?: Partial<Pick<AgentOptions, 'backoff' | 'health' | 'random' | 'now'>>;
  /** Called once the agent runs, with the probe port (tests). */
  readonly onStarted?: (info: { probePort: number }) => void;
}

interface AgentCliOptions {
  config: string;
  kubeconfig?: string;
  probePort: number;
  logLevel: string;
}

/** Adds `lattice agent` to the program. */
export function registerAgentCommands(program: Command, io: Streams, setExit: (code: number) => void, deps: AgentCommandDeps = {}): void {
  program
    .command('agent')
    .description('Run the Lattice agent in a child cluster: bootstrap its identity, then keep one mTLS stream to the parent\'s cell.')
    .requiredOption('--config <file>', 'the agent config.json (cluster, heartbeatSeconds, bootstrapSecret, identitySecret)')
    .option('--kubeconfig <file>', 'talk to the cluster through this kubeconfig instead of the in-cluster service account')
    .option('--probe-port <n>', 'port of /healthz and /readyz', parsePort, 8080)
    .option('--log-level <level>', `log level for the JSON logs on stderr (${LOG_LEVELS.join(', ')})`, 'info')
    .action(async (opts: AgentCliOptions) => {
      if (!LOG_LEVELS.includes(opts.logLevel)) {
        io.stderr.write(`lattice agent: unknown log level ${JSON.stringify(opts.logLevel)}\n`);
        return setExit(ExitCode.USAGE);
      }
      let text: string;
      try {
        text = readFileSync(opts.config, 'utf8');
      } catch (e) {
        io.stderr.write(`lattice agent: cannot read --config: ${(e as NodeJS.ErrnoException).code ?? 'error'}\n`);
        return setExit(ExitCode.USAGE);
      }
      const parsed = parseAgentConfig(text);
      if (!parsed.ok) {
        for (const e of parsed.errors) io.stderr.write(`lattice agent: ${opts.config}: ${e}\n`);
        return setExit(ExitCode.INVALID);
      }
      const kubeConfig = new KubeConfig();
      try {
        if (opts.kubeconfig) kubeConfig.loadFromFile(opts.kubeconfig);
        else kubeConfig.loadFromCluster();
      } catch (e) {
        io.stderr.write(`lattice agent: cannot load the cluster credentials: ${(e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.name : 'error')}\n`);
        return setExit(ExitCode.USAGE);
      }
      const env = deps.env ?? process.env;
      const log = pino({ level: opts.logLevel, base: { component: 'agent', cluster: parsed.config.cluster } }, { write: (s: string) => io.stderr.write(s) });
      const agent = createAgent({ config: parsed.config, kubeConfig, namespace: env.POD_NAMESPACE || 'lattice-system', log, ...deps.agent });
      let probes;
      try {
        probes = await startProbeServer(createProbeApp(() => agent.status()), opts.probePort);
      } catch (e) {
        io.stderr.write(`lattice agent: cannot listen on port ${opts.probePort}: ${(e as NodeJS.ErrnoException).code ?? 'error'}\n`);
        return setExit(ExitCode.USAGE);
      }
      agent.start();
      log.info({ probePort: probes.port }, 'agent started');
      deps.onStarted?.({ probePort: probes.port });
      await (deps.waitForShutdown ?? untilSignal)();
      log.info('agent stopping');
      await agent.stop();
      await probes.close();
      log.info('agent stopped');
      setExit(ExitCode.OK);
    });
}
