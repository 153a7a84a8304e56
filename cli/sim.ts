/**
 * `lattice sim ...`: simulators for tests and the demo. `lattice sim apiserver` serves the in-memory
 * Kubernetes API server (sim/apiserver) over plain HTTP on 127.0.0.1 until SIGINT or SIGTERM, for any
 * Kubernetes client, kubectl included. The URL and a usage hint go to stderr; stdout stays empty.
 */
import { untilSignal, parsePort, LOG_LEVELS } from './process.js';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { pino } from 'pino';
import { createApiServer, type ApiServer } from '../sim/apiserver/server.js';
import { ExitCode, type Streams } from './report.js';

export interface SimCommandDeps {
  /** Resolves when the server should stop. @default the first SIGINT or SIGTERM */
  readonly waitForShutdown?: () => Promise<void>;
}

interface ApiserverOptions {
  port: number;
  crds?: string[];
  validation: boolean;
  tokenFile?: string;
  kubeconfig?: string;
  logLevel: string;
}

/** Adds `lattice sim apiserver` to the program. */
export function registerSimCommands(program: Command, io: Streams, setExit: (code: number) => void, deps: SimCommandDeps = {}): void {
  const sim = program.command('sim').description('Simulators for tests and demos (never used by production code paths).');
  sim
    .command('apiserver')
    .description('Serve an in-memory Kubernetes API server over plain HTTP on 127.0.0.1 until SIGINT/SIGTERM.')
    .option('--port <n>', 'TCP port on 127.0.0.1 (0 picks a free one)', parsePort, 0)
    .option('--crds <paths...>', 'CustomResourceDefinition files or directories to install (repeatable)')
    .option('--no-validation', 'store custom resources without pruning, defaulting or validating them')
    .option('--token-file <file>', 'require the bearer token in this file (surrounding whitespace ignored)')
    .option('--kubeconfig <file>', 'write a kubeconfig for the server to this file')
    .option('--log-level <level>', `log level for the JSON logs on stderr (${LOG_LEVELS.join(', ')})`, 'info')
    .action(async (opts: ApiserverOptions) => {
      if (!LOG_LEVELS.includes(opts.logLevel)) {
        io.stderr.write(`lattice sim apiserver: unknown log level ${JSON.stringify(opts.logLevel)}\n`);
        return setExit(ExitCode.USAGE);
      }
      let token: string | undefined;
      if (opts.tokenFile) {
        try {
          token = readFileSync(opts.tokenFile, 'utf8').trim();
        } catch (e) {
          io.stderr.write(`lattice sim apiserver: cannot read --token-file: ${(e as NodeJS.ErrnoException).code ?? 'error'}\n`);
          return setExit(ExitCode.USAGE);
        }
        if (token === '') {
          io.stderr.write('lattice sim apiserver: --token-file is empty\n');
          return setExit(ExitCode.USAGE);
        }
      }
      const logger = pino({ level: opts.logLevel, base: { component: 'sim-apiserver' } }, { write: (s: string) => io.stderr.write(s) });
      let server: ApiServer;
      try {
        server = createApiServer({ crds: opts.crds ?? [], validation: opts.validation, logger, ...(token !== undefined ? { token } : {}) });
      } catch (e) {
        io.stderr.write(`lattice sim apiserver: cannot install the CRDs: ${(e as Error).message}\n`);
        return setExit(ExitCode.INVALID);
      }
      let url: string;
      try {
        url = await server.listen(opts.port, '127.0.0.1');
      } catch (e) {
        io.stderr.write(`lattice sim apiserver: cannot listen on 127.0.0.1:${opts.port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
        return setExit(ExitCode.USAGE);
      }
      io.stderr.write(`lattice sim apiserver: serving ${url}\n`);
      if (opts.kubeconfig) {
        writeFileSync(opts.kubeconfig, server.kubeconfigYaml(), { mode: 0o600 });
        io.stderr.write(`lattice sim apiserver: kubeconfig written; try: KUBECONFIG=${opts.kubeconfig} kubectl get namespaces\n`);
      } else {
        io.stderr.write(`lattice sim apiserver: try: kubectl --server ${url}${token ? ' --token <token>' : ''} get namespaces\n`);
      }
      await (deps.waitForShutdown ?? untilSignal)();
      await server.close();
      io.stderr.write('lattice sim apiserver: stopped\n');
      setExit(ExitCode.OK);
    });
}
