/**
 * The ExternalArtifact writer (research/flux.md §1, §9): one object per artifact in the sidecar's
 * namespace, its `status` written through the `/status` subresource (the main resource ignores status),
 * only when it differs from what is there. Like source-watcher: the object first, then its status.
 *
 * - A successful render: status.artifact {url, path, digest, revision, size, lastUpdateTime, metadata} and
 *   Ready=True/Succeeded. An artifact whose digest did not change keeps its whole status (lastUpdateTime
 *   and the commit that produced it), so an unrelated commit writes nothing.
 * - A failed one (bad commit, unreachable source): Ready=False with the reason and located message; the
 *   last good status.artifact stays, and consumers keep applying it (they only read status.artifact).
 * - Clusters gone from git lose their ExternalArtifact, after a successful render only.
 *
 * A publish lists every ExternalArtifact and repairs any drift, except right after a commit: when the state
 * differs from the last one this writer applied in full only in some artifacts (same failure, same index
 * source), only those are read and written. With 1,000 clusters the list alone costs more than the rest of
 * a one-cluster commit (bench/sidecar.ts); the next publish of an unchanged state (every poll) lists again,
 * so drift is still repaired within a poll interval, as before.
 */
import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LATTICE_GROUP } from '../core/spec/validate.js';
import { LABEL } from '../core/render/plan.js';
import { FLUX } from '../core/flavor/flux.js';
import type { SidecarMetrics } from './metrics.js';

const GROUP = 'source.toolkit.fluxcd.io';
const VERSION = 'v1';
const PLURAL = 'externalartifacts';
/** Who manages our ExternalArtifacts: the label that selects them for updates and deletion. */
export const MANAGED_BY = 'lattice-sidecar';
/** kustomize-controller reads this metadata key as the origin revision for events (research/flux.md §2.5). */
export const ORIGIN_REVISION = 'org.opencontainers.image.revision';
/** metav1.Condition message limit in the CRD. */
const MAX_MESSAGE = 32768;

export interface PublishedArtifact {
  readonly name: string;
  readonly cluster?: string;
  readonly hex: string;
  readonly size: number;
  /** Relative path in the sidecar's storage. */
  readonly path: string;
  readonly url: string;
  /** `<branch>@sha256:<hex>`: content-addressed, so Flux reconciles only when the content changes. */
  readonly revision: string;
  /** `<branch>@sha1:<commit>` of the commit it was rendered from. */
  readonly originRevision: string;
}

export interface PublishState {
  /** The last good artifacts (empty before the first good render). */
  readonly artifacts: readonly PublishedArtifact[];
  /** Set while the latest attempt failed. */
  readonly failure?: { readonly reason: string; readonly message: string };
  /** The GitRepository followed, if any: the index's sourceRef (for `flux trace`). */
  readonly indexSource?: { readonly namespace: string; readonly name: string };
  /** The index artifact's name, always published (it carries failures even before the first success). */
  readonly indexName: string;
}

interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

interface ExternalArtifactObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string>; resourceVersion?: string; generation?: number };
  spec?: { sourceRef?: Record<string, string> };
  status?: { artifact?: Record<string, unknown>; conditions?: Condition[] };
}

export interface PublishResult {
  readonly created: number;
  readonly updated: number;
  readonly statusWrites: number;
  readonly deleted: number;
}

const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Stable JSON for comparisons: sorted keys. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v));
}

/**
 * Whether two published artifacts give the same ExternalArtifact: the same object (cluster) and the same
 * digest, URL and revision, with which desiredStatus keeps the status as it is (size and path follow the
 * digest; the origin commit of an unchanged digest stays the one that produced it).
 */
const sameArtifact = (a: PublishedArtifact | undefined, b: PublishedArtifact | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.hex === b.hex && a.url === b.url && a.revision === b.revision && a.cluster === b.cluster);

/**
 * The names whose ExternalArtifact may differ between two states, or undefined when every one may (a
 * failure or the index source changed: every status shows them).
 */
