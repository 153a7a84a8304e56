/**
 * The bootstrap stages of DESIGN §4, in order: one table shared by every flavor (Argo CD sync waves,
 * Flux dependsOn), by `lattice plan`, and by the controller (which maps stages to conditions).
 */

export const Stage = {
  cluster: 'cluster',
  infrastructure: 'infrastructure',
  cni: 'cni',
  certificates: 'certificates',
  mesh: 'mesh',
  secrets: 'secrets',
  metrics: 'metrics',
  features: 'features',
  providers: 'providers',
  agent: 'agent',
} as const;
export type Stage = (typeof Stage)[keyof typeof Stage];

/**
 * The LatticeCluster status conditions of DESIGN §5, one per stage (the features stage has one per
 * feature: the addon catalog names it). kstatus `Ready`/`Reconciling`/`Stalled` are not stage conditions.
 */
export const StageCondition = {
  InfrastructureReady: 'InfrastructureReady',
  ControlPlaneInitialized: 'ControlPlaneInitialized',
  CNI: 'CNI',
  CertManager: 'CertManager',
  Mesh: 'Mesh',
  Secrets: 'Secrets',
  Metrics: 'Metrics',
  Monitoring: 'Monitoring',
  Backups: 'Backups',
  GPU: 'GPU',
  Providers: 'Providers',
  AgentConnected: 'AgentConnected',
  Pivoted: 'Pivoted',
} as const;
export type StageCondition = (typeof StageCondition)[keyof typeof StageCondition];

export interface StageInfo {
  readonly stage: Stage;
  /** Argo CD sync wave; Flux orders by dependsOn in the same order. Strictly increasing down the table. */
  readonly wave: number;
  /** The conditions the controller reports for this stage; the last one is the gate. */
  readonly conditions: readonly StageCondition[];
  /** What must hold before the next stage starts: what the Argo CD health checks and Flux wait for. */
  readonly waitsFor: string;
}

/** Stage order. Index in this table is the only source of ordering between stages. */
export const STAGES: readonly StageInfo[] = [
  // The spec object is healthy once the controller has accepted it (and copied the provider
  // credentials into capi-X), not once the cluster is up: waiting for that here would deadlock the sync.
  { stage: Stage.cluster, wave: 0, conditions: [], waitsFor: 'the Lattice controller has accepted the spec (credentials copied)' },
  // Control plane initialized, not Ready: nodes cannot turn Ready before the CNI of the next stage.
  { stage: Stage.infrastructure, wave: 1, conditions: [StageCondition.InfrastructureReady, StageCondition.ControlPlaneInitialized], waitsFor: 'control plane initialized (API reachable)' },
  { stage: Stage.cni, wave: 2, conditions: [StageCondition.CNI], waitsFor: 'CNI healthy, worker MachineDeployments running' },
  { stage: Stage.certificates, wave: 3, conditions: [StageCondition.CertManager], waitsFor: 'cert-manager healthy' },
  { stage: Stage.mesh, wave: 4, conditions: [StageCondition.Mesh], waitsFor: 'Istio ambient healthy' },
  { stage: Stage.secrets, wave: 5, conditions: [StageCondition.Secrets], waitsFor: 'External Secrets healthy' },
  { stage: Stage.metrics, wave: 6, conditions: [StageCondition.Metrics], waitsFor: 'metrics agent healthy' },
  { stage: Stage.features, wave: 7, conditions: [StageCondition.Monitoring, StageCondition.Backups, StageCondition.GPU], waitsFor: 'enabled features healthy' },
  { stage: Stage.providers, wave: 8, conditions: [StageCondition.Providers], waitsFor: 'Cluster API providers healthy' },
  { stage: Stage.agent, wave: 9, conditions: [StageCondition.AgentConnected], waitsFor: 'agent connected to the parent' },
];

const index = new Map(STAGES.map((s, i) => [s.stage, i]));

/** Position of a stage in bootstrap order. */
export function stageIndex(stage: Stage): number {
  return index.get(stage) ?? STAGES.length;
}

/** The table row of a stage. */
export function stageInfo(stage: Stage): StageInfo {
  const info = STAGES[stageIndex(stage)];
  if (!info) throw new Error(`unknown stage ${stage}`);
  return info;
}

/** True when `value` names a stage. */
export const isStage = (value: unknown): value is Stage => typeof value === 'string' && index.has(value as Stage);
