/**
 * The crash matrix of the pivot and the unpivot (issue M8, DESIGN §7.6): for every step boundary, a
 * cluster rendered from the `dev` example is pivoted with the controller (or the agent) stopped at that
 * boundary and replaced by a fresh instance (nothing kept in memory), then deleted with a second stop at a
 * boundary of the unpivot. After each recovery:
 *  - every object exists exactly once, live (unpaused) in exactly one cluster, and never live in both, not
 *    even at the moment of a crash;
 *  - the set of objects equals the original (kind and name), on the side that holds them;
 *  - the parent's git-managed objects are intact shadows while the child manages itself;
 *  - the durable markers (parent state Secret, child-local record) agree with where the objects are.
 *
 * A controller stop: its checkpoint (ReconcileDeps.checkpoint, called before every action of a pivot or
 * unpivot) throws, every later call of that instance throws too, and a new controller starts against the
 * same API server and cell ports. An agent stop: the agent's mover and state store are instrumented per
 * instance (a boundary before every object written and after every record saved); the instance is stopped
 * and a new one started. The cases run a few at a time in one world; a controller restart is then an extra
 * stop at a boundary for the other clusters, which must survive it too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { specRenderer } from '../cli/load.js';
import { isPaused, type ListedObject } from '../core/move/graph.js';
import type { LatticeCluster } from '../core/spec/model.js';
import { decodeState } from '../controller/state.js';
import { eventually } from '../controller/testing.js';
import { createMover, type Mover } from '../kube/mover.js';
import { secretSelfManagementStore, type SelfManagementStore } from '../agent/state.js';
import type { AgentOptions } from '../agent/agent.js';
import { argoCdObjectsOf, startWorld, type World } from '../sim/world.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';
import { capiObjects, liveObjects, type Obj } from './support/pivot.js';

const renderer = specRenderer();
const silent = pino({ level: 'silent' });

/** What stops where: a point and which occurrence of it (counted per cluster, across instances). */
interface Stop {
  readonly side: 'controller' | 'agent';
  readonly point: string;
  readonly occurrence: number;
}

interface Case {
  readonly name: string;
  /** A stop while pivoting, and one while unpivoting (or while aborting). */
  readonly stops: readonly Stop[];
  /**
   * Delete the cluster right after the first stop, before the pivot completes: the move is given up
   * ('aborted'), or, once MoveComplete may have gone out, completed ('completed') and then unpivoted.
   */
  readonly deleteMidPivot?: 'aborted' | 'completed';
}

const c = (point: string, occurrence = 1): Stop => ({ side: 'controller', point, occurrence });
const a = (point: string, occurrence = 1): Stop => ({ side: 'agent', point, occurrence });

const CONTROLLER_PIVOT = [c('pivot:start'), c('pivot:pause-cluster'), c('pivot:pause-objects'), c('pivot:batch'), c('pivot:batch', 3), c('pivot:completing'), c('pivot:complete'), c('pivot:record'), c('pivot:delete'), c('pivot:delete', 2), c('pivot:shadow'), c('pivot:shadow', 3), c('pivot:cleaned')];
const CONTROLLER_UNPIVOT = [c('unpivot:request'), c('unpivot:import'), c('unpivot:record'), c('unpivot:release'), c('unpivot:released'), c('unpivot:unpause'), c('teardown:delete')];
const AGENT_PIVOT = [a('agent:receive'), a('agent:receive', 12), a('agent:unpause'), a('agent:unpause', 5), a('agent:saved-pivot')];
const AGENT_UNPIVOT = [a('agent:pause'), a('agent:pause', 5), a('agent:remove'), a('agent:remove', 10), a('agent:saved-release')];

