/**
 * Health as Argo CD assesses it, for the simulated Argo CD: our argocd-cm Lua checks first (the shipped
 * patch, run in a Lua VM), then the upstream built-in checks our plan meets that we do not replace. The
 * built-in mirrors argo-cd resource_customizations/cluster.x-k8s.io/MachineDeployment/health.lua
 * (decision tables in research/argocd-cmp.md §6.2; messages are ours); kinds with no check report
 * nothing, and Argo CD does not wait on them.
 */
import type { HealthResult } from '../health/lua.js';

export type Health = HealthResult;

/** Anything that can assess an object: the Lua runner, or a stack of checks. */
export interface HealthAssessor {
  health(obj: Record<string, unknown>): Health | undefined;
}

type Obj = Record<string, unknown>;
const rec = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

/** Upstream built-in: MachineDeployment health follows `status.phase`. */
function machineDeployment(obj: Obj): Health {
  if (rec(obj.spec).paused === true) return { status: 'Suspended', message: 'MachineDeployment is paused' };
  const phase = rec(obj.status).phase;
  if (phase === 'Running') return { status: 'Healthy', message: 'Machines are running under this deployment' };
  if (phase === 'ScalingUp') return { status: 'Progressing', message: 'Cluster is spinning up new machines' };
  if (phase === 'ScalingDown') return { status: 'Progressing', message: 'Cluster is stopping machines' };
  if (phase === 'Failed') return { status: 'Degraded', message: 'MachineDeployment is failed' };
  return { status: 'Progressing', message: 'Waiting for machines' };
}

const BUILT_IN: Readonly<Record<string, (obj: Obj) => Health>> = {
  'cluster.x-k8s.io/MachineDeployment': machineDeployment,
};

/** argocd-cm customizations take precedence over built-ins, as in Argo CD's lookup order. */
export function withBuiltIns(custom: HealthAssessor): HealthAssessor {
  return {
    health(obj) {
      const own = custom.health(obj);
      if (own) return own;
      const group = String(obj.apiVersion ?? '').split('/').slice(0, -1).join('/');
      return BUILT_IN[`${group}/${String(obj.kind)}`]?.(obj);
    },
  };
}
