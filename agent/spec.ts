/**
 * Spec sync: the cell sends the cluster's LatticeCluster as git has it (DESIGN §7.5). The agent checks it
 * with the same `core` validator the renderer uses (so defaults are the same everywhere), refuses a spec
 * for another cluster, ignores one older than what it has, and keeps it. The kept spec drives addon health
 * (which namespaces to watch, from the addon catalog). The `specSync` handler is agent/pivot.ts's: it runs
 * these steps and, once the child manages itself, also renders the spec's Cluster API objects and applies them.
 */
import type { Logger } from 'pino';
import { specRenderer, specValidator } from '../cli/load.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { AckCode, type DecodedCommand } from '../controller/cell/protocol.js';
import type { Outcome } from './dispatch.js';

export interface SpecState {
  /** The generation of the kept spec; -1 before the first sync. */
  generation: number;
  cluster?: LatticeCluster;
  /** Addon namespaces of the kept spec. */
  addonNamespaces: readonly string[];
}

export interface SpecSyncDeps {
  readonly cluster: string;
  readonly state: SpecState;
  readonly log: Logger;
  /** @default core's validator over the CRDs of the package */
  readonly validate?: (json: Uint8Array) => { ok: true; cluster: LatticeCluster } | { ok: false; message: string };
  /** @default the namespaces of specRenderer().addons(cluster) */
  readonly addonNamespacesOf?: (cluster: LatticeCluster) => readonly string[];
}

function validateWithCore(json: Uint8Array): { ok: true; cluster: LatticeCluster } | { ok: false; message: string } {
  const result = specValidator().validate([{ path: 'spec-sync.json', bytes: json }]);
  if (!result.ok) {
    const first = result.issues[0];
    return { ok: false, message: `the synced spec is invalid: ${result.issues.length} issue(s)${first ? `, first: ${first.code} ${first.path ?? ''}` : ''}` };
  }
  const clusters = result.value.clusters;
  const only = clusters[0];
  if (clusters.length !== 1 || !only || result.value.others.length > 0 || result.value.infraProviders.length > 0) return { ok: false, message: 'a spec sync must carry exactly one LatticeCluster' };
  return { ok: true, cluster: only.object };
}

export function emptySpecState(): SpecState {
  return { generation: -1, addonNamespaces: [] };
}

/** What a specSync command amounts to, before anything is kept. */
export type SpecSyncCheck =
  | { readonly status: 'accepted'; readonly cluster: LatticeCluster; readonly generation: number }
  /** Older than the kept spec: acknowledged, ignored. */
  | { readonly status: 'older'; readonly generation: number }
  | { readonly status: 'refused'; readonly outcome: Outcome };

/** Checks a specSync command: present, not older than the kept spec, valid, for this cluster. */
export function checkSpecSync(deps: SpecSyncDeps, command: DecodedCommand): SpecSyncCheck {
  const sync = command.specSync;
  if (!sync || sync.cluster.length === 0) return { status: 'refused', outcome: { ok: false, code: AckCode.Invalid, error: 'specSync carries no cluster' } };
  if (sync.generation < deps.state.generation) {
    deps.log.info({ generation: sync.generation, kept: deps.state.generation }, 'spec sync older than kept spec; ignored');
    return { status: 'older', generation: sync.generation };
  }
  const checked = (deps.validate ?? validateWithCore)(sync.cluster);
  if (!checked.ok) return { status: 'refused', outcome: { ok: false, code: AckCode.Invalid, error: checked.message } };
  if (checked.cluster.metadata.name !== deps.cluster) return { status: 'refused', outcome: { ok: false, code: AckCode.Invalid, error: 'the synced spec names another cluster' } };
  return { status: 'accepted', cluster: checked.cluster, generation: sync.generation };
}

/** Keeps an accepted spec (and the addon namespaces health watches). */
export function keepSpec(deps: SpecSyncDeps, cluster: LatticeCluster, generation: number): void {
  const namespacesOf = deps.addonNamespacesOf ?? ((c: LatticeCluster) => [...new Set(specRenderer().addons(c).map((a) => a.namespace))].sort());
  deps.state.cluster = cluster;
  deps.state.generation = generation;
  deps.state.addonNamespaces = namespacesOf(cluster);
  deps.log.info({ generation, addons: deps.state.addonNamespaces.length }, 'spec synced');
}
