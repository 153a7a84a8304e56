/**
 * The sidecar's reconcile loop: sync the source, render the commit it points at (once per commit, only
 * what changed since the last good one: incremental.ts), store the artifacts, publish their
 * ExternalArtifacts (the Lease holder only), collect superseded artifacts.
 * Every replica renders, so every replica serves every URL: the bytes are deterministic.
 *
 * Failures by kind (core/errors.ts): a source that cannot be fetched is transient (next poll retries);
 * an invalid commit is stalling (rendered once, reported with every located error until a new commit
 * arrives). Neither replaces the last good artifacts, which stay served and published.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { asLatticeError } from '../core/errors.js';
import type { FluxOptions } from '../core/flavor/flux.js';
import { INDEX_ARTIFACT } from '../core/flavor/flux.js';
import type { Renderer } from '../core/render/render.js';
import { formatIssue, sortIssues, type Issue } from '../core/spec/issues.js';
import type { BuildResult } from './build.js';
import { IncrementalBuilder, type BuildStats } from './incremental.js';
import type { SidecarMetrics } from './metrics.js';
import type { PublishResult, PublishState, PublishedArtifact } from './publisher.js';
import { redact, type Source } from './source.js';
import type { ArtifactStore } from './store.js';

export interface SidecarOptions {
  readonly source: Source;
  readonly store: ArtifactStore;
  readonly renderer: Renderer;
  /** Directory of the specs inside the repository. */
  readonly path: string;
  readonly flux: FluxOptions;
  /** Base of artifact URLs (no trailing slash). */
  readonly advertiseUrl: string;
  readonly pollIntervalMs: number;
  /** Publish an index without clusters (Flux would then prune every cluster's Kustomizations). */
  readonly allowEmpty?: boolean;
  /** `full`: list and reconcile every ExternalArtifact (else the writer may touch only what changed). */
  readonly writer?: { publish(state: PublishState, options?: { full?: boolean }): Promise<PublishResult> };
  /** Whether this replica holds the Lease; only the holder writes. @default () => true */
  readonly isLeader?: () => boolean;
  readonly indexSource?: { readonly namespace: string; readonly name: string };
  readonly metrics: SidecarMetrics;
  readonly log: Logger;
  /** Shortest time between refreshes caused by requests for unknown artifacts. @default 5000 */
  readonly missRefreshMs?: number;
  /** Longest a request for an unknown artifact waits for that refresh. @default 10000 */
  readonly missWaitMs?: number;
  /** Clock for the last-success metric. @default () => new Date() */
  readonly now?: () => Date;
  /**
   * Builds a snapshot. @default an IncrementalBuilder: only what changed since the last good commit is
   * validated, rendered and packed, with the same result as buildArtifacts (sidecar/incremental.ts).
   */
  readonly build?: (renderer: Renderer, dir: string, path: string, options: FluxOptions) => BuildResult;
}

type Failure = { readonly reason: string; readonly message: string };

/** How many located errors a condition lists; the logs have all of them. */
const MAX_LISTED_ISSUES = 20;

export function invalidSpecMessage(revision: string, issues: readonly Issue[], serving: string | undefined): string {
  const sorted = sortIssues(issues);
  const lines = sorted.slice(0, MAX_LISTED_ISSUES).map(formatIssue);
  if (sorted.length > MAX_LISTED_ISSUES) lines.push(`... and ${sorted.length - MAX_LISTED_ISSUES} more`);
  const still = serving ? `still serving the artifacts of ${serving}` : 'nothing is served yet';
  return `${revision} has ${sorted.length} invalid spec error${sorted.length === 1 ? '' : 's'}; ${still}:\n${lines.join('\n')}`;
}

export class Sidecar {
  private artifacts: PublishedArtifact[] = [];
  private fetchFailure?: Failure;
  private buildFailure?: Failure;
  private builtRevision?: string;
  private servingRevision?: string;
  private ready = false;
  private chain: Promise<void> = Promise.resolve();
  private stopped = true;
  private triggered = false;
  private wake?: () => void;
  private loop?: Promise<void>;
  private lastMissRefresh = Number.NEGATIVE_INFINITY;
  /** Whether the next publish must reconcile everything: at first, after a failed one, after not leading. */
  private publishAll = true;
  private readonly builder: IncrementalBuilder;

  constructor(private readonly options: SidecarOptions) {
    this.builder = new IncrementalBuilder(options.renderer, options.flux);
  }

  /** True after the first good render. */
  get isReady(): boolean {
    return this.ready;
  }

  /** What the ExternalArtifacts should say now. */
  get state(): PublishState {
    const failure = this.fetchFailure ?? this.buildFailure;
    return {
      artifacts: this.artifacts,
      indexName: INDEX_ARTIFACT,
      ...(failure ? { failure } : {}),
      ...(this.options.indexSource ? { indexSource: this.options.indexSource } : {}),
    };
  }

  /** Polls until stopped: a cycle now, then every poll interval (with 10% jitter) or on trigger(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = (async () => {
      while (!this.stopped) {
        this.triggered = false;
        await this.refresh().catch(() => undefined);
        if (this.stopped || this.triggered) continue;
        const delay = this.options.pollIntervalMs * (0.9 + Math.random() * 0.2);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.chain;
  }

  /** Fetch now (the git hook). */
  trigger(): void {
    this.triggered = true;
    this.wake?.();
  }

