/**
 * `lattice render --flavor flux`: what the sidecar would serve, without a server. A YAML stream on stdout
 * with a `# file: <artifact>/<path>` comment before every document, or with `--out-dir DIR` the artifacts'
 * trees as files (`DIR/<artifact>/<path>`, the same bytes that go into each tarball).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fluxArtifacts, fluxYamlStream, renderFluxArtifacts, type FluxOptions, type RenderedFluxArtifact } from '../core/flavor/flux.js';
import { checkOverrides } from '../core/plan/addons.js';
import type { Renderer } from '../core/render/render.js';
import type { SpecSet } from '../core/spec/validate.js';
import { renderDocuments, type RenderFormat } from '../cli/render.js';
import { ExitCode, type Streams } from '../cli/report.js';

export interface FluxRenderOptions {
  readonly format: RenderFormat;
  readonly verify: boolean;
  readonly outDir?: string;
  readonly flux: FluxOptions;
}

/** The artifacts of a validated spec set, the same way the sidecar builds them. */
export function fluxArtifactsOf(renderer: Renderer, specs: SpecSet, options: FluxOptions): RenderedFluxArtifact[] {
  const inputs = {
    clusters: specs.clusters.map((c) => c.object),
    infraProviders: specs.infraProviders.map((p) => p.object),
    others: specs.others.map((o) => o.object),
  };
  return renderFluxArtifacts(renderer, fluxArtifacts(renderer, inputs, options));
}

/** Renders and prints (or writes) the Flux flavor; returns the exit code. */
export function renderFlux(renderer: Renderer, specs: SpecSet, options: FluxRenderOptions, io: Streams): number {
  const problems = checkOverrides(renderer.versions.addons, options.flux.overrides ?? {});
  if (problems.length > 0) {
    for (const p of problems) io.stderr.write(`lattice render: ${p}\n`);
    return ExitCode.USAGE;
  }
  const artifacts = fluxArtifactsOf(renderer, specs, options.flux);
  const docs = artifacts.flatMap((a) => a.files.flatMap((f) => f.docs));
  if (options.verify || options.format === 'json') {
    // Verification and JSON parse every document; for YAML on stdout the stream below is what is printed.
    let json = '';
    const code = renderDocuments(docs, { format: options.format, verify: options.verify }, { stdout: { write: (s: string) => (json += s) }, stderr: io.stderr });
    if (code !== 0) return code;
    if (options.format === 'json' && !options.outDir) {
      io.stdout.write(json);
      return ExitCode.OK;
    }
  }
  if (!options.outDir) {
    io.stdout.write(fluxYamlStream(artifacts));
    return ExitCode.OK;
  }
  // Written after everything rendered; each file through a temporary name, so no reader sees half a file.
  for (const a of artifacts) {
    for (const f of a.files) {
      const target = join(options.outDir, a.name, ...f.path.split('/'));
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(`${target}.tmp`, f.text);
      renameSync(`${target}.tmp`, target);
    }
  }
  io.stderr.write(`rendered ${artifacts.length} Flux artifact${artifacts.length === 1 ? '' : 's'} (${docs.length} objects) into ${options.outDir}\n`);
  return ExitCode.OK;
}
