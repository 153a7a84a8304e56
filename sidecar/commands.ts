/**
 * `lattice sidecar`: the Flux-compatible HTTP sidecar (DESIGN §4.2, docs/flux.md). Runs until SIGINT or
 * SIGTERM. Configuration errors are printed, all at once, before anything starts (exit 2); logs are pino
 * JSON on stderr, like every other command keeps stdout for its product.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Option, type Command } from 'commander';
import { specRenderer } from '../cli/load.js';
import { ExitCode, type Streams } from '../cli/report.js';
import { SIDECAR_OPTIONS, parseSidecarConfig, type RawSidecarOptions } from './config.js';
import { redact } from './source.js';

export interface SidecarCommandDeps {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves when the process should stop. @default SIGINT or SIGTERM */
  readonly stopSignal: () => Promise<string>;
}

const defaultDeps = (): SidecarCommandDeps => ({
  env: process.env,
  stopSignal: () => new Promise((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  }),
});

const readable = (path: string): boolean => {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

export function registerSidecarCommands(program: Command, io: Streams, setExit: (code: number) => void, deps: () => SidecarCommandDeps = defaultDeps): void {
  const command = program
    .command('sidecar')
    .description('Serve every LatticeCluster of a git repository to Flux as ExternalArtifacts (flags or LATTICE_SIDECAR_* variables; see docs/flux.md).');
  for (const o of SIDECAR_OPTIONS) command.addOption(new Option(o.flag, o.help).env(o.env));
  command.action(async (opts: RawSidecarOptions) => {
    const { env, stopSignal } = deps();
    const renderer = specRenderer();
    const config = parseSidecarConfig(opts, renderer.versions.addons, {
      env, readable, hostname: hostname(),
      readFile: (path) => readFileSync(path, 'utf8'),
    });
    if (!config.ok) {
      for (const e of config.errors) io.stderr.write(`lattice sidecar: ${e}\n`);
      return setExit(ExitCode.USAGE);
    }
    // Loaded here, not at the top: every other `lattice` command (cmp generate has a deadline) would
    // otherwise pay for the Kubernetes client, express and git at start.
    const [{ pino }, { startSidecar }] = await Promise.all([import('pino'), import('./runtime.js')]);
    const log = pino({ level: config.value.logLevel, base: { component: 'sidecar' } }, pino.destination({ dest: 2, sync: true }));
    let handle: Awaited<ReturnType<typeof startSidecar>>;
    try {
      handle = await startSidecar(config.value, { log });
    } catch (e) {
      // Environment problems (port in use, no Kubernetes credentials, unwritable storage): say which, exit 1.
      const message = redact((e as Error).message);
      log.fatal({ err: message }, 'sidecar failed to start');
      io.stderr.write(`lattice sidecar: cannot start: ${message}\n`);
      return setExit(ExitCode.INVALID);
    }
    const signal = await stopSignal();
    log.info({ signal }, 'shutting down');
    await handle.stop();
    setExit(ExitCode.OK);
  });
}
