/**
 * `lattice`: one executable, one subcommand per job. stdout carries only the command's product
 * (manifests, JSON reports); everything else goes to stderr.
 */
import { Command, CommanderError, Option } from 'commander';
import { ExitCode, reportIssues, type OutputFormat, type Streams } from './report.js';
import { loadSpecs, specRenderer } from './load.js';
import { renderDocuments, writeClusterFiles, type RenderFormat } from './render.js';
import { formatPlans, planSummaries } from './plan.js';
import { registerCmpCommands } from '../plugin/commands.js';
import { registerSimCommands } from './sim.js';
import { registerAgentCommands } from '../agent/commands.js';
import { registerSidecarCommands } from '../sidecar/commands.js';
import { registerControllerCommands } from '../controller/commands.js';
import { registerDemoCommand } from './demo.js';
import { FLUX } from '../core/flavor/flux.js';
import { renderFlux } from '../sidecar/render-flux.js';

export function buildProgram(io: Streams, setExit: (code: number) => void): Command {
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
    .action((paths: string[], opts: { format: RenderFormat; verify: boolean; output: OutputFormat; outDir?: string; flavor: 'plain' | 'flux'; namespace: string }) => {
      const { result } = loadSpecs(paths);
      if (!result.ok) return setExit(reportIssues(result.issues, opts.output, io));
      const renderer = specRenderer();
      if (opts.flavor === 'flux') {
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

  registerCmpCommands(program, io, setExit);
  registerSimCommands(program, io, setExit);
  registerAgentCommands(program, io, setExit);
  registerSidecarCommands(program, io, setExit);
  registerControllerCommands(program, io, setExit);
  registerDemoCommand(program, io, setExit);
  return program;
}

/** Runs the CLI and resolves to the exit code. */
export async function run(argv: readonly string[], io: Streams): Promise<number> {
  let code: number = ExitCode.OK;
  const program = buildProgram(io, (c) => { code = c; });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    throw e;
  }
  return code;
}
