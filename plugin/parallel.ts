/**
 * `cmp generate` over a large directory on every core. Argo CD runs the plugin once per uncached revision
 * and gives it 60 s (research/argocd-cmp.md §2.6); on a repo-server with a few cores, one thread leaves
 * most of the machine idle. Each file is parsed and checked on its own, and each cluster rendered on its
 * own, so both halves split into blocks that worker threads and the main thread take in turn from a
 * shared counter (whoever is free takes the next block, so a worker still starting costs nothing).
 *
 * Output does not depend on the split: the cross-document checks run once over all blocks in file
 * order, any issue at all sends the whole input through the one-thread `validate` for the same located
 * report, and each cluster's text is placed by its position in the sorted selection. A worker that
 * fails or cannot start makes the run fall back to one thread; nothing is printed until all is done.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Renderer } from '../core/render/render.js';
import type { PlannedObject } from '../core/render/plan.js';
import type { LatticeCluster } from '../core/spec/model.js';
import type { SourceFile } from '../core/spec/source.js';
import type { FileChecks, SpecSet, SpecValidator } from '../core/spec/validate.js';
import type { CmpOptions } from './options.js';
import { clusterObjects } from './generate.js';
import { toYamlStream } from '../core/render/render.js';

/** How many threads, and from how many files on; from the plugin's environment. */
export interface ParallelSettings {
  /** Threads in all, the main one included; 1 means no workers. */
  readonly threads: number;
  /** Fewer files than this are done on one thread: starting a worker costs more than it saves. */
  readonly minFiles: number;
}

/** Worker threads at most, whatever the machine: beyond that the output's one write dominates. */
const MAX_THREADS = 4;

/**
 * `LATTICE_CMP_THREADS` (default: the cores available, at most 4) and `LATTICE_CMP_PARALLEL_MIN_FILES`
 * (default 1000). Read from the plugin's own environment (plugin.yaml or the sidecar's env), never from
 * Application parameters: the output never depends on them.
 */
export function parallelSettings(env: Readonly<Record<string, string | undefined>>): ParallelSettings {
  const int = (value: string | undefined, fallback: number): number => {
    const n = Number(value);
    return value !== undefined && Number.isInteger(n) && n >= 0 ? n : fallback;
  };
  return {
    threads: Math.max(1, Math.min(MAX_THREADS, int(env.LATTICE_CMP_THREADS, availableParallelism()))),
    // Measured on 2 cores (BENCHMARKS.md): a worker costs 11-15 % at 100-300 clusters, breaks even near 1,000
    // and saves 35 % at 10,000, because V8's own background threads already use much of the second core.
    minFiles: int(env.LATTICE_CMP_PARALLEL_MIN_FILES, 1000),
  };
}

/** What the main thread sends a worker at start. */
export interface WorkerStart {
  readonly files: readonly SourceFile[];
  readonly blockSize: number;
  /** Int32 counters shared by all threads: [next file block, next cluster block]. */
  readonly counters: SharedArrayBuffer;
  readonly options: CmpOptions;
}

/** The main thread's render request: every selected name, and the clusters this worker did not check. */
export interface RenderRequest {
  readonly type: 'render';
  readonly names: readonly string[];
  readonly clusters: readonly (readonly [string, LatticeCluster])[];
  readonly blockSize: number;
}

export type WorkerReply =
  | { readonly type: 'checked'; readonly blocks: readonly (readonly [number, FileChecks])[] }
  /** Each block's text as UTF-8, its buffer transferred rather than copied. */
  | { readonly type: 'rendered'; readonly blocks: readonly (readonly [number, Uint8Array, number])[] }
  | { readonly type: 'failed'; readonly message: string };

/** The outcome of a parallel run, for the command to print: text, or the spec set to report on. */
export type ParallelOutcome =
  /**
   * The output as UTF-8 chunks to write in order: each thread encodes what it rendered while the others
   * still render, so the one write at the end copies bytes instead of encoding a single large string.
   */
  | { readonly kind: 'rendered'; readonly chunks: readonly Uint8Array[]; readonly clusters: number; readonly objects: number; readonly threads: number }
  /** The one-thread path must run: the input has something to report, or (with `failure`) a worker failed. */
  | { readonly kind: 'fallback'; readonly failure?: string; readonly specs?: SpecSet };

/** The shared counters' slots. */
export const FILE_BLOCK = 0;
export const CLUSTER_BLOCK = 1;

/** Blocks of about `threads * 8` per input, so a late or slow thread leaves little behind. */
export const blockSizeFor = (items: number, threads: number): number => Math.max(4, Math.min(64, Math.ceil(items / (threads * 8))));

/** Takes blocks from a shared counter until none is left, and runs `work` on each. */
export function drain(counters: Int32Array, which: number, blocks: number, work: (block: number) => void): void {
  for (;;) {
    const block = Atomics.add(counters, which, 1);
    if (block >= blocks) return;
    work(block);
  }
}

export const slice = <T>(items: readonly T[], blockSize: number, block: number): T[] => items.slice(block * blockSize, (block + 1) * blockSize);

/**
 * The Argo CD text of a block of selected clusters (what `generateText` prints for their objects, in
 * order) and its object count; the same on every thread.
 */
export function renderClusterBlock(renderer: Renderer, objectsOf: (c: LatticeCluster) => PlannedObject[], clusters: ReadonlyMap<string, LatticeCluster>, names: readonly string[]): [string, number] {
  let text = '';
  let objects = 0;
  for (const name of names) {
    const cluster = clusters.get(name);
    if (!cluster) throw new Error(`no cluster ${name} to render`);
    const docs = renderer.renderObjects(objectsOf(cluster));
    text += toYamlStream(docs);
    objects += docs.length;
  }
  return [text, objects];
}

