/**
 * Builders for the commands the controller sends, so it never assembles protocol messages by hand.
 */
import type { CommandBody } from './protocol.js';

/** What a spec sync carries of a LatticeCluster: identity, labels and spec; never status or server fields. */
export interface SyncedCluster {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: { readonly name?: string; readonly labels?: Readonly<Record<string, string>>; readonly generation?: number };
  readonly spec?: unknown;
}

/**
 * A specSync command for a LatticeCluster as read from the parent. Status, uid, resourceVersion and
 * managedFields are dropped: the agent validates the spec with core's schema, which knows none of them,
 * and the child must not learn the parent's bookkeeping.
 */
export function specSyncCommand(cluster: SyncedCluster): CommandBody {
  const object = {
    apiVersion: cluster.apiVersion ?? 'lattice.dev/v1alpha1',
    kind: cluster.kind ?? 'LatticeCluster',
    metadata: { name: cluster.metadata.name, ...(cluster.metadata.labels ? { labels: cluster.metadata.labels } : {}) },
    spec: cluster.spec,
  };
  return { specSync: { cluster: Buffer.from(JSON.stringify(object)), generation: cluster.metadata.generation ?? 0 } };
}
