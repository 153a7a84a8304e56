/**
 * The reconcile's read-only pass (reconcile.ts): the steps run against what the watches already hold, with
 * every action refused, to find out cheaply whether a cluster needs anything at all. A settled cluster is
 * reconciled again and again (each watch event of its objects, every periodic resync) and almost always
 * needs nothing; reading its dozen objects from the server each time is what controller-runtime's cached
 * client exists to avoid. The pass only ever concludes "nothing to do, the status is as computed": as soon as
 * a step tries to act (write, send to the agent, move, record an event, reach the child), or the status it
 * computes differs from the stored one, the reconcile runs again from the top against the API server, exactly
 * as it did before the caches. So a stale cache can delay an action until the watch event that refreshes it
 * (which queues the cluster again) but never cause one.
 *
 * Reads (`cachedKube`) see what the watches select, as the events that queue a reconcile do:
 *  - get: served by the synced watches of that resource covering the namespace; what none of them holds is
 *    absent for this pass. An object outside a watch's label selection (a Secret of CAPI's without its
 *    cluster label, an Application Lattice did not label) queues no reconcile when it changes either, and a
 *    live pass still reads it by name: if it matters to the outcome, the outcomes differ and the live pass
 *    runs.
 *  - list: what the synced watches of that resource covering the namespace hold, filtered by the request's
 *    selector (a watch's narrower selection, e.g. MachineDeployments labelled `lattice.dev/cluster`, holds as
 *    for gets).
 *  - what no synced watch covers is read from the server: a resource without a watch (the cluster-scoped
 *    AWSClusterStaticIdentity), a watch that has not listed yet or is failing.
 *  - a Namespace: no watch (the controller's RBAC only reads them); one that holds a Secret the controller
 *    owns exists and is not terminating, because a terminating namespace's Secrets (no finalizers) go first
 *    and their deletion events queue the cluster again. Otherwise the server is asked.
 * "Synced" is the supervisor's health: listed, and not failing since.
 */
import { LatticeError } from '../core/errors.js';
import type { Mover } from '../kube/mover.js';
import type { AgentIntegration } from './agents.js';
import type { ReconcileDeps } from './context.js';
import type { EventSink } from './events.js';
import { toObject, type KObject, type Kube, type ListOptions } from './kube.js';
import { NAMESPACE, type Resource } from './resources.js';

/** One watch's cache as the read-only pass sees it. */
export interface CacheSource {
  readonly resource: Resource;
  /** The namespace the watch is limited to; undefined: every namespace. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  /** Listed and not failing since: what it holds is the server's state as of its last event. */
  readonly synced: boolean;
  /** Objects as the informer holds them: read, never modified. */
  get(name: string, namespace?: string): unknown;
  list(namespace?: string): readonly unknown[];
}

/** Every watch's cache, looked up by resource. */
export type WatchCache = (r: Resource) => readonly CacheSource[];

/** What the read-only pass tried to do, if anything: it then gives way to a live pass. */
export interface Attempt {
  action?: string;
}

/** Refusal of an action in the read-only pass (a transient LatticeError, so every step passes it through). */
export class ActionRefused extends LatticeError {
  constructor(action: string) {
    super('transient', 'ReadOnlyPass', `${action}: not in the read-only pass`);
  }
}

function refuse(attempt: Attempt, action: string): never {
  attempt.action ??= action;
  throw new ActionRefused(action);
}

const sameResource = (a: Resource, b: Resource): boolean => a.group === b.group && a.version === b.version && a.plural === b.plural;
const covers = (source: CacheSource, namespace: string | undefined): boolean => source.namespace === undefined || source.namespace === namespace;

type Requirement = { key: string; op: 'exists' | '!' | '=' | '!='; value?: string };

/** The equality-based label selectors the controller writes (`a`, `!a`, `a=b`, `a==b`, `a!=b`); undefined for anything else. */
export function parseSelector(selector: string | undefined): Requirement[] | undefined {
  if (selector === undefined || selector.trim() === '') return [];
  const out: Requirement[] = [];
  for (const raw of selector.split(',')) {
    const term = raw.trim();
    const m = /^(!?)([A-Za-z0-9._/-]+)(?:\s*(==|=|!=)\s*([A-Za-z0-9._-]*))?$/.exec(term);
    if (!m?.[2]) return undefined;
    if (m[3] !== undefined && m[1]) return undefined;
    if (m[3] === undefined) out.push({ key: m[2], op: m[1] ? '!' : 'exists' });
    else out.push({ key: m[2], op: m[3] === '!=' ? '!=' : '=', value: m[4] ?? '' });
  }
  return out;
}

export function matchesSelector(labels: Readonly<Record<string, string>> | undefined, requirements: readonly Requirement[]): boolean {
  const l = labels ?? {};
  return requirements.every((r) => {
    const v = l[r.key];
    if (r.op === 'exists') return v !== undefined;
    if (r.op === '!') return v === undefined;
    if (r.op === '=') return v === r.value;
    return v !== r.value;
  });
}

