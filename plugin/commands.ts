/** `lattice cmp ...`: the commands plugin.yaml names. They read the app directory they are started in. */
import type { Command } from 'commander';
import { loadSpecs, specRenderer, specValidator } from '../cli/load.js';
import { readInputs } from '../cli/inputs.js';
import { DEFAULT_SOURCE_LIMITS } from '../core/spec/source.js';
import { ok } from '../core/spec/issues.js';
import type { SpecSet } from '../core/spec/validate.js';
import { Component } from '../core/flavor/argocd.js';
import { generateInParallel, parallelSettings } from './parallel.js';
import { ExitCode, reportIssues, type Streams } from '../cli/report.js';
import { generateChunks, generateText, selectArgoCdObjects, selectClusters } from './generate.js';
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
    .action(async () => {
      const { env, cwd } = deps();
      const renderer = specRenderer();
      const options = readCmpOptions(env, renderer.versions.addons.map((a) => a.id));
      if (!options.ok) {
        for (const e of options.errors) io.stderr.write(`lattice cmp generate: ${e}\n`);
        return setExit(ExitCode.USAGE);
      }
      const inputs = readInputs(['.'], { maxFileBytes: DEFAULT_SOURCE_LIMITS.maxFileBytes, cwd });
      const parallel = parallelSettings(env);
      let validated: SpecSet | undefined;
      if (inputs.issues.length === 0 && options.value.component === Component.clusters && parallel.threads > 1 && inputs.files.length >= parallel.minFiles) {
        const outcome = await generateInParallel(inputs.files, options.value, parallel, {
          validator: specValidator(), renderer,
          select: (specs) => {
            const selection = selectClusters(renderer, specs, options.value);
            if (!selection.ok) return undefined;
            const { head, clusters, tail } = selection.value;
            return { head: generateText(renderer, head), names: clusters, tail: generateText(renderer, tail), objects: head.length + tail.length };
          },
        });
        if (outcome.kind === 'rendered') {
          for (const chunk of outcome.chunks) io.stdout.write(chunk);
          io.stderr.write(`lattice cmp generate: ${outcome.clusters} cluster(s), ${outcome.objects} objects (component ${options.value.component}, ${outcome.threads} threads)\n`);
          return setExit(ExitCode.OK);
        }
        // Anything to report (or a worker that failed): the one-thread path says it exactly.
        validated = outcome.specs;
        if (outcome.failure) io.stderr.write(`lattice cmp generate: worker threads failed (${outcome.failure}); continuing on one thread\n`);
      }
      // Specs the parallel run already validated are not read again.
      const result = validated ? ok(validated) : loadSpecs(['.'], cwd, inputs).result;
      if (!result.ok) return setExit(reportIssues(result.issues, 'human', io));
      const selection = selectArgoCdObjects(renderer, result.value, options.value);
      if (!selection.ok) {
        for (const e of selection.errors) io.stderr.write(`lattice cmp generate: ${e}\n`);
        return setExit(ExitCode.INVALID);
      }
      for (const chunk of generateChunks(renderer, selection.objects)) io.stdout.write(chunk);
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