function changedNames(before: PublishState, after: PublishState): Set<string> | undefined {
  if (canonical(before.failure ?? null) !== canonical(after.failure ?? null) || canonical(before.indexSource ?? null) !== canonical(after.indexSource ?? null) || before.indexName !== after.indexName) return undefined;
  const old = new Map(before.artifacts.map((a) => [a.name, a]));
  const names = new Set<string>();
  for (const a of after.artifacts) {
    if (!sameArtifact(old.get(a.name), a)) names.add(a.name);
    old.delete(a.name);
  }
  for (const name of old.keys()) names.add(name);
  return names;
}

type Counts = { created: number; updated: number; statusWrites: number; deleted: number };

export class ExternalArtifactWriter {
  private readonly api: CustomObjectsApi;
  /** The last state applied in full (listed and reconciled without an error). */
  private applied?: PublishState;

  constructor(private readonly options: { kubeConfig: KubeConfig; namespace: string; now: () => Date; log: Logger; metrics?: SidecarMetrics }) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /**
   * Makes the ExternalArtifacts match `state`; writes only what differs. `full` lists and reconciles every
   * one whatever was applied before (a replica that just became the leader cannot trust its memory).
   */
  async publish(state: PublishState, options: { full?: boolean } = {}): Promise<PublishResult> {
    const counts: Counts = { created: 0, updated: 0, statusWrites: 0, deleted: 0 };
    const changed = this.applied && !options.full ? changedNames(this.applied, state) : undefined;
    // Forgotten until this publish succeeds: after an error the next one lists and repairs everything.
    this.applied = undefined;
    if (changed && changed.size > 0) await this.publishChanged(state, changed, counts);
    else await this.publishAll(state, counts);
    this.applied = state;
    const { created, updated, statusWrites, deleted } = counts;
    if (created + updated + statusWrites + deleted > 0) this.options.log.info({ created, updated, statusWrites, deleted, listed: !(changed && changed.size > 0) }, 'external artifacts written');
    return counts;
  }

