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
 */
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
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

export class ExternalArtifactWriter {
  private readonly api: CustomObjectsApi;

  constructor(private readonly options: { kubeConfig: KubeConfig; namespace: string; now: () => Date; log: Logger; metrics?: SidecarMetrics }) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /** Makes the ExternalArtifacts match `state`; writes only what differs. */
  async publish(state: PublishState): Promise<PublishResult> {
    const { namespace } = this.options;
    const list = (await this.api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, labelSelector: `${LABEL.managedBy}=${MANAGED_BY}` })) as { items: ExternalArtifactObject[] };
    const existing = new Map(list.items.map((o) => [o.metadata.name, o]));
    const wanted = new Map<string, PublishedArtifact | undefined>(state.artifacts.map((a) => [a.name, a]));
    if (!wanted.has(state.indexName)) wanted.set(state.indexName, undefined);
    let created = 0;
    let updated = 0;
    let statusWrites = 0;
    let deleted = 0;

    for (const [name, artifact] of [...wanted].sort(([a], [b]) => (a < b ? -1 : 1))) {
      let obj = existing.get(name);
      const desired = this.desiredObject(name, artifact, state);
      if (!obj) {
        obj = (await this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, body: desired })) as ExternalArtifactObject;
        created++;
        this.options.metrics?.statusWrites.inc();
      } else if (canonical(obj.metadata.labels ?? {}) !== canonical(desired.metadata.labels) || canonical(obj.spec ?? {}) !== canonical(desired.spec ?? {})) {
        obj = (await this.api.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { ...obj, metadata: { ...obj.metadata, labels: desired.metadata.labels }, spec: desired.spec ?? {} } })) as ExternalArtifactObject;
        updated++;
        this.options.metrics?.statusWrites.inc();
      }
      const status = this.desiredStatus(obj, artifact, state);
      if (canonical(status) === canonical(obj.status ?? {})) continue;
      await this.api.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { ...obj, status } });
      statusWrites++;
      this.options.metrics?.statusWrites.inc();
    }

    // Only a successful render knows which clusters exist; a failed one deletes nothing.
    if (!state.failure && state.artifacts.length > 0) {
      for (const [name, obj] of existing) {
        if (wanted.has(name)) continue;
        await this.api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { preconditions: { resourceVersion: obj.metadata.resourceVersion } } });
        deleted++;
      }
    }
    if (created + updated + statusWrites + deleted > 0) this.options.log.info({ created, updated, statusWrites, deleted }, 'external artifacts written');
    return { created, updated, statusWrites, deleted };
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