const label = (s: Stop) => `${s.side} ${s.point}${s.occurrence > 1 ? `#${s.occurrence}` : ''}`;
const pair = (pivot: readonly Stop[], unpivot: readonly Stop[]): Case[] => pivot.map((p, i) => {
  const u = unpivot[i % unpivot.length] as Stop;
  return { name: `${label(p)}, then ${label(u)}`, stops: [p, u] };
});
const CASES: Case[] = [
  ...pair(CONTROLLER_PIVOT, CONTROLLER_UNPIVOT),
  ...pair(AGENT_PIVOT, AGENT_UNPIVOT),
  // Deleted while the move is half done: the pivot is given up (child copies released, source unpaused).
  ...['abort:release', 'abort:unpause', 'abort:record'].map((point): Case => ({ name: `controller pivot:batch#2 then deletion, then controller ${point}`, stops: [c('pivot:batch', 2), c(point)], deleteMidPivot: 'aborted' })),
  // Deleted after MoveComplete may have gone out: rolled forward (completed), then unpivoted.
  { name: 'controller pivot:complete then deletion (completed), then controller unpivot:import', stops: [c('pivot:complete'), c('unpivot:import')], deleteMidPivot: 'completed' },
  { name: 'agent agent:saved-pivot then deletion (completed), then controller unpivot:release', stops: [a('agent:saved-pivot'), c('unpivot:release')], deleteMidPivot: 'completed' },
];

class Halt extends Error {
  constructor(what: string) {
    super(`simulated stop: ${what}`);
  }
}