  /** One sync-render-publish cycle, serialized with every other. */
  refresh(): Promise<void> {
    const run = this.chain.then(() => this.cycle());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * A request asked for an artifact this replica does not have: another replica may be a commit ahead.
   * Refresh, at most once per `missRefreshMs`, and wait for it at most `missWaitMs`.
   */
  async refreshForMiss(): Promise<void> {
    const now = performance.now();
    if (now - this.lastMissRefresh < (this.options.missRefreshMs ?? 5000)) return;
    this.lastMissRefresh = now;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.refresh().catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.missWaitMs ?? 10_000))),
    ]);
    clearTimeout(timer);
  }

  private async cycle(): Promise<void> {
    const { source, log, metrics } = this.options;
    const started = performance.now();
    let snapshot;
    try {
      snapshot = await source.sync();
      this.fetchFailure = undefined;
    } catch (e) {
      const err = asLatticeError(e, 'FetchFailed');
      metrics.errors.inc({ code: err.code });
      log.warn({ source: source.description, code: err.code, kind: err.kind, err: err.message }, 'source sync failed');
      this.fetchFailure = { reason: err.code, message: err.message };
      await this.publish();
      return;
    }
    const synced = performance.now();
    const fresh = snapshot.revision !== this.builtRevision;
    if (fresh) await this.build(snapshot);
    const built = performance.now();
    const removed = await this.options.store.collect();
    if (removed > 0) log.info({ removed }, 'superseded artifacts collected');
    await this.publish();
    // Where a cycle's time goes (bench/sidecar.ts reads it): fetch, build, then collect and publish.
    const ms = (from: number, to: number) => Math.round(to - from);
    log.debug({ revision: snapshot.revision, built: fresh, syncMs: ms(started, synced), buildMs: ms(synced, built), publishMs: ms(built, performance.now()) }, 'cycle finished');
  }

  private async build(snapshot: { dir: string; branch: string; revision: string }): Promise<void> {
    const { log, metrics, store } = this.options;
    const started = performance.now();
    let result: BuildResult;
    let stats: BuildStats | undefined;
    try {
      if (this.options.build) {
        result = this.options.build(this.options.renderer, snapshot.dir, this.options.path, this.options.flux);
      } else {
        const built = this.builder.build(snapshot.dir, this.options.path);
        ({ stats } = built);
        result = built;
      }
    } catch (e) {
      // A bug, not the user's input: transient, retried on the next cycle (builtRevision stays).
      const err = asLatticeError(e, 'RenderFailed');
      metrics.errors.inc({ code: err.code });
      log.error({ revision: snapshot.revision, err: (e as Error).message }, 'render failed');
      this.buildFailure = { reason: err.code, message: `${snapshot.revision} could not be rendered; see the sidecar logs` };
      return;
    }
    const seconds = (performance.now() - started) / 1000;
    this.builtRevision = snapshot.revision;
    if (!result.ok) {
      metrics.renderDuration.observe({ result: 'invalid' }, seconds);
      metrics.errors.inc({ code: 'InvalidSpec' });
      for (const issue of sortIssues(result.issues)) {
        log.warn({ revision: snapshot.revision, code: issue.code, file: issue.file, line: issue.line, col: issue.col, path: issue.path, issue: formatIssue(issue) }, 'invalid spec');
      }
      this.buildFailure = { reason: 'InvalidSpec', message: invalidSpecMessage(snapshot.revision, result.issues, this.servingRevision) };
      return;
    }
    if (result.clusters === 0 && !this.options.allowEmpty) {
      metrics.errors.inc({ code: 'NoClusters' });
      log.warn({ revision: snapshot.revision, path: this.options.path }, 'no clusters found');
      this.buildFailure = {
        reason: 'NoClusters',
        message: `${snapshot.revision} has no LatticeCluster under ${this.options.path}: refusing to publish an empty index, which would make Flux prune every cluster's Kustomizations (set --allow-empty=true to mean it)`,
      };
      return;
    }
    const published: PublishedArtifact[] = [];
    for (const a of result.artifacts) {
      // Unchanged artifacts are stored already: no hashing or writing again.
      const stored = store.get(a.name, a.hex) ?? await store.put(a.name, a.bytes);
      published.push({
        name: a.name, ...(a.cluster !== undefined ? { cluster: a.cluster } : {}), hex: stored.hex, size: stored.size, path: stored.path,
        url: `${this.options.advertiseUrl}/artifacts/${stored.name}/${stored.hex}.tar.gz`,
        revision: `${snapshot.branch}@sha256:${stored.hex}`,
        originRevision: snapshot.revision,
      });
    }
    store.setCurrent(published);
    const before = new Map(this.artifacts.map((o) => [o.name, o.hex]));
    const changed = published.filter((p) => before.get(p.name) !== p.hex).map((p) => p.name);
    this.artifacts = published;
    this.buildFailure = undefined;
    this.servingRevision = snapshot.revision;
    this.ready = true;
    metrics.renderDuration.observe({ result: 'success' }, seconds);
    metrics.artifacts.set(published.length);
    metrics.lastSuccess.set((this.options.now ?? (() => new Date()))().getTime() / 1000);
    log.info({ revision: snapshot.revision, artifacts: published.length, changed, seconds, ...stats }, 'commit rendered');
  }

  private async publish(): Promise<void> {
    const { writer, log, metrics } = this.options;
    if (!writer) return;
    if (!(this.options.isLeader?.() ?? true)) {
      // Another replica writes meanwhile: what this one applied last says nothing about what is there.
      this.publishAll = true;
      return;
    }
    const state = this.state;
    if (state.artifacts.length === 0 && !state.failure) return;
    try {
      const full = this.publishAll;
      this.publishAll = true;
      await writer.publish(state, { full });
      this.publishAll = false;
    } catch (e) {
      metrics.errors.inc({ code: 'PublishFailed' });
      log.warn({ err: redact((e as Error).message).slice(0, 500) }, 'publishing external artifacts failed');
    }
  }
}
