/** `lattice cmp ...`: the commands plugin.yaml names. They read the app directory they are started in. */
import type { Command } from 'commander';
import { loadSpecs, specRenderer } from '../cli/load.js';
import { ExitCode, reportIssues, type Streams } from '../cli/report.js';
import { generateText, selectArgoCdObjects } from './generate.js';
import { announcements, readCmpOptions, type Env } from './options.js';

export interface CmpDeps {
  readonly env: Env;
  readonly cwd: string;
}

const defaultDeps = (): CmpDeps => ({ env: process.env, cwd: process.cwd() });

export function registerCmpCommands(program: Command, io: Streams, setExit: (code: number) => void, deps: () => CmpDeps = defaultDeps): void {
  const cmp = program.command('cmp').description('Argo CD config-management plugin commands (run by argocd-cmp-server in the app source path).');

  cmp
    .command('generate')
    .description('Print the Argo CD manifests of the LatticeClusters in the current directory.')
    .action(() => {
      const { env, cwd } = deps();
      const renderer = specRenderer();
      const options = readCmpOptions(env, renderer.versions.addons.map((a) => a.id));
      if (!options.ok) {
        for (const e of options.errors) io.stderr.write(`lattice cmp generate: ${e}\n`);
        return setExit(ExitCode.USAGE);
      }
      const { result } = loadSpecs(['.'], cwd);
      if (!result.ok) return setExit(reportIssues(result.issues, 'human', io));
      const selection = selectArgoCdObjects(renderer, result.value, options.value);
      if (!selection.ok) {
        for (const e of selection.errors) io.stderr.write(`lattice cmp generate: ${e}\n`);
        return setExit(ExitCode.INVALID);
      }
      io.stdout.write(generateText(renderer, selection.objects));
      io.stderr.write(`lattice cmp generate: ${selection.clusters.length} cluster(s), ${selection.objects.length} objects (component ${options.value.component})\n`);
      setExit(ExitCode.OK);
    });

  cmp
    .command('parameters')
    .description('Print the parameter announcements (a JSON array) for the Argo CD UI.')
    .action(() => {
      const { cwd } = deps();
      const renderer = specRenderer();
      // Announcements must print even for a broken directory: the UI is where users go to fix it.
      const { result } = loadSpecs(['.'], cwd);
      const clusters = result.ok ? result.value.clusters.map((c) => c.object.metadata.name) : [];
      const addons = renderer.versions.addons;
      io.stdout.write(`${JSON.stringify(announcements(clusters, {
        repositories: Object.fromEntries(addons.map((a) => [a.id, a.repository])),
        versions: Object.fromEntries(addons.map((a) => [a.id, a.version])),
      }))}\n`);
      setExit(ExitCode.OK);
    });
}