/** One case's bookkeeping. */
class Plan {
  readonly hits = new Map<string, number>();
  readonly done: Stop[] = [];
  readonly violations: string[] = [];
  teardownOpen = false;
  atTeardown = false;
  deleted = false;
  original?: string[];
  readonly pending: Promise<void>[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(readonly c: Case) {}

  /** Counts a hit and says whether this is where the next planned stop falls. */
  hit(side: Stop['side'], point: string): boolean {
    const key = `${side} ${point}`;
    const n = (this.hits.get(key) ?? 0) + 1;
    this.hits.set(key, n);
    const next = this.c.stops[this.done.length];
    if (!next || next.side !== side || next.point !== point || next.occurrence !== n) return false;
    this.done.push(next);
    this.notify();
    return true;
  }

  notify(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }

  until(check: () => boolean, what: string, timeoutMs = 90_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.c.name}: ${what} did not happen within ${timeoutMs} ms (stops so far: ${this.done.map(label).join(', ') || 'none'}; hits: ${[...this.hits].map(([k, v]) => `${k}×${v}`).join(', ')})`)), timeoutMs);
      this.waiters.push({ check, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

const plans = new Map<string, Plan>();
let world: World;
const deadControllers = new Set<number>();

/** Objects of the namespace by `Kind/name`. */
const keys = (objects: readonly ListedObject[]) => objects.filter((o) => !(o.kind === 'Secret' && o.metadata.name === 'lattice-state')).map((o) => `${o.kind}/${o.metadata.name}`).sort();

/** Never live on both sides at once: checked whenever something stops. */
async function checkNotLiveTwice(plan: Plan, cluster: string): Promise<void> {
  const child = world.children.get(cluster);
  if (!child) return;
  const ns = `capi-${cluster}`;
  const [parent, inChild] = await Promise.all([capiObjects(world.parent.kc, ns), capiObjects(child.sim.kc, ns)]);
  const liveParent = new Set(keys(liveObjects(parent)));
  const both = keys(liveObjects(inChild)).filter((k) => liveParent.has(k));
  if (both.length > 0) plan.violations.push(`live in both clusters after ${label(plan.done[plan.done.length - 1] as Stop)}: ${both.join(', ')}`);
}

function controllerCheckpoint(incarnation: number) {
  return async (point: string, cluster: string): Promise<void> => {
    if (deadControllers.has(incarnation)) throw new Halt(`controller ${incarnation} is stopped`);
    const plan = plans.get(cluster);
    if (!plan) return;
    if (point === 'pivot:start' && !plan.original) {
      // What the pivot starts from, read while the controller waits here: nothing has moved yet.
      plan.original = keys(await capiObjects(world.parent.kc, `capi-${cluster}`));
      plan.notify();
    }
    // The abort cases: after the first stop, the pivot goes no further until the cluster is deleted.
    if (plan.c.deleteMidPivot && plan.done.length > 0 && !plan.deleted && point.startsWith('pivot:')) throw new Halt('pivot held by the test');
    if (plan.hit('controller', point)) {
      deadControllers.add(incarnation);
      plan.pending.push(checkNotLiveTwice(plan, cluster));
      void world.restartController();
      throw new Halt(`controller ${incarnation} at ${point}`);
    }
    if (point === 'teardown:delete' && !plan.teardownOpen) {
      // Held before Cluster API tears anything down, so the test can look at what came back.
      plan.atTeardown = true;
      plan.notify();
      throw new Halt('teardown held by the test');
    }
  };
}

/** The agent's mover and state store, with a boundary before every object it writes and after every record it saves. */
function instrumentedAgent(cluster: string): Partial<AgentOptions> {
  const child = world.children.get(cluster);
  if (!child) throw new Error(`no child ${cluster}`);
  const real: Mover = createMover({ kubeConfig: child.sim.kc, fieldManager: 'lattice-agent', log: silent, apiVersions: renderer.versions.apiVersions });
  const realState: SelfManagementStore = secretSelfManagementStore({ core: child.sim.core, namespace: 'lattice-system', log: silent });
  let dead = false;
  const stop = async (point: string) => {
    if (dead) throw new Halt(`agent of ${cluster} is stopped`);
    const plan = plans.get(cluster);
    if (!plan?.hit('agent', point)) return;
    dead = true;
    plan.pending.push(checkNotLiveTwice(plan, cluster));
    void world.startAgent(cluster);
    throw new Halt(`agent of ${cluster} at ${point}`);
  };
  const each = async <T>(point: string, objects: readonly T[], f: (o: T) => Promise<number>): Promise<number> => {
    let n = 0;
    for (const o of objects) {
      await stop(point);
      n += await f(o);
    }
    return n;
  };
  const mover: Mover = {
    list: async (ns) => {
      if (dead) throw new Halt(`agent of ${cluster} is stopped`);
      return real.list(ns);
    },
    async receive(ns, objects, options) {
      // One object at a time through the real receiver: its uid map is rebuilt from what exists, so this is
      // what one call does, with a boundary between objects.
      const out: Awaited<ReturnType<Mover['receive']>> = { mappings: [], errors: [] };
      for (const o of objects) {
        await stop('agent:receive');
        const r = await real.receive(ns, [o], options);
        out.mappings.push(...r.mappings);
        out.errors.push(...r.errors);
      }
      return out;
    },
    pause: (objects) => each('agent:pause', objects, (o) => real.pause([o])),
    unpause: (objects) => each('agent:unpause', objects, (o) => real.unpause([o])),
    remove: (objects) => each('agent:remove', objects, (o) => real.remove([o])),
    async patch(o, p) {
      await stop('agent:patch');
      return real.patch(o, p);
    },
    async apply(o) {
      await stop('agent:apply');
      return real.apply(o);
    },
  };
  const selfManagement: SelfManagementStore = {
    current: () => realState.current(),
    load: () => realState.load(),
    async save(next) {
      if (dead) throw new Halt(`agent of ${cluster} is stopped`);
      const before = realState.current();
      await realState.save(next);
      // After the record is written and before the Ack goes: the parent never hears of it from this instance.
      if (next.pivotComplete && !before?.pivotComplete) await stop('agent:saved-pivot');
      else if (!next.pivotComplete && before?.pivotComplete) await stop('agent:saved-release');
    },
  };
  return { mover, selfManagement, backoff: { initialMs: 20, maxMs: 200, stableMs: 100 } };
}

const rendered = (cluster: LatticeCluster): Obj[] => argoCdObjectsOf(cluster);

beforeAll(async () => {
  world = await startWorld({
    // Polling kept slow: the cases run side by side and the machine has two cores; watches drive the work.
    repo: REPO, upstreamCrds: `${SHARED}/upstream-crds`, capiIntervalMs: 200, argoPollMs: 200, heartbeatIntervalMs: 1000,
    controllerConfig: { concurrency: 4, progressIntervalMs: 2000 },
    checkpoint: controllerCheckpoint,
    agentOptions: instrumentedAgent,
  });
}, 60_000);
afterAll(async () => {
  await world.stop();
}, 60_000);

const lcOf = async (name: string): Promise<Obj | undefined> => {
  try {
    return (await world.parent.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name })) as Obj;
  } catch {
    return undefined;
  }
};
const phaseOf = async (name: string) => ((await lcOf(name))?.status as { phase?: string } | undefined)?.phase;
const stateOf = async (name: string) => decodeState((await world.parent.core.readNamespacedSecret({ namespace: `capi-${name}`, name: 'lattice-state' })).data);

describe('the pivot and the unpivot survive a stop at every step boundary', () => {
  const dev = exampleClusters().find((x) => x.metadata.name === 'dev');
  if (!dev) throw new Error('no dev example');

  it.concurrent.each(CASES.map((k, i) => [k.name, k, i] as const))('%s', async (_name, k, i) => {
    const name = `crash-${i}`;
    const ns = `capi-${name}`;
    const plan = new Plan(k);
    plans.set(name, plan);
    const cluster: LatticeCluster = { ...dev, metadata: { ...dev.metadata, name } };
    const git = new Set(renderer.plan(cluster).objects.filter((o) => o.namespace === ns).map((o) => `${o.kind}/${o.name}`));
    const child = await world.addChild(name);
    const sync = world.argo.sync(rendered(cluster));
    await eventually(() => child.sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'lattice-agent-bootstrap' }), { timeoutMs: 60_000 });
    await world.startAgent(name);
    // The original objects, once Cluster API has brought everything up (read as the pivot starts).
    await plan.until(() => plan.original !== undefined, 'the pivot start');
    const original = plan.original ?? [];
    expect(original.length).toBeGreaterThan(20);

    if (k.deleteMidPivot) {
      await plan.until(() => plan.done.length >= 1, 'the stop during the pivot');
      await world.parent.custom.deleteClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name });
      plan.deleted = true;
    } else {
      // WHEN the pivot runs with a stop at the planned boundary, THEN it recovers to Ready
      await eventually(async () => expect(await phaseOf(name)).toBe('Ready'), { timeoutMs: 120_000 });
      expect(plan.done.map(label)).toEqual([label(k.stops[0] as Stop)]);
      const [inParent, inChild] = await Promise.all([capiObjects(world.parent.kc, ns), capiObjects(child.sim.kc, ns)]);
      // every object once, live in the child only, the set unchanged
      expect(keys(inChild)).toEqual(original);
      expect(keys(liveObjects(inChild))).toEqual(keys(inChild.filter((o) => o.apiVersion !== 'v1')));
      expect(liveObjects(inParent)).toEqual([]);
      // the parent keeps exactly its git-managed objects, as shadows
      expect(keys(inParent)).toEqual(original.filter((key) => git.has(key)));
      for (const o of inParent.filter((x) => x.apiVersion !== 'v1')) {
        expect([o.metadata.annotations?.['lattice.dev/pivoted-to'], isPaused(o), o.metadata.finalizers ?? []]).toEqual([name, true, []]);
      }
      // markers agree
      const state = await stateOf(name);
      expect(state).toMatchObject({ pivotComplete: true, pivotCleanupComplete: true, unpivotImportComplete: false });
      const self = world.children.get(name)?.agent?.selfManagement.current();
      expect(self).toMatchObject({ pivotComplete: true, moveId: state.pivot?.moveId });
      expect(await sync).toMatchObject({ phase: 'Succeeded' });
      // WHEN the LatticeCluster is deleted
      await world.parent.custom.deleteClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name });
    }

    // THEN, with a stop during the unpivot (or the abort), the objects come back before anything is torn down
    await plan.until(() => plan.atTeardown, 'the teardown', 120_000);
    expect(plan.done.map(label)).toEqual(k.stops.map(label));
    const [back, left] = await Promise.all([capiObjects(world.parent.kc, ns), capiObjects(child.sim.kc, ns)]);
    expect(keys(back)).toEqual(original);
    expect(keys(liveObjects(back))).toEqual(keys(back.filter((o) => o.apiVersion !== 'v1')));
    expect(back.filter((o) => o.metadata.annotations?.['lattice.dev/pivoted-to'] !== undefined)).toEqual([]);
    expect(left).toEqual([]);
    const state = await stateOf(name);
    if (k.deleteMidPivot === 'aborted') expect(state).toMatchObject({ pivotComplete: false });
    else expect(state).toMatchObject({ pivotComplete: true, unpivotImportComplete: true, unpivotReleased: true });
    expect(state.pivot === undefined).toBe(k.deleteMidPivot === 'aborted');
    // AND the teardown finishes
    plan.teardownOpen = true;
    await eventually(async () => expect(await lcOf(name)).toBeUndefined(), { timeoutMs: 60_000 });
    await Promise.all(plan.pending);
    expect(plan.violations).toEqual([]);
    await world.removeChild(name);
  }, 300_000);
});
