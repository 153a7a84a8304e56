/**
 * The bootstrap stages of DESIGN §4, in order: one table shared by every flavor (Argo CD sync waves,
 * Flux dependsOn) and by the controller (which maps stages to conditions).
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

export interface StageInfo {
  readonly stage: Stage;
  /** Argo CD sync wave; Flux orders by dependsOn in the same order. */
  readonly wave: number;
  /** What must hold before the next stage starts. */
  readonly gate: string;
}

/** Stage order. Index in this table is the only source of ordering between stages. */
export const STAGES: readonly StageInfo[] = [
  { stage: Stage.cluster, wave: 0, gate: 'applied' },
  { stage: Stage.infrastructure, wave: 1, gate: 'control plane initialized (API reachable)' },
  { stage: Stage.cni, wave: 2, gate: 'CNI DaemonSet ready, workers ready' },
  { stage: Stage.certificates, wave: 3, gate: 'cert-manager healthy' },
  { stage: Stage.mesh, wave: 4, gate: 'mesh healthy' },
  { stage: Stage.secrets, wave: 5, gate: 'External Secrets healthy' },
  { stage: Stage.metrics, wave: 6, gate: 'metrics agent healthy' },
  { stage: Stage.features, wave: 7, gate: 'enabled features healthy' },
  { stage: Stage.providers, wave: 8, gate: 'Cluster API providers healthy' },
  { stage: Stage.agent, wave: 9, gate: 'agent connected to the parent' },
];

const index = new Map(STAGES.map((s, i) => [s.stage, i]));

/** Position of a stage in bootstrap order. */
export function stageIndex(stage: Stage): number {
  return index.get(stage) ?? STAGES.length;
}
