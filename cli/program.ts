/**
 * `lattice`: one executable, one subcommand per job. stdout carries only the command's product
 * (manifests, JSON reports); everything else goes to stderr.
 */
import { Command, CommanderError, Option } from 'commander';
import { ExitCode, reportIssues, type OutputFormat, type Streams } from './report.js';
import { loadSpecs, specRenderer } from './load.js';
import { renderDocuments, writeClusterFiles, type RenderFormat } from './render.js';
import { formatPlans, planSummaries } from './plan.js';
import { FLUX } from '../core/flavor/flux.js';

type Registrar = (program: Command, io: Streams, setExit: (code: number) => void) => void;

/**
 * The subcommands that live in their own modules, imported only when they run: `cmp generate` is started
 * by Argo CD for every uncached revision, and must not pay for loading the controller's Kubernetes
 * client, gRPC and the simulators (DESIGN §2: built so cold start is fast).
 */
const REGISTRARS: Readonly<Record<string, () => Promise<Registrar>>> = {
  cmp: async () => (await import('../plugin/commands.js')).registerCmpCommands,
  sim: async () => (await import('./sim.js')).registerSimCommands,
  agent: async () => (await import('../agent/commands.js')).registerAgentCommands,
  sidecar: async () => (await import('../sidecar/commands.js')).registerSidecarCommands,
  controller: async () => (await import('../controller/commands.js')).registerControllerCommands,
  demo: async () => (await import('./demo.js')).registerDemoCommand,
};

/** The registrars `argv` needs: the named subcommand's, or all of them (help, or no or an unknown command). */
async function registrarsFor(argv: readonly string[]): Promise<Registrar[]> {
  const name = argv[0];
  const names = name !== undefined && name in REGISTRARS ? [name] : Object.keys(REGISTRARS);
  return Promise.all(names.map((n) => REGISTRARS[n]?.() ?? Promise.reject(new Error(`no registrar ${n}`))));
}

/** The program with the built-in commands and the given registrars (see `registrarsFor`). */
export function buildProgram(io: Streams, setExit: (code: number) => void, registrars: readonly Registrar[] = []): Command {
  const program = new Command('lattice')
    .description('Expand LatticeCluster specs into Cluster API manifests and addons for Argo CD and Flux.')
    .configureOutput({ writeOut: (s) => io.stderr.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .showHelpAfterError();

  program
    .command('validate')
    .description('Validate LatticeCluster and InfraProvider specs; report every error with file:line:col.')
    .argument('<paths...>', 'spec files or directories (walked recursively for *.yaml, *.yml)')
    .addOption(new Option('-o, --output <format>', 'report format').choices(['human', 'json']).default('human'))
    .action((paths: string[], opts: { output: OutputFormat }) => {
      const { result, fileCount } = loadSpecs(paths);
      if (!result.ok) return setExit(reportIssues(result.issues, opts.output, io));
      const { clusters, infraProviders, others } = result.value;
      if (opts.output === 'json') {
        io.stdout.write(`${JSON.stringify({ valid: true, files: fileCount, clusters: clusters.map((c) => c.object.metadata.name), infraProviders: infraProviders.map((p) => p.object.metadata.name), otherObjects: others.length }, null, 2)}\n`);
      } else {
        io.stderr.write(`${fileCount} file${fileCount === 1 ? '' : 's'} valid: ${clusters.length} LatticeCluster, ${infraProviders.length} InfraProvider, ${others.length} other object${others.length === 1 ? '' : 's'}\n`);
      }
      setExit(ExitCode.OK);
    });

  program
    .command('render')
    .description('Render the Cluster API objects of every LatticeCluster found; invalid input renders nothing.')
    .argument('<paths...>', 'spec files or directories (walked recursively for *.yaml, *.yml)')
    .addOption(new Option('--format <format>', 'output format: a YAML stream, or a JSON v1 List (parses the output: slower)').choices(['yaml', 'json']).default('yaml'))
    .option('--verify', 'parse every rendered document and check it against the plan', false)
    .option('--out-dir <dir>', 'write one <cluster>.yaml per cluster into this directory instead of stdout (flux: the artifacts\' trees, <dir>/<artifact>/<path>)')
    .addOption(new Option('--flavor <flavor>', 'plain: the Cluster API objects; flux: the Flux sidecar\'s artifacts, each document after a "# file: <artifact>/<path>" comment').choices(['plain', 'flux']).default('plain'))
    .option('--namespace <namespace>', 'flux: namespace of the Kustomizations, chart sources and HelmReleases', FLUX.namespace)
    .addOption(new Option('-o, --output <format>', 'error report format').choices(['human', 'json']).default('human'))
    .action(async (paths: string[], opts: { format: RenderFormat; verify: boolean; output: OutputFormat; outDir?: string; flavor: 'plain' | 'flux'; namespace: string }) => {
      const { result } = loadSpecs(paths);
      if (!result.ok) return setExit(reportIssues(result.issues, opts.output, io));
      const renderer = specRenderer();
      if (opts.flavor === 'flux') {
        const { renderFlux } = await import('../sidecar/render-flux.js');
        return setExit(renderFlux(renderer, result.value, { format: opts.format, verify: opts.verify, flux: { namespace: opts.namespace }, ...(opts.outDir ? { outDir: opts.outDir } : {}) }, io));
      }
      const rendered = result.value.clusters.map((c) => ({ cluster: c.object.metadata.name, docs: renderer.renderCluster(c.object) }));
      const options = { format: opts.format, verify: opts.verify };
      setExit(opts.outDir ? writeClusterFiles(rendered, opts.outDir, options, io) : renderDocuments(rendered.flatMap((r) => r.docs), options, io));
    });

  program
    .command('plan')
    .description('Show each cluster\'s bootstrap order: stages, sync waves, objects, and what each stage waits for.')
    .argument('<paths...>', 'spec files or directories (walked recursively for *.yaml, *.yml)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['human', 'json']).default('human'))
    .action((paths: string[], opts: { output: OutputFormat }) => {
      const { result } = loadSpecs(paths);
      if (!result.ok) return setExit(reportIssues(result.issues, opts.output, io));
      const plans = planSummaries(specRenderer(), result.value.clusters.map((c) => c.object));
      io.stdout.write(opts.output === 'json' ? `${JSON.stringify({ clusters: plans }, null, 2)}\n` : formatPlans(plans));
      setExit(ExitCode.OK);
    });

  for (const register of registrars) register(program, io, setExit);
  return program;
}

/** Runs the CLI and resolves to the exit code. */
export async function run(argv: readonly string[], io: Streams): Promise<number> {
  let code: number = ExitCode.OK;
  const program = buildProgram(io, (c) => { code = c; }, await registrarsFor(argv));
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    throw e;
  }
  return code;
}
