/** Helpers for the pivot tests: the Cluster API objects of a namespace, and which of them are live. */
import type { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { isPaused, type ListedObject } from '../../core/move/graph.js';
import { createMover, type Mover } from '../../kube/mover.js';
import { specRenderer } from '../../cli/load.js';

export type Obj = Record<string, unknown> & { apiVersion?: string; kind?: string; metadata?: { name?: string; uid?: string; generation?: number; annotations?: Record<string, string>; finalizers?: string[] } };

/** Every movable object of the namespace (what a pivot looks at), sorted by kind and name. */
const movers = new WeakMap<KubeConfig, Mover>();

export async function capiObjects(kc: KubeConfig, namespace: string): Promise<ListedObject[]> {
  let mover = movers.get(kc);
  if (!mover) movers.set(kc, (mover = createMover({ kubeConfig: kc, fieldManager: 'test', log: pino({ level: 'silent' }), apiVersions: specRenderer().versions.apiVersions })));
  const objects = await mover.list(namespace);
  return [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));
}

/** The Cluster API objects (not Secrets or ConfigMaps) that their controllers act on: not paused by anything. */
export function liveObjects(objects: readonly ListedObject[]): ListedObject[] {
  const clusterPaused = objects.some((o) => o.kind === 'Cluster' && isPaused(o));
  return objects.filter((o) => o.apiVersion !== 'v1' && !clusterPaused && !isPaused(o) && o.metadata.annotations?.['lattice.dev/pivoted-to'] === undefined);
}
