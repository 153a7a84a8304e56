/**
 * One snapshot in, the artifacts out: specs validated (all or nothing, as everywhere), the Flux flavor
 * rendered, each artifact packed deterministically. No I/O beyond reading the snapshot's spec files.
 * The running sidecar builds with IncrementalBuilder (incremental.ts), which gives exactly this result
 * doing only what changed since the last good commit; this is the reference it is tested against.
 */
import { loadSpecs } from '../cli/load.js';
import type { FluxOptions } from '../core/flavor/flux.js';
import type { Renderer } from '../core/render/render.js';
import type { Issue } from '../core/spec/issues.js';
import { packArtifact, sha256Hex } from './archive.js';
import { fluxArtifactsOf } from './render-flux.js';

export interface BuiltArtifact {
  readonly name: string;
  readonly cluster?: string;
  readonly bytes: Buffer;
  /** sha256 of `bytes`, hex. */
  readonly hex: string;
}

export type BuildResult =
  | { readonly ok: true; readonly artifacts: readonly BuiltArtifact[]; readonly clusters: number }
  | { readonly ok: false; readonly issues: readonly Issue[] };

/** Renders the specs under `path` of a snapshot directory (paths in issues are relative to the repository). */
export function buildArtifacts(renderer: Renderer, dir: string, path: string, options: FluxOptions): BuildResult {
  const { result } = loadSpecs([path], dir);
  if (!result.ok) return { ok: false, issues: result.issues };
  const rendered = fluxArtifactsOf(renderer, result.value, options);
  const artifacts = rendered.map((a) => {
    const bytes = packArtifact(a.files.map((f) => ({ path: f.path, content: f.text })));
    return { name: a.name, ...(a.cluster !== undefined ? { cluster: a.cluster } : {}), bytes, hex: sha256Hex(bytes) };
  });
  return { ok: true, artifacts, clusters: result.value.clusters.length };
}
