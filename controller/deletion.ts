/**
 * Deleting a LatticeCluster (DESIGN §7, a cluster that never pivoted is simply deleted through Cluster API):
 * the steps run while deletionTimestamp is set, and the finalizer removal once they are all done.
 */
import { waiting, LatticeError } from '../core/errors.js';
import { abortPivot, stateLost, unpivot } from './pivot.js';
import { clusterFacts } from './capi.js';
import { isKubeError } from './kube.js';
import { isOurs } from './registration.js';
import { ANNOTATION, FINALIZER, LABEL, LATTICE_CLUSTER, NAMES, NAMESPACE, SECRET } from './resources.js';
import { EMPTY_STATE } from './state.js';
import { register, removeRegistration } from './steps.js';
import { event, guarded, kubeFailure, readState, rec, secretOf, type Ctx, type ReconcileDeps, type ReconcileResult, type Step } from './context.js';

/** The deletion steps, in order (reconcile.ts lists what each does). */
export const deleteSteps: readonly Step[] = [
  async function protection(ctx) {
    // Deletion is this generation's spec: observed, whatever it waits for.
    ctx.accepted = true;
    const annotation = ctx.lc.metadata.annotations?.[ANNOTATION.deletionProtection];
    if (annotation === 'true') {
      ctx.deletion = { protected: true, unpivoting: false };
      return;
    }
    ctx.deletion = { protected: false, unpivoting: false };
  },
  async function markers(ctx, deps) {
    const ns = await guarded(`reading Namespace ${ctx.namespace}`, () => deps.kube.get(NAMESPACE, ctx.namespace));
    const read = ns ? await readState(ctx, deps) : { state: EMPTY_STATE };
    ctx.state = read.state;
    ctx.agentInfo = deps.agents?.agent(ctx.name);
    // Tearing down a cluster that holds its own objects while the parent's markers forgot it would orphan it.
    // (No state Secret at all: the cleanup below already ran, the teardown is over.)
    const lost = read.live ? stateLost(ctx) : undefined;
    if (lost) throw lost;
    // A pivot that never completed: both sides are paused; finish or give up the move even when the deletion
    // is protected, so that one of them manages the cluster again.
    if (ctx.state.pivot && !ctx.state.pivotComplete) await abortPivot(ctx, deps, 'the LatticeCluster is being deleted');
  },
  async function unpivotFirst(ctx, deps) {
    if (ctx.deletion?.protected || !ctx.state?.pivotComplete) return;
    // DESIGN §7 unpivot: the child holds the live CAPI objects; they come back before anything is torn down.
    ctx.deletion = { protected: false, unpivoting: !ctx.state.unpivotReleased };
    if (ctx.deletion.unpivoting && rec(ctx.statusBefore).phase !== 'Unpivoting') {
      // Status says Unpivoting before anything moves; that write's watch event brings the next reconcile.
      throw waiting('Unpivoting', 'the cluster manages itself: its Cluster API objects come back before it is torn down');
    }
    await unpivot(ctx, deps);
    ctx.deletion = { protected: false, unpivoting: false };
  },
  async function registration(ctx, deps) {
    // Once the objects are back (or never left), the engine reaches the child directly again while it is torn
    // down: the proxy ends with the child's agent.
    if (ctx.deletion?.protected) return;
    await register(ctx, deps);
  },
  async function teardown(ctx, deps) {
    if (ctx.deletion?.protected || ctx.self) return;
    const r = deps.resources.capiCluster;
    const name = NAMES.capiCluster(ctx.name);
    const id = `Cluster ${ctx.namespace}/${name}`;
    const cluster = await guarded(`reading ${id}`, () => deps.kube.get(r, name, ctx.namespace)).catch((e: unknown) => {
      // No CAPI installed at all: nothing to tear down.
      if (e instanceof LatticeError && e.code === 'ResourceNotServed') return undefined;
      throw e;
    });
    if (!cluster) return;
    if (!cluster.metadata.deletionTimestamp) {
      await deps.checkpoint?.('teardown:delete', ctx.name);
      await guarded(`deleting ${id}`, () => deps.kube.remove(r, name, ctx.namespace));
      deps.log.info({ cluster: ctx.name }, 'cluster api cluster deletion started');
      await event(ctx, deps, { type: 'Normal', reason: 'DeletionStarted', message: `${id} deleted: Cluster API tears the infrastructure down` });
    }
    const facts = clusterFacts(cluster);
    const phase = facts.phase ? ` (Cluster phase ${facts.phase})` : '';
    throw waiting('WaitingForClusterDeletion', `waiting for Cluster API to delete ${id}${phase}`);
  },
  async function cleanup(ctx, deps) {
    if (ctx.deletion?.protected) return;
    await removeRegistration(deps, ctx.name);
    const ref = rec(ctx.lc.spec).providerRef;
    const owned = [NAMES.stateSecret, ...(typeof ref === 'string' ? [NAMES.credentialsSecret(ref)] : [])];
    for (const name of owned) {
      const live = secretOf(await guarded(`reading Secret ${ctx.namespace}/${name}`, () => deps.kube.get(SECRET, name, ctx.namespace)));
      if (live && isOurs(live) && live.metadata.labels?.[LABEL.cluster] === ctx.name) {
        await guarded(`deleting Secret ${ctx.namespace}/${name}`, () => deps.kube.remove(SECRET, name, ctx.namespace));
      }
    }
    ctx.finished = true;
  },
];

/** Everything is torn down: drop the finalizer (the object then goes). Status is not written any more. */
export async function finishDeletion(ctx: Ctx, deps: ReconcileDeps): Promise<ReconcileResult> {
  const finalizers = (ctx.lc.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
  try {
    if (finalizers.length !== (ctx.lc.metadata.finalizers ?? []).length) {
      await deps.kube.mergePatch(LATTICE_CLUSTER, ctx.name, undefined, { metadata: { resourceVersion: ctx.lc.metadata.resourceVersion, finalizers } });
      deps.log.info({ cluster: ctx.name }, 'cluster deleted; finalizer removed');
      await event(ctx, deps, { type: 'Normal', reason: 'Deleted', message: ctx.self ? 'the registration of this parent cluster is removed; nothing was torn down' : 'the cluster is torn down and its registration removed' });
    }
  } catch (e) {
    if (isKubeError(e, 404)) return { result: 'gone', retry: false, statusWritten: false };
    deps.log.warn({ cluster: ctx.name, err: kubeFailure(e, 'removing the finalizer').message }, 'finalizer not removed; retrying');
    return { result: 'error', retry: true, statusWritten: false };
  }
  return { result: 'gone', retry: false, statusWritten: false };
}

