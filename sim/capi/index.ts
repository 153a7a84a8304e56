/**
 * A simulated Cluster API for tests and demos: see sim/README.md ("sim/capi") for what it does and does not
 * simulate.
 */
export { createCapiSim, type CapiSim, type CapiSimOptions, type ReconcileReport } from './sim.js';
export type { ClusterKey, ClusterReport, ClusterState, Fault } from './reconcile.js';
export { CAPI_STEPS, STEP_CONDITIONS, type CapiStep } from './status.js';
export { CLUSTER_FINALIZER, CLUSTER_SECRET_TYPE, CONTROL_PLANES } from './objects.js';
