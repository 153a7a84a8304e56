/**
 * `lattice demo`: the whole lifecycle on embedded defaults (sim/demo/lifecycle.ts), with a live progress
 * view. Progress and the summary go to stderr (stdout stays for manifests, of which the demo prints none);
 * the rendered manifests of the last commit are written to `--out-dir`. Exit 0 only when every cluster
 * reached its expected end state.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { pino } from 'pino';
import { ExitCode, type Streams } from './report.js';
import { runDemo, type DemoResult, type DemoSnapshot } from '../sim/demo/lifecycle.js';
import { progressLines, progressTable, summary } from '../sim/demo/progress.js';

export interface DemoCommandDeps {
  /** Whether stderr is a terminal (the live table) or not (plain lines). @default process.stderr.isTTY */
  readonly tty?: boolean;
  /** @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

interface DemoCliOptions {
  flavor: string;
  progress: boolean;
  outDir: string;
  timeout: string;
  upstreamCrds?: string;
}

/** The package root (crds/, examples/), from source or dist/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'examples', 'clusters')) && existsSync(join(dir, 'crds'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lattice demo: cannot find the package\'s examples/clusters');
    dir = parent;
  }
}

/** Adds `lattice demo` to the program. */
export function registerDemoCommand(program: Command, io: Streams, setExit: (code: number) => void, deps: DemoCommandDeps = {}): void {
  program
    .command('demo')
    .description('Run the whole lifecycle on simulators: the example clusters from a git repository to Ready through the pivot, a committed change, a removal.')
    .option('--flavor <flavor>', 'GitOps path to simulate: argocd (the config-management plugin) or flux (the sidecar\'s ExternalArtifacts)', 'argocd')
    .option('--no-progress', 'plain lines instead of the live table')
    .option('--out-dir <dir>', 'where the rendered manifests of the last commit go', 'rendered')
    .option('--timeout <seconds>', 'give up after this long', '300')
    .option('--upstream-crds <dir>', 'the upstream Cluster API CRDs for the simulated API servers (default: $LATTICE_UPSTREAM_CRDS, else ../shared/upstream-crds beside the package)')
    .action(async (opts: DemoCliOptions) => {
      if (opts.flavor !== 'argocd' && opts.flavor !== 'flux') {
        io.stderr.write(`lattice demo: --flavor: expected argocd or flux, found ${JSON.stringify(opts.flavor)}\n`);
        return setExit(ExitCode.USAGE);
      }
      const timeoutSeconds = Number(opts.timeout);
      if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 10) {
        io.stderr.write(`lattice demo: --timeout: expected whole seconds >= 10, found ${JSON.stringify(opts.timeout)}\n`);
        return setExit(ExitCode.USAGE);
      }
      const root = packageRoot();
      const env = deps.env ?? process.env;
      const upstream = resolve(opts.upstreamCrds ?? env.LATTICE_UPSTREAM_CRDS ?? join(root, '..', 'shared', 'upstream-crds'));
      if (!existsSync(upstream)) {
        io.stderr.write(`lattice demo: the upstream Cluster API CRDs are not at ${upstream}; pass --upstream-crds or set LATTICE_UPSTREAM_CRDS\n`);
        return setExit(ExitCode.USAGE);
      }
      const tty = (deps.tty ?? process.stderr.isTTY === true) && opts.progress;
      const width = process.stderr.columns ?? 120;
      let previous: DemoSnapshot | undefined;
      let drawn = 0;
      const onProgress = (s: DemoSnapshot) => {
        if (tty) {
          // Redraw in place: up over the previous table, clear to the end of the screen.
          const table = progressTable(s, width);
          io.stderr.write(`${drawn > 0 ? `\x1b[${drawn}F\x1b[J` : ''}${table}\n`);
          drawn = table.split('\n').length;
        } else {
          for (const line of progressLines(previous, s)) io.stderr.write(`${line}\n`);
        }
        previous = s;
      };
      const result: DemoResult = await runDemo({
        repo: root, upstreamCrds: upstream, outDir: resolve(opts.outDir), flavor: opts.flavor, timeoutMs: timeoutSeconds * 1000,
        log: pino({ level: 'silent' }), onProgress,
      });
      io.stderr.write(`\n${summary(result)}\n`);
      setExit(result.ok ? ExitCode.OK : ExitCode.INVALID);
    });
}