interface StartedWorker {
  readonly worker: Worker;
  next(): Promise<WorkerReply>;
}

/** The worker's module, beside this one in a build (absent when running from the TypeScript sources). */
const WORKER = new URL('./generate-worker.js', import.meta.url);

function startWorker(start: WorkerStart): StartedWorker {
  const worker = new Worker(WORKER, { workerData: start });
  const queue: WorkerReply[] = [];
  const waiting: ((r: WorkerReply) => void)[] = [];
  const deliver = (r: WorkerReply) => {
    const w = waiting.shift();
    if (w) w(r);
    else queue.push(r);
  };
  worker.on('message', (m: WorkerReply) => deliver(m));
  worker.on('error', (e) => deliver({ type: 'failed', message: e.message }));
  worker.on('messageerror', (e) => deliver({ type: 'failed', message: `unreadable reply: ${e.message}` }));
  worker.on('exit', (code) => deliver({ type: 'failed', message: `worker exited (${code})` }));
  return {
    worker,
    next: () => new Promise((resolve) => {
      const r = queue.shift();
      if (r) resolve(r);
      else waiting.push(resolve);
    }),
  };
}

/**
 * Validates and renders the clusters component over `files` with `settings.threads` threads. Returns
 * `fallback` when the input has any issue, selects nothing printable, or a worker failed: the caller
 * then runs the one-thread path, which gives the same report or output.
 */
export async function generateInParallel(
  files: readonly SourceFile[], options: CmpOptions, settings: ParallelSettings,
  deps: { validator: SpecValidator; renderer: Renderer; select: (specs: SpecSet) => { head: string; names: string[]; tail: string; objects: number } | undefined },
): Promise<ParallelOutcome> {
  const blockSize = blockSizeFor(files.length, settings.threads);
  const fileBlocks = Math.ceil(files.length / blockSize);
  const counters = new Int32Array(new SharedArrayBuffer(8));
  // From the sources there is no worker to start: one thread, and nothing failed.
  if (!existsSync(fileURLToPath(WORKER))) return { kind: 'fallback' };
  let workers: StartedWorker[];
  try {
    workers = Array.from({ length: settings.threads - 1 }, () => startWorker({ files, blockSize, counters: counters.buffer as SharedArrayBuffer, options }));
  } catch (e) {
    return { kind: 'fallback', failure: e instanceof Error ? e.message : String(e) };
  }
  try {
    // Validation: this thread takes blocks too, from the first, while the workers start.
    const checks = new Map<number, FileChecks>();
    const owner = new Map<number, number>();
    drain(counters, FILE_BLOCK, fileBlocks, (b) => checks.set(b, deps.validator.checkFiles(slice(files, blockSize, b))));
    for (const [w, started] of workers.entries()) {
      const reply = await started.next();
      if (reply.type !== 'checked') return { kind: 'fallback', failure: reply.type === 'failed' ? reply.message : 'unexpected reply' };
      for (const [b, check] of reply.blocks) {
        checks.set(b, check);
        owner.set(b, w);
      }
    }
    const ordered = Array.from({ length: fileBlocks }, (_, b) => checks.get(b));
    if (ordered.some((c) => c === undefined)) return { kind: 'fallback', failure: 'a block was not checked' };
    const specs = deps.validator.combine(ordered as FileChecks[]);
    if (!specs) return { kind: 'fallback' };
    const selected = deps.select(specs);
    // Valid specs, but nothing to print (a selection error): the one-thread path reports it from these specs.
    if (!selected) return { kind: 'fallback', specs };

    // Rendering: the selected clusters in sorted order, in blocks; each worker gets the clusters it
    // does not hold already (it keeps those it checked).
    const byName = new Map(specs.clusters.map((c) => [c.object.metadata.name, c.object]));
    const ownerOf = new Map<string, number>();
    for (const [b, check] of checks) {
      const w = owner.get(b);
      if (w === undefined) continue;
      for (const o of check.objects) if (o.ours && o.object.kind === 'LatticeCluster' && typeof o.object.metadata?.name === 'string') ownerOf.set(o.object.metadata.name, w);
    }
    const renderBlock = blockSizeFor(selected.names.length, settings.threads);
    for (const [w, started] of workers.entries()) {
      const clusters = selected.names.filter((n) => ownerOf.get(n) !== w).map((n) => [n, byName.get(n)] as const).filter((e): e is readonly [string, LatticeCluster] => e[1] !== undefined);
      const request: RenderRequest = { type: 'render', names: selected.names, clusters, blockSize: renderBlock };
      started.worker.postMessage(request);
    }
    const texts: Uint8Array[] = [];
    let objects = selected.objects;
    const objectsOf = clusterObjects(deps.renderer, options);
    const utf8 = new TextEncoder();
    drain(counters, CLUSTER_BLOCK, Math.ceil(selected.names.length / renderBlock), (b) => {
      const [text, n] = renderClusterBlock(deps.renderer, objectsOf, byName, slice(selected.names, renderBlock, b));
      texts[b] = utf8.encode(text);
      objects += n;
    });
    for (const started of workers) {
      const reply = await started.next();
      if (reply.type !== 'rendered') return { kind: 'fallback', failure: reply.type === 'failed' ? reply.message : 'unexpected reply' };
      for (const [b, text, n] of reply.blocks) {
        texts[b] = text;
        objects += n;
      }
    }
    const blocks = Math.ceil(selected.names.length / renderBlock);
    for (let b = 0; b < blocks; b++) if (texts[b] === undefined) return { kind: 'fallback', failure: 'a block was not rendered' };
    return { kind: 'rendered', chunks: [utf8.encode(selected.head), ...texts, utf8.encode(selected.tail)], clusters: selected.names.length, objects, threads: settings.threads };
  } finally {
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }
}