  /** Lists every ExternalArtifact of ours and reconciles each: drift is repaired here. */
  private async publishAll(state: PublishState, counts: Counts): Promise<void> {
    const { namespace } = this.options;
    const list = (await this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, labelSelector: `${LABEL.managedBy}=${MANAGED_BY}` })) as { items: ExternalArtifactObject[] };
    const existing = new Map(list.items.map((o) => [o.metadata.name, o]));
    const wanted = new Map<string, PublishedArtifact | undefined>(state.artifacts.map((a) => [a.name, a]));
    if (!wanted.has(state.indexName)) wanted.set(state.indexName, undefined);
    for (const [name, artifact] of [...wanted].sort(([a], [b]) => (a < b ? -1 : 1))) await this.reconcile(name, existing.get(name), artifact, state, counts);
    // Only a successful render knows which clusters exist; a failed one deletes nothing.
    if (!state.failure && state.artifacts.length > 0) {
      for (const [name, obj] of existing) {
        if (!wanted.has(name)) await this.remove(obj, counts);
      }
    }
  }

  /** Reads and reconciles only the named ExternalArtifacts (the state differs from the last applied only there). */
  private async publishChanged(state: PublishState, names: ReadonlySet<string>, counts: Counts): Promise<void> {
    const wanted = new Map<string, PublishedArtifact>(state.artifacts.map((a) => [a.name, a]));
    for (const name of [...names].sort()) {
      const obj = await this.read(name);
      const artifact = wanted.get(name);
      if (artifact || name === state.indexName) await this.reconcile(name, obj, artifact, state, counts);
      else if (obj && !state.failure && state.artifacts.length > 0) await this.remove(obj, counts);
    }
  }

  /** One of ours by name; an object of that name without our label is not ours (as in the labelled list). */
  private async read(name: string): Promise<ExternalArtifactObject | undefined> {
    try {
      const obj = (await this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: this.options.namespace, plural: PLURAL, name })) as ExternalArtifactObject;
      return obj.metadata.labels?.[LABEL.managedBy] === MANAGED_BY ? obj : undefined;
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return undefined;
      throw e;
    }
  }

  private async reconcile(name: string, current: ExternalArtifactObject | undefined, artifact: PublishedArtifact | undefined, state: PublishState, counts: Counts): Promise<void> {
    const { namespace } = this.options;
    let obj = current;
    const desired = this.desiredObject(name, artifact, state);
    if (!obj) {
      obj = (await this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, body: desired })) as ExternalArtifactObject;
      counts.created++;
      this.options.metrics?.statusWrites.inc();
    } else if (canonical(obj.metadata.labels ?? {}) !== canonical(desired.metadata.labels) || canonical(obj.spec ?? {}) !== canonical(desired.spec ?? {})) {
      obj = (await this.api.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { ...obj, metadata: { ...obj.metadata, labels: desired.metadata.labels }, spec: desired.spec ?? {} } })) as ExternalArtifactObject;
      counts.updated++;
      this.options.metrics?.statusWrites.inc();
    }
    const status = this.desiredStatus(obj, artifact, state);
    if (canonical(status) === canonical(obj.status ?? {})) return;
    await this.api.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { ...obj, status } });
    counts.statusWrites++;
    this.options.metrics?.statusWrites.inc();
  }

  private async remove(obj: ExternalArtifactObject, counts: Counts): Promise<void> {
    const { namespace } = this.options;
    await this.api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name: obj.metadata.name, body: { preconditions: { resourceVersion: obj.metadata.resourceVersion } } });
    counts.deleted++;
  }

  private desiredObject(name: string, artifact: PublishedArtifact | undefined, state: PublishState): ExternalArtifactObject {
    const cluster = artifact?.cluster;
    // spec.sourceRef is informational (flux trace, admission policies): the LatticeCluster a cluster
    // artifact is rendered from, the GitRepository the index follows.
    const sourceRef: Record<string, string> | undefined = cluster !== undefined
      ? { apiVersion: `${LATTICE_GROUP}/v1alpha1`, kind: 'LatticeCluster', name: cluster }
      : state.indexSource ? { apiVersion: `${GROUP}/v1`, kind: 'GitRepository', name: state.indexSource.name, namespace: state.indexSource.namespace } : undefined;
    return {
      apiVersion: FLUX.apiVersions.ExternalArtifact,
      kind: 'ExternalArtifact',
      metadata: { name, namespace: this.options.namespace, labels: { [LABEL.managedBy]: MANAGED_BY, ...(cluster !== undefined ? { [LABEL.cluster]: cluster } : {}) } },
      ...(sourceRef ? { spec: { sourceRef } } : {}),
    };
  }

  private desiredStatus(obj: ExternalArtifactObject, artifact: PublishedArtifact | undefined, state: PublishState): NonNullable<ExternalArtifactObject['status']> {
    const now = rfc3339(this.options.now());
    const current = obj.status?.artifact;
    let next: Record<string, unknown> | undefined = current;
    if (artifact) {
      const digest = `sha256:${artifact.hex}`;
      const unchanged = current?.digest === digest && current.url === artifact.url && current.revision === artifact.revision;
      next = unchanged ? current : {
        digest, lastUpdateTime: now, metadata: { [ORIGIN_REVISION]: artifact.originRevision },
        path: artifact.path, revision: artifact.revision, size: artifact.size, url: artifact.url,
      };
    }
    const ready: Omit<Condition, 'lastTransitionTime'> = state.failure
      ? { type: 'Ready', status: 'False', reason: state.failure.reason, message: state.failure.message.slice(0, MAX_MESSAGE) }
      : artifact
        ? { type: 'Ready', status: 'True', reason: 'Succeeded', message: `stored artifact for revision '${artifact.revision}'` }
        : { type: 'Ready', status: 'Unknown', reason: 'Progressing', message: 'waiting for the first render' };
    const previous = (obj.status?.conditions ?? []).find((c) => c.type === 'Ready');
    const condition: Condition = {
      ...ready,
      lastTransitionTime: previous && previous.status === ready.status ? previous.lastTransitionTime : now,
      ...(obj.metadata.generation !== undefined ? { observedGeneration: obj.metadata.generation } : {}),
    };
    const others = (obj.status?.conditions ?? []).filter((c) => c.type !== 'Ready');
    return { ...(next ? { artifact: next } : {}), conditions: [condition, ...others] };
  }
}