const metaOf = (o: unknown): { name?: string; namespace?: string; labels?: Record<string, string> } =>
  ((o as { metadata?: unknown } | undefined)?.metadata ?? {}) as { name?: string; namespace?: string; labels?: Record<string, string> };

/**
 * A Kube for the read-only pass: reads from the watches' caches (see the module comment), writes refused.
 * `fallback` answers what the caches cannot.
 */
export function cachedKube(fallback: Kube, cache: WatchCache, attempt: Attempt, options: { ownedSecrets: () => CacheSource | undefined }): Kube {
  return {
    async get(r, name, namespace) {
      if (sameResource(r, NAMESPACE)) {
        const owned = options.ownedSecrets();
        if (owned?.synced && owned.list(name).length > 0) return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
        return fallback.get(r, name, namespace);
      }
      const covering = cache(r).filter((s) => covers(s, namespace));
      const sources = covering.filter((s) => s.synced);
      if (sources.length === 0) return fallback.get(r, name, namespace);
      for (const s of sources) {
        const hit = s.get(name, namespace);
        if (hit !== undefined) return toObject(hit);
      }
      // Absent from every synced watch: absent, unless a watch that could hold it is not synced (listing or
      // failing), when only the server knows.
      return sources.length === covering.length ? undefined : fallback.get(r, name, namespace);
    },
    async list(r, o: ListOptions = {}) {
      const requirements = parseSelector(o.labelSelector);
      const covering = cache(r).filter((s) => covers(s, o.namespace));
      const sources = covering.filter((s) => s.synced);
      // A watch that is not synced may hold what the others lack: the server answers the whole list.
      if (sources.length === 0 || sources.length !== covering.length || !requirements) return fallback.list(r, o);
      // What any of the watches selects (several may hold one object: Secrets), once each.
      const out = new Map<string, KObject>();
      for (const source of sources) {
        for (const item of source.list(o.namespace)) {
          const meta = metaOf(item);
          const key = `${meta.namespace ?? ''}/${meta.name ?? ''}`;
          if (out.has(key) || (o.namespace !== undefined && meta.namespace !== o.namespace) || !matchesSelector(meta.labels, requirements)) continue;
          out.set(key, toObject(item));
        }
      }
      return [...out.values()];
    },
    create: async (r, obj) => refuse(attempt, `create ${r.kind} ${obj.metadata.name}`),
    replace: async (r, obj) => refuse(attempt, `update ${r.kind} ${obj.metadata.name}`),
    mergePatch: async (r, name) => refuse(attempt, `patch ${r.kind} ${name}`),
    remove: async (r, name) => refuse(attempt, `delete ${r.kind} ${name}`),
    lister: (r, o) => fallback.lister(r, o),
  };
}

/** The cell for the read-only pass: what it knows is read, nothing is sent (or delivered, or minted). */
function readOnlyAgents(agents: AgentIntegration, attempt: Attempt): AgentIntegration {
  return {
    tokens: {
      lookup: async () => refuse(attempt, 'bootstrap token lookup'),
      recordIssued: async () => refuse(attempt, 'bootstrap token issue'),
      acquireLease: async () => refuse(attempt, 'bootstrap token lease'),
      releaseLease: async () => refuse(attempt, 'bootstrap token release'),
      consume: async () => refuse(attempt, 'bootstrap token consumption'),
    },
    agent: (cluster) => agents.agent(cluster),
    // Asked for only when a bootstrap Secret may have to be written into the child (agents.ts).
    delivery: () => (agents.delivery() === undefined ? undefined : refuse(attempt, 'bootstrap delivery')),
    proxy: (cluster) => agents.proxy(cluster),
    tokenTtlMs: agents.tokenTtlMs,
    subscribe: () => () => undefined,
    send: async () => refuse(attempt, 'command to the agent'),
    unpivot: async () => refuse(attempt, 'unpivot request'),
  };
}

function readOnlyMover(attempt: Attempt): Mover {
  const no = (what: string) => async (): Promise<never> => refuse(attempt, what);
  return { list: no('move discovery'), receive: no('move import'), pause: no('pause'), unpause: no('unpause'), remove: no('move clean-up'), patch: no('shadow patch'), apply: no('apply') };
}

/**
 * The dependencies of a read-only pass: reads from the caches, every action refused and noted in `attempt`,
 * logs silenced (the live pass that follows logs what it does).
 */
export function readOnlyDeps(deps: ReconcileDeps, kube: Kube, attempt: Attempt): ReconcileDeps {
  const events: EventSink = { record: async (): Promise<never> => refuse(attempt, 'event') };
  const { metrics: _metrics, agents, mover, checkpoint: _checkpoint, ...rest } = deps;
  return {
    ...rest,
    kube,
    events,
    log: deps.log.child({}, { level: 'silent' }),
    ...(agents ? { agents: readOnlyAgents(agents, attempt) } : {}),
    ...(mover ? { mover: readOnlyMover(attempt) } : {}),
    // Called before every action of a pivot or an unpivot.
    checkpoint: async (point) => refuse(attempt, `checkpoint ${point}`),
  };
}
