/**
 * One reconcile pass over one Cluster: read everything that belongs to it, decide whether the next step
 * may complete (delays, faults, pause, prerequisites), then make the world match that level: create what
 * the CAPI controllers would have created by then and write each status that differs. Every write is
 * idempotent and conditional, so a pass over an unchanged world writes nothing.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { conditionStatus, sameJson, withPaused } from './conditions.js';
import {
  ChildNodes, httpCode, int, isJson, list, rec, schemaHas, str, type Json, type KindInfo, type KObject, type Kube, type SecretObject,
} from './kube.js';
import {
  ANNOTATION, bootstrapDataSecret, bootstrapNodeLabels, certificateData, CLUSTER_FINALIZER, cloned, CONTROL_PLANES, CORE_API_VERSION,
  instanceKind, kubeadmControlPlaneConfig, kubeconfigYaml, LABEL, labelValue, machine, node, ownedBy, ownerRef, secret, suffix,
  syncedNodeLabels, templateHash, toRef, withOwner, type ControlPlaneProvider, type Ref,
} from './objects.js';
import {
  bootstrapStatus, CAPI_STEPS, clusterStatus, controlPlaneStatus, done, infraStatus, machineDeploymentStatus, machineHealthCheckStatus,
  machineSetStatus, machineStatus, type CapiStep, type Counts, type Failure,
} from './status.js';

export interface ClusterKey {
  readonly namespace: string;
  readonly name: string;
}

/** A fault injected into one cluster: `stall` never completes the step, `fail` marks it failed. */
export interface Fault {
  readonly step: CapiStep;
  readonly mode: 'stall' | 'fail';
  /** Shown in the failed step's condition and failureMessage. @default "simulated failure of the <step> step" */
  readonly message?: string;
}

export type ClusterState = 'progressing' | 'ready' | 'stalled' | 'failed' | 'paused' | 'pivoted' | 'deleting' | 'deleted';

/** What one pass did with one Cluster. */
export interface ClusterReport {
  readonly namespace: string;
  readonly name: string;
  /** The last step completed, if any. */
  readonly reached: CapiStep | undefined;
  readonly state: ClusterState;
}

export interface Settings {
  readonly log: Logger;
  readonly stepDelayMs: Readonly<Record<CapiStep, number>>;
  readonly deletionDelayMs: number;
  readonly apiVersions: Readonly<Record<string, string>>;
  readonly endpoint: (cluster: ClusterKey) => { host: string; port: number };
  readonly childServer: ((cluster: ClusterKey) => string | undefined) | undefined;
  readonly childKubeConfig: ((cluster: ClusterKey) => KubeConfig | undefined) | undefined;
  readonly fault: (cluster: ClusterKey) => Fault | undefined;
}

/**
 * What the simulator remembers between passes, by Cluster uid. The level is also derivable from the
 * Cluster's status (a restarted simulator, or one in a child after a move, re-derives it), but "machines
 * created, none Ready" looks the same as "no machines wanted", so the last level written is kept.
 */
export interface Memory {
  readonly levels: Map<string, number>;
  /** When the simulator started waiting for the next step at a level (the step delays count from here). */
  readonly waits: Map<string, { level: number; since: number }>;
  readonly deleting: Map<string, number>;
  /** The last state logged, so only transitions are logged. */
  readonly logged: Map<string, string>;
}

export const newMemory = (): Memory => ({ levels: new Map(), waits: new Map(), deleting: new Map(), logged: new Map() });

const BOOTSTRAP_GROUP = 'bootstrap.cluster.x-k8s.io';

/** A referenced object: its served kind (for writes) and the object, if it exists. */
interface Linked {
  readonly info: KindInfo;
  readonly obj: KObject | undefined;
}

interface Pool {
  readonly md: KObject;
  readonly bootstrap: Linked | undefined;
  readonly infra: Linked | undefined;
  readonly bootstrapRef: Ref | undefined;
  readonly infraRef: Ref | undefined;
}

interface World {
  readonly key: ClusterKey;
  cluster: KObject;
  infra: Linked | undefined;
  cp: Linked | undefined;
  readonly provider: ControlPlaneProvider | undefined;
  readonly cpBootstrap: KindInfo | undefined;
  readonly cpTemplate: Linked | undefined;
  readonly cpTemplateRef: Ref | undefined;
  readonly pools: Pool[];
  readonly mhcs: KObject[];
  machineSets: KObject[];
  machines: KObject[];
  /** Bootstrap configs and infra machines of the cluster, by kind. */
  readonly children: Map<string, { info: KindInfo; objs: KObject[] }>;
  secrets: SecretObject[];
}

const annotations = (o: KObject) => o.metadata.annotations ?? {};
const isPaused = (o: KObject) => Object.hasOwn(annotations(o), ANNOTATION.paused);
const isDeleting = (o: { metadata: { deletionTimestamp?: string } }) => o.metadata.deletionTimestamp !== undefined;
const spec = (o: KObject | undefined) => rec(o?.spec);
const keyOf = (o: KObject): ClusterKey => ({ namespace: o.metadata.namespace ?? '', name: o.metadata.name });
const clusterId = (k: ClusterKey) => `${k.namespace}/${k.name}`;

/** Steps done according to the Cluster's own status (used when the simulator has no memory of it). */
export function levelFromStatus(cluster: KObject): number {
  const status = rec(cluster.status);
  if (conditionStatus(status.conditions, 'Available') === 'True') return 4;
  const init = rec(status.initialization);
  if (init.controlPlaneInitialized === true) {
    const workers = rec(status.workers);
    const desired = int(workers.desiredReplicas) ?? 0;
    return desired > 0 && (int(workers.replicas) ?? 0) >= desired ? 3 : 2;
  }
  return init.infrastructureProvisioned === true ? 1 : 0;
}

/** `spec.replicas`, else the autoscaler's minimum, else 1: the MachineDeployment defaulting webhook (capi.md B.5). */
export function desiredReplicas(md: KObject): number {
  const replicas = int(spec(md).replicas);
  if (replicas !== undefined) return replicas;
  const min = Number(annotations(md)[ANNOTATION.autoscalerMin]);
  return Number.isInteger(min) && min >= 0 ? min : 1;
}

/** The label selector as the string CAPI puts in `status.selector`. */
function selectorString(matchLabels: Record<string, string>): string {
  return Object.keys(matchLabels).sort().map((k) => `${k}=${matchLabels[k] ?? ''}`).join(',');
}

function stringMap(v: unknown): Record<string, string> {
  return Object.fromEntries(Object.entries(rec(v)).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** metav1.LabelSelector matching (matchLabels and the four matchExpressions operators). */
function selects(selector: unknown, labels: Record<string, string>): boolean {
  const s = rec(selector);
  for (const [k, v] of Object.entries(stringMap(s.matchLabels))) if (labels[k] !== v) return false;
  for (const e of list(s.matchExpressions).map(rec)) {
    const key = str(e.key) ?? '';
    const values = list(e.values).filter((x): x is string => typeof x === 'string');
    const has = Object.hasOwn(labels, key);
    const ok = e.operator === 'In' ? has && values.includes(labels[key] ?? '')
      : e.operator === 'NotIn' ? !has || !values.includes(labels[key] ?? '')
        : e.operator === 'Exists' ? has : e.operator === 'DoesNotExist' ? !has : false;
    if (!ok) return false;
  }
  return true;
}

/** One pass: shared discovery, the clock reading of this pass, and the simulator's memory. */
export class Pass {
  constructor(
    private readonly kube: Kube,
    private readonly s: Settings,
    private readonly mem: Memory,
    private readonly now: Date,
  ) {}

  private get nowMs(): number {
    return this.now.getTime();
  }

  /** A core CAPI kind at v1beta2, the contract whose shapes this simulator writes. */
  async core(kind: string): Promise<KindInfo> {
    const info = await this.kube.kindInfo(CORE_API_VERSION, kind);
    if (!info) throw new Error(`${CORE_API_VERSION} ${kind} is not served: install the Cluster API CRDs first`);
    return info;
  }

  private preferred(kind: string): string | undefined {
    return this.s.apiVersions[kind] ?? this.s.apiVersions[`${kind}Template`];
  }

  private async kindFor(apiGroup: string, kind: string): Promise<KindInfo | undefined> {
    const apiVersion = await this.kube.resolve(apiGroup, kind, this.preferred(kind));
    return apiVersion ? this.kube.kindInfo(apiVersion, kind) : undefined;
  }

  private async link(ref: Ref | undefined, namespace: string): Promise<Linked | undefined> {
    if (!ref) return undefined;
    const info = await this.kindFor(ref.apiGroup, ref.kind);
    return info ? { info, obj: await this.kube.get(info, namespace, ref.name) } : undefined;
  }

  // ---- reading -----------------------------------------------------------------------------------

  private async read(cluster: KObject): Promise<World> {
    const key = keyOf(cluster);
    const ns = key.namespace;
    const byCluster = `${LABEL.clusterName}=${key.name}`;
    const cs = spec(cluster);
    const [infra, cp] = await Promise.all([this.link(toRef(cs.infrastructureRef), ns), this.link(toRef(cs.controlPlaneRef), ns)]);
    const provider = cp ? CONTROL_PLANES[cp.info.kind] : undefined;
    const cpTemplateRef = toRef(rec(rec(spec(cp?.obj).machineTemplate).spec).infrastructureRef);
    const [mdInfo, mhcInfo, msInfo, machineInfo] = await Promise.all(
      ['MachineDeployment', 'MachineHealthCheck', 'MachineSet', 'Machine'].map((k) => this.core(k)),
    ) as [KindInfo, KindInfo, KindInfo, KindInfo];
    const [mds, mhcs, machineSets, machines, secrets, cpTemplate, cpBootstrap] = await Promise.all([
      this.kube.list(mdInfo, ns),
      this.kube.list(mhcInfo, ns),
      this.kube.list(msInfo, ns, byCluster),
      this.kube.list(machineInfo, ns, byCluster),
      this.kube.listSecrets(ns, byCluster),
      this.link(cpTemplateRef, ns),
      provider ? this.kindFor(BOOTSTRAP_GROUP, provider.bootstrapKind) : Promise.resolve(undefined),
    ]);
    const pools = await Promise.all(mds.filter((md) => spec(md).clusterName === key.name).map(async (md): Promise<Pool> => {
      const template = rec(rec(spec(md).template).spec);
      const bootstrapRef = toRef(rec(template.bootstrap).configRef);
      const infraRef = toRef(template.infrastructureRef);
      const [bootstrap, infraTemplate] = await Promise.all([this.link(bootstrapRef, ns), this.link(infraRef, ns)]);
      return { md, bootstrap, infra: infraTemplate, bootstrapRef, infraRef };
    }));
    // Bootstrap configs and infra machines: the instance kinds of every template in use, where served.
    const kinds = new Map<string, KindInfo>();
    if (cpBootstrap) kinds.set(`${cpBootstrap.apiVersion}/${cpBootstrap.kind}`, cpBootstrap);
    const templates = [cpTemplate, ...pools.flatMap((p) => [p.bootstrap, p.infra])];
    await Promise.all(templates.map(async (t) => {
      const info = t && await this.kube.kindInfo(t.info.apiVersion, instanceKind(t.info.kind));
      if (info) kinds.set(`${info.apiVersion}/${info.kind}`, info);
    }));
    const children = new Map<string, { info: KindInfo; objs: KObject[] }>();
    await Promise.all([...kinds].map(async ([id, info]) => children.set(id, { info, objs: await this.kube.list(info, ns, byCluster) })));
    return {
      key, cluster, infra, cp, provider, cpBootstrap, cpTemplate, cpTemplateRef, pools,
      mhcs: mhcs.filter((m) => spec(m).clusterName === key.name), machineSets, machines, children, secrets,
    };
  }

  // ---- the pass over one cluster -----------------------------------------------------------------

  async reconcile(cluster: KObject): Promise<ClusterReport> {
    const key = keyOf(cluster);
    const uid = cluster.metadata.uid ?? clusterId(key);
    const level = this.mem.levels.get(uid) ?? levelFromStatus(cluster);
    const report = (state: ClusterState, reached = level): ClusterReport => {
      this.logTransition(uid, key, state, reached);
      return { ...key, reached: reached > 0 ? CAPI_STEPS[reached - 1] : undefined, state };
    };
    // DESIGN §7: after a pivot the parent keeps inert shadows; nothing here may touch them.
    if (str(annotations(cluster)[ANNOTATION.pivotedTo])) return report('pivoted');
    const clusterPaused = spec(cluster).paused === true || isPaused(cluster);
    const world = await this.read(cluster);
    if (clusterPaused) {
      // util/annotations.IsPaused: spec.paused or the annotation stops every controller of the cluster,
      // deletion included; v1beta2 controllers only record that in their Paused condition.
      await this.markPaused(world);
      return report('paused');
    }
    if (isDeleting(cluster)) return this.reconcileDelete(world, uid, level, report);
    if (!(cluster.metadata.finalizers ?? []).includes(CLUSTER_FINALIZER)) {
      world.cluster = await this.kube.replace(await this.core('Cluster'), {
        ...world.cluster, metadata: { ...world.cluster.metadata, finalizers: [...(world.cluster.metadata.finalizers ?? []), CLUSTER_FINALIZER] },
      });
    }
    await this.adopt(world);
    const decision = this.decide(world, uid, level);
    await this.converge(world, decision.level, decision.failure);
    this.mem.levels.set(uid, decision.level);
    return report(decision.state, decision.level);
  }

  private decide(world: World, uid: string, level: number): { level: number; failure?: Failure; state: ClusterState } {
    const step = CAPI_STEPS[level];
    if (step === undefined) return { level, state: 'ready' };
    const fault = this.s.fault(world.key);
    if (fault?.step === step && fault.mode === 'stall') return { level, state: 'stalled' };
    if (fault?.step === step) {
      return { level, state: 'failed', failure: { step, message: fault.message ?? `simulated failure of the ${step} step` } };
    }
    if (!this.ready(world, step)) return { level, state: 'progressing' };
    let wait = this.mem.waits.get(uid);
    if (wait?.level !== level) {
      wait = { level, since: this.nowMs };
      this.mem.waits.set(uid, wait);
    }
    if (this.nowMs - wait.since < this.s.stepDelayMs[step]) return { level, state: 'progressing' };
    return { level: level + 1, state: level + 1 === CAPI_STEPS.length ? 'ready' : 'progressing' };
  }

  /** Whether what a step acts on is there and not paused. */
  private ready(world: World, step: CapiStep): boolean {
    const refs = spec(world.cluster);
    if (step === 'infrastructure') return refs.infrastructureRef === undefined || (world.infra?.obj !== undefined && !isPaused(world.infra.obj));
    if (step === 'controlPlane') {
      return refs.controlPlaneRef === undefined || (world.cp?.obj !== undefined && !isPaused(world.cp.obj) && world.provider !== undefined);
    }
    return true;
  }

  private logTransition(uid: string, key: ClusterKey, state: ClusterState, level: number): void {
    const now = `${state}/${level}`;
    const before = this.mem.logged.get(uid);
    if (before === now) return;
    this.mem.logged.set(uid, now);
    const fields = { cluster: clusterId(key), state, step: level > 0 ? CAPI_STEPS[level - 1] : undefined };
    if (state === 'failed' || state === 'stalled') this.s.log.info({ ...fields, next: CAPI_STEPS[level] }, 'cluster step held by a fault');
    else this.s.log.info(fields, 'cluster state changed');
  }

  // ---- ownership (the Cluster controller and the MachineDeployment/MHC/KCP controllers) -------------

  /**
   * Owner references CAPI controllers set on the git-managed objects (capi.md B.2): the Cluster controls
   * its infra cluster and control plane, and owns (non-controller) its MachineDeployments, health checks
   * and every `*Template` they reference. This is the chain `clusterctl move` walks.
   */
  private async adopt(w: World): Promise<void> {
    const adopt = async (linked: Linked | undefined, controller: boolean): Promise<KObject | undefined> => {
      const obj = linked?.obj;
      if (!linked || !obj || isPaused(obj) || isDeleting(obj)) return obj;
      const refs = withOwner(obj.metadata.ownerReferences, ownerRef(w.cluster, controller));
      if (!refs) return obj;
      return this.kube.replace(linked.info, { ...obj, metadata: { ...obj.metadata, ownerReferences: refs } });
    };
    w.infra = w.infra && { info: w.infra.info, obj: await adopt(w.infra, true) };
    w.cp = w.cp && { info: w.cp.info, obj: await adopt(w.cp, true) };
    const [mdInfo, mhcInfo] = await Promise.all([this.core('MachineDeployment'), this.core('MachineHealthCheck')]);
    for (let i = 0; i < w.pools.length; i++) {
      const p = w.pools[i];
      if (!p) continue;
      const md = await adopt({ info: mdInfo, obj: p.md }, false);
      w.pools[i] = { ...p, md: md ?? p.md, bootstrap: p.bootstrap && { info: p.bootstrap.info, obj: await adopt(p.bootstrap, false) },
        infra: p.infra && { info: p.infra.info, obj: await adopt(p.infra, false) } };
    }
    for (let i = 0; i < w.mhcs.length; i++) {
      const m = w.mhcs[i];
      if (m) w.mhcs[i] = (await adopt({ info: mhcInfo, obj: m }, false)) ?? m;
    }
    if (w.cpTemplate) await adopt(w.cpTemplate, false);
  }

  // ---- converging to a level ---------------------------------------------------------------------

  private async converge(w: World, level: number, failure: Failure | undefined): Promise<void> {
    const failed = (step: CapiStep) => (failure?.step === step ? failure.message : undefined);
    if (done(level, 'infrastructure')) await this.ensureEndpoint(w);
    if (w.infra?.obj) await this.status(w.infra.info, w.infra.obj, (o) => infraStatus(o, w.infra?.info.schema, done(level, 'infrastructure'), failed('infrastructure'), this.now));
    const cp = w.cp?.obj;
    if (done(level, 'controlPlane') && cp && !isPaused(cp) && w.provider) {
      await this.ensureSecrets(w, cp, w.provider);
      await this.ensureControlPlaneMachines(w, cp, w.provider);
    }
    if (done(level, 'workers')) for (const pool of w.pools) await this.ensurePool(w, pool);
    const nodesReady = done(level, 'nodes');
    if (nodesReady) await this.ensureNodes(w);

    // Statuses, owned objects first, the Cluster's summary last.
    const live = w.machines.filter((m) => !isDeleting(m));
    for (const { info, objs } of w.children.values()) {
      for (const o of objs) {
        if (isDeleting(o) || !live.some((m) => ownedBy(o, m.metadata.uid, true))) continue;
        await this.status(info, o, (x) => (info.group === BOOTSTRAP_GROUP ? bootstrapStatus(x, this.now) : infraStatus(x, info.schema, true, undefined, this.now)));
      }
    }
    const machineInfo = await this.core('Machine');
    const nodeFailure = failed('nodes');
    for (const m of live) await this.status(machineInfo, m, (x) => machineStatus(x, machineInfo.schema, nodesReady, nodeFailure, this.now));
    const readyOf = (n: number) => (nodesReady ? n : 0);

    const msInfo = await this.core('MachineSet');
    const mdInfo = await this.core('MachineDeployment');
    let workers: Counts = { desired: 0, replicas: 0, ready: 0 };
    let workersAvailable = true;
    for (const { md } of w.pools) {
      const sets = w.machineSets.filter((ms) => ownedBy(ms, md.metadata.uid, true) && !isDeleting(ms));
      const machines = live.filter((m) => sets.some((ms) => ownedBy(m, ms.metadata.uid, true)));
      const version = str(rec(rec(spec(md).template).spec).version);
      for (const ms of sets) {
        const own = live.filter((m) => ownedBy(m, ms.metadata.uid, true)).length;
        const msLabels = stringMap(rec(spec(ms).selector).matchLabels);
        await this.status(msInfo, ms, (x) => machineSetStatus(x, { desired: int(spec(ms).replicas) ?? 0, replicas: own, ready: readyOf(own) },
          selectorString(msLabels), version, this.now));
      }
      const counts: Counts = { desired: desiredReplicas(md), replicas: machines.length, ready: readyOf(machines.length) };
      const mdFailure = failed('workers') ?? failed('nodes');
      await this.status(mdInfo, md, (x) => machineDeploymentStatus(x, counts, selectorString(stringMap(rec(spec(md).selector).matchLabels)), version, mdFailure, this.now));
      workers = { desired: workers.desired + counts.desired, replicas: workers.replicas + counts.replicas, ready: workers.ready + counts.ready };
      workersAvailable &&= counts.ready >= counts.desired;
    }

    const mhcInfo = await this.core('MachineHealthCheck');
    for (const mhc of w.mhcs) {
      const targets = live.filter((m) => selects(spec(mhc).selector, m.metadata.labels ?? {})).map((m) => m.metadata.name);
      await this.status(mhcInfo, mhc, (x) => machineHealthCheckStatus(x, targets, readyOf(targets.length), this.now));
    }

    const cpMachines = cp ? live.filter((m) => ownedBy(m, cp.metadata.uid, true)) : [];
    const cpCounts: Counts & { version?: string } = {
      desired: int(spec(cp).replicas) ?? 1, replicas: cpMachines.length, ready: readyOf(cpMachines.length),
      ...(str(spec(cp).version) ? { version: str(spec(cp).version) } : {}),
    };
    if (w.cp && cp) {
      const info = w.cp.info;
      const selector = `${LABEL.clusterName}=${w.key.name},${LABEL.controlPlane}`;
      await this.status(info, cp, (x) => controlPlaneStatus(x, info.schema, cpCounts, done(level, 'controlPlane'), selector, failed('controlPlane'), this.now));
    }

    const clusterInfo = await this.core('Cluster');
    const facts = {
      level, failure, infrastructureFound: w.infra?.obj !== undefined, controlPlaneFound: cp !== undefined,
      controlPlane: cpCounts, workers, noWorkers: w.pools.length === 0, workersAvailable,
    };
    w.cluster = await this.status(clusterInfo, w.cluster, (x) => clusterStatus(x, clusterInfo.schema, facts, this.now));
  }

  /**
   * Writes `compute(obj)` as the status when it differs. An object with the paused annotation only gets
   * its Paused condition (util/annotations.HasPaused; v1beta2 Paused condition).
   */
  private async status(info: KindInfo, obj: KObject, compute: (o: KObject) => Json): Promise<KObject> {
    let next: Json;
    if (isPaused(obj)) {
      if (!schemaHas(info.schema, ['status', 'conditions', 'observedGeneration'])) return obj;
      const current = rec(obj.status);
      next = { ...current, conditions: withPaused(current.conditions, `${obj.kind} has the ${ANNOTATION.paused} annotation`, obj.metadata.generation, this.now) };
    } else {
      next = compute(obj);
    }
    if (sameJson(obj.status, next)) return obj;
    try {
      return await this.kube.replaceStatus(info, { ...obj, status: next });
    } catch (e) {
      // Deleted meanwhile (the garbage collector, a user): nothing left to report on.
      if (httpCode(e) === 404) return obj;
      throw e;
    }
  }

  /**
   * The control plane endpoint: the infra provider fills `spec.controlPlaneEndpoint` of its cluster (when the
   * user did not), and the Cluster controller copies it to the Cluster (v1beta2 infra cluster contract).
   */
  private async ensureEndpoint(w: World): Promise<void> {
    const fallback = this.s.endpoint(w.key);
    let endpoint = fallback;
    const infra = w.infra?.obj;
    if (w.infra && infra && !isPaused(infra)) {
      const current = rec(spec(infra).controlPlaneEndpoint);
      const host = str(current.host);
      const port = int(current.port);
      if (host && port) endpoint = { host, port };
      else if (schemaHas(w.infra.info.schema, ['spec', 'controlPlaneEndpoint'])) {
        w.infra = { info: w.infra.info, obj: await this.kube.replace(w.infra.info, { ...infra, spec: { ...spec(infra), controlPlaneEndpoint: fallback } }) };
      }
    }
    const own = rec(spec(w.cluster).controlPlaneEndpoint);
    if (!str(own.host) || !int(own.port)) {
      w.cluster = await this.kube.replace(await this.core('Cluster'), { ...w.cluster, spec: { ...spec(w.cluster), controlPlaneEndpoint: endpoint } });
    }
  }

  /** The Secrets the control-plane provider generates, named `<cluster>-<purpose>` (capi.md B.8). */
  private async ensureSecrets(w: World, cp: KObject, provider: ControlPlaneProvider): Promise<void> {
    const { namespace, name } = w.key;
    const endpoint = rec(spec(w.cluster).controlPlaneEndpoint);
    const server = this.s.childServer?.(w.key) ?? `https://${str(endpoint.host) ?? ''}:${int(endpoint.port) ?? 6443}`;
    const wanted: SecretObject[] = [
      ...provider.certificates.map((p) => secret({ name: `${name}-${p}`, namespace, clusterName: name, owner: cp, controller: true, data: certificateData(name, p) })),
      ...provider.clusterSecrets.map((p) => secret({ name: `${name}-${p}`, namespace, clusterName: name, owner: w.cluster, controller: true, data: certificateData(name, p) })),
      secret({ name: `${name}-kubeconfig`, namespace, clusterName: name, owner: cp, controller: true, data: { value: kubeconfigYaml(name, server) } }),
    ];
    for (const s of wanted) {
      const existing = w.secrets.find((x) => x.metadata.name === s.metadata.name);
      if (!existing) {
        await this.kube.createSecret(s);
        this.s.log.debug({ cluster: clusterId(w.key), secret: s.metadata.name }, 'secret created');
      } else if (s.metadata.name.endsWith('-kubeconfig') && existing.data.value !== s.data.value) {
        // The server may change (a test starts the child's API server later): rewrite, as KCP regenerates it.
        await this.kube.replaceSecret({ ...existing, data: s.data });
      }
    }
  }

  private async ensureControlPlaneMachines(w: World, cp: KObject, provider: ControlPlaneProvider): Promise<void> {
    const machineTemplate = rec(spec(cp).machineTemplate);
    const { infrastructureRef: _ref, ...templateSpec } = rec(machineTemplate.spec);
    const infraRef = w.cpTemplateRef;
    if (!infraRef) return;
    const labels = {
      ...stringMap(rec(machineTemplate.metadata).labels),
      [LABEL.clusterName]: w.key.name,
      [LABEL.controlPlane]: '',
      [LABEL.controlPlaneName]: labelValue(cp.metadata.name),
    };
    const version = str(spec(cp).version);
    const kubeadm = isJson(spec(cp).kubeadmConfigSpec) || cp.kind === 'KubeadmControlPlane';
    await this.ensureMachines(w, cp, int(spec(cp).replicas) ?? 1, (index, name, first) => ({
      machine: machine({
        name, namespace: w.key.namespace, clusterName: w.key.name, owner: cp, labels,
        spec: { ...templateSpec, ...(version ? { version } : {}) },
        bootstrap: w.cpBootstrap ? { apiGroup: w.cpBootstrap.group, kind: provider.bootstrapKind } : undefined,
        infrastructure: infraRef,
      }),
      bootstrap: w.cpBootstrap && {
        info: w.cpBootstrap,
        // KCP: the first member inits the cluster, the others join; CAPRKE2 inlines its config spec.
        spec: kubeadm
          ? kubeadmControlPlaneConfig(rec(spec(cp).kubeadmConfigSpec), first && index === 0)
          : Object.fromEntries(Object.entries(spec(cp)).filter(([k]) => schemaHas(w.cpBootstrap?.schema, ['spec', k]))),
        template: undefined,
      },
      infra: w.cpTemplate,
    }));
  }

  private async ensurePool(w: World, pool: Pool): Promise<void> {
    const md = pool.md;
    if (isPaused(md) || isDeleting(md)) return;
    const msInfo = await this.core('MachineSet');
    const template = rec(spec(md).template);
    const hash = templateHash(template);
    const owned = w.machineSets.filter((ms) => ownedBy(ms, md.metadata.uid, true) && !isDeleting(ms));
    // A changed template means a new MachineSet; the old one goes at once (a rollout without surge).
    for (const stale of owned.filter((ms) => ms.metadata.labels?.[LABEL.templateHash] !== hash && !isPaused(ms))) {
      await this.kube.remove(msInfo, w.key.namespace, stale.metadata.name);
      // The garbage collector deletes its Machines (and theirs) next; this pass no longer counts them.
      w.machineSets = w.machineSets.filter((ms) => ms !== stale);
      w.machines = w.machines.filter((m) => !ownedBy(m, stale.metadata.uid, true));
    }
    const desired = desiredReplicas(md);
    let ms = owned.find((x) => x.metadata.labels?.[LABEL.templateHash] === hash);
    const labels = {
      ...stringMap(rec(template.metadata).labels),
      [LABEL.clusterName]: w.key.name,
      [LABEL.deploymentName]: labelValue(md.metadata.name),
      [LABEL.templateHash]: hash,
    };
    if (!ms) {
      const name = `${md.metadata.name}-${suffix(`${md.metadata.name}/${hash}`)}`;
      const deletionOrder = str(rec(spec(md).deletion).order);
      const created = await this.kube.create(msInfo, {
        apiVersion: CORE_API_VERSION,
        kind: 'MachineSet',
        metadata: { name, namespace: w.key.namespace, labels, ownerReferences: [ownerRef(md, true)] },
        spec: {
          clusterName: w.key.name,
          replicas: desired,
          selector: { matchLabels: { ...stringMap(rec(spec(md).selector).matchLabels), [LABEL.templateHash]: hash } },
          template: { ...template, metadata: { ...rec(template.metadata), labels } },
          ...(deletionOrder ? { deletion: { order: deletionOrder } } : {}),
        },
      });
      if (!created) return;
      ms = created;
      w.machineSets = [...w.machineSets, created];
    } else if (isPaused(ms)) {
      return;
    } else if (int(spec(ms).replicas) !== desired) {
      const scaled = await this.kube.replace(msInfo, { ...ms, spec: { ...spec(ms), replicas: desired } });
      w.machineSets = w.machineSets.map((x) => (x.metadata.uid === scaled.metadata.uid ? scaled : x));
      ms = scaled;
    }
    const { bootstrap: _b, infrastructureRef: _i, ...machineSpec } = rec(template.spec);
    const machineLabels = { ...labels, [LABEL.setName]: labelValue(ms.metadata.name) };
    const owner = ms;
    const bootstrapInfo = pool.bootstrap && await this.kube.kindInfo(pool.bootstrap.info.apiVersion, instanceKind(pool.bootstrap.info.kind));
    const infraRef = pool.infraRef;
    if (!infraRef) return;
    // Without its bootstrap template a MachineSet cannot clone the config: it waits (CAPI reports the error).
    if (pool.bootstrapRef && !pool.bootstrap?.obj) return;
    await this.ensureMachines(w, owner, desired, (_index, name) => ({
      machine: machine({
        name, namespace: w.key.namespace, clusterName: w.key.name, owner, labels: machineLabels, spec: machineSpec,
        bootstrap: pool.bootstrapRef ? { apiGroup: pool.bootstrapRef.apiGroup, kind: instanceKind(pool.bootstrapRef.kind) } : undefined,
        infrastructure: infraRef,
      }),
      bootstrap: bootstrapInfo && {
        info: bootstrapInfo,
        spec: rec(rec(spec(pool.bootstrap?.obj).template).spec),
        template: pool.bootstrap?.obj,
      },
      infra: pool.infra,
    }));
  }

  /**
   * Keeps `replicas` Machines controlled by `owner`, each with its bootstrap config, data Secret and (when the
   * kind is served) infra machine. Counting owned Machines, not names, is what KCP and MachineSets do, and
   * what keeps a simulator in a child cluster from duplicating Machines moved there with new uids.
   */
  private async ensureMachines(w: World, owner: KObject, replicas: number, plan: (index: number, name: string, first: boolean) => {
    machine: KObject;
    bootstrap: { info: KindInfo; spec: Json; template: KObject | undefined } | undefined;
    infra: Linked | undefined;
  }): Promise<void> {
    const machineInfo = await this.core('Machine');
    const owned = w.machines.filter((m) => ownedBy(m, owner.metadata.uid, true) && !isDeleting(m));
    const first = owned.length === 0;
    const taken = new Set(w.machines.map((m) => m.metadata.name));
    for (let i = 0, made = owned.length; made < replicas; i++) {
      const name = `${owner.metadata.name}-${suffix(`${owner.metadata.name}/${i}`)}`;
      if (taken.has(name)) continue;
      taken.add(name);
      const created = await this.kube.create(machineInfo, plan(i, name, first).machine);
      made++;
      if (created) {
        w.machines = [...w.machines, created];
        this.s.log.debug({ cluster: clusterId(w.key), machine: name, owner: owner.metadata.name }, 'machine created');
      }
    }
    // Scale down: the last names go first (KCP and MachineSets pick by their deletion order; any is fine here).
    const extra = owned.length - replicas;
    if (extra > 0) {
      for (const m of [...owned].sort((a, b) => (a.metadata.name < b.metadata.name ? 1 : -1)).slice(0, extra)) {
        if (isPaused(m)) continue;
        await this.kube.remove(machineInfo, w.key.namespace, m.metadata.name);
        w.machines = w.machines.filter((x) => x !== m);
      }
    }
    const ownedNow = w.machines.filter((m) => ownedBy(m, owner.metadata.uid, true) && !isDeleting(m));
    for (const [index, m] of [...ownedNow].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1)).entries()) {
      const parts = plan(index, m.metadata.name, first);
      if (parts.bootstrap) await this.ensureBootstrap(w, m, parts.bootstrap);
      if (parts.infra?.obj) await this.ensureInfraMachine(w, m, parts.infra.info, parts.infra.obj);
    }
  }

  private child(w: World, info: KindInfo, name: string): KObject | undefined {
    return w.children.get(`${info.apiVersion}/${info.kind}`)?.objs.find((o) => o.metadata.name === name);
  }

  private remember(w: World, info: KindInfo, obj: KObject): void {
    const id = `${info.apiVersion}/${info.kind}`;
    const entry = w.children.get(id) ?? { info, objs: [] };
    w.children.set(id, { info, objs: [...entry.objs, obj] });
  }

  /** The bootstrap config of a Machine and, once it exists, its data Secret (what CABPK / CAPRKE2 write). */
  private async ensureBootstrap(w: World, m: KObject, b: { info: KindInfo; spec: Json; template: KObject | undefined }): Promise<void> {
    let config = this.child(w, b.info, m.metadata.name);
    if (!config) {
      // The KubeadmConfig defaulting webhook sets format: cloud-config.
      const configSpec = schemaHas(b.info.schema, ['spec', 'format']) && b.spec.format === undefined ? { ...b.spec, format: 'cloud-config' } : b.spec;
      config = await this.kube.create(b.info, cloned({
        apiVersion: b.info.apiVersion, kind: b.info.kind, machine: m, labels: m.metadata.labels ?? {}, spec: configSpec, template: b.template,
      }));
      if (!config) return;
      this.remember(w, b.info, config);
    }
    if (!w.secrets.some((s) => s.metadata.name === config.metadata.name)) {
      const data = bootstrapDataSecret(config, w.key.name);
      await this.kube.createSecret(data);
      w.secrets = [...w.secrets, data];
    }
  }

  /** The infrastructure machine cloned from the template, when its kind is served (skipped otherwise). */
  private async ensureInfraMachine(w: World, m: KObject, templateInfo: KindInfo, template: KObject): Promise<void> {
    const kind = instanceKind(templateInfo.kind);
    const info = await this.kube.kindInfo(templateInfo.apiVersion, kind);
    if (!info || this.child(w, info, m.metadata.name)) return;
    const t = rec(spec(template).template);
    const created = await this.kube.create(info, cloned({
      apiVersion: info.apiVersion, kind, machine: m, labels: { ...stringMap(rec(t.metadata).labels), ...(m.metadata.labels ?? {}) },
      spec: rec(t.spec), template,
    }));
    if (created) this.remember(w, info, created);
  }

  /** Ready Nodes in the child cluster, one per Machine, when the test wires a child API server. */
  private async ensureNodes(w: World): Promise<void> {
    const kc = this.s.childKubeConfig?.(w.key);
    if (!kc) return;
    const nodes = new ChildNodes(kc);
    const existing = new Set(await nodes.names());
    const cp = w.cp?.obj;
    for (const m of w.machines.filter((x) => !isDeleting(x) && !existing.has(x.metadata.name))) {
      const controlPlane = cp !== undefined && ownedBy(m, cp.metadata.uid, true);
      const config = [...w.children.values()].flatMap((c) => c.objs).find((o) => ownedBy(o, m.metadata.uid, true) && o.kind === str(rec(rec(spec(m).bootstrap).configRef).kind));
      const labels = {
        ...bootstrapNodeLabels(spec(config)),
        ...syncedNodeLabels(m.metadata.labels ?? {}),
        ...(controlPlane ? w.provider?.nodeRoles : {}),
      };
      if (await nodes.ensure(node({ machine: m, clusterName: w.key.name, labels, version: str(spec(m).version), now: this.now }))) {
        this.s.log.debug({ cluster: clusterId(w.key), node: m.metadata.name }, 'child node created');
      }
    }
  }

  // ---- pause ---------------------------------------------------------------------------------------

  /**
   * Paused=True on the Cluster and on its infra cluster, control plane, MachineDeployments, MachineSets, Machines
   * and health checks where they carry v1beta2 conditions; nothing else changes.
   */
  private async markPaused(w: World): Promise<void> {
    const reason = spec(w.cluster).paused === true ? 'Cluster spec.paused is set to true' : `Cluster has the ${ANNOTATION.paused} annotation`;
    const mark = async (info: KindInfo | undefined, obj: KObject | undefined) => {
      if (!info || !obj || !schemaHas(info.schema, ['status', 'conditions', 'observedGeneration'])) return;
      const current = rec(obj.status);
      const next = { ...current, conditions: withPaused(current.conditions, reason, obj.metadata.generation, this.now) };
      if (!sameJson(current, next)) await this.kube.replaceStatus(info, { ...obj, status: next });
    };
    await mark(await this.core('Cluster'), w.cluster);
    await mark(w.infra?.info, w.infra?.obj);
    await mark(w.cp?.info, w.cp?.obj);
    const [mdInfo, msInfo, machineInfo, mhcInfo] = await Promise.all(['MachineDeployment', 'MachineSet', 'Machine', 'MachineHealthCheck'].map((k) => this.core(k)));
    for (const p of w.pools) await mark(mdInfo, p.md);
    for (const ms of w.machineSets) await mark(msInfo, ms);
    for (const m of w.machines) await mark(machineInfo, m);
    for (const mhc of w.mhcs) await mark(mhcInfo, mhc);
  }

  // ---- deletion --------------------------------------------------------------------------------------

  /**
   * The Cluster controller's reconcileDelete: delete the workers, then the control plane, then the
   * infrastructure, and drop the finalizer once all is gone and the simulated teardown time has passed.
   */
  private async reconcileDelete(w: World, uid: string, level: number, report: (state: ClusterState, reached?: number) => ClusterReport): Promise<ClusterReport> {
    const since = this.mem.deleting.get(uid) ?? this.nowMs;
    this.mem.deleting.set(uid, since);
    const cp = w.cp?.obj;
    const cpMachines = cp ? w.machines.filter((m) => ownedBy(m, cp.metadata.uid, true)) : [];
    const workerMachines = w.machines.filter((m) => !cpMachines.includes(m));
    const elapsed = this.nowMs - since >= this.s.deletionDelayMs;
    const reason = w.pools.length > 0 || w.machineSets.length > 0 || workerMachines.length > 0 ? 'WaitingForWorkersDeletion'
      : cp || cpMachines.length > 0 ? 'WaitingForControlPlaneDeletion'
        : 'WaitingForInfrastructureDeletion';
    const clusterInfo = await this.core('Cluster');
    const counts = (n: number): Counts => ({ desired: 0, replicas: n, ready: 0 });
    w.cluster = await this.status(clusterInfo, w.cluster, (x) => clusterStatus(x, clusterInfo.schema, {
      level, failure: undefined, infrastructureFound: w.infra?.obj !== undefined, controlPlaneFound: cp !== undefined,
      controlPlane: counts(cpMachines.length), workers: counts(workerMachines.length), noWorkers: w.pools.length === 0, workersAvailable: false, deleting: reason,
    }, this.now));

    const ns = w.key.namespace;
    const [machineInfo, msInfo, mdInfo] = await Promise.all([this.core('Machine'), this.core('MachineSet'), this.core('MachineDeployment')]);
    for (const m of workerMachines) await this.kube.remove(machineInfo, ns, m.metadata.name);
    for (const ms of w.machineSets) await this.kube.remove(msInfo, ns, ms.metadata.name);
    for (const p of w.pools) await this.kube.remove(mdInfo, ns, p.md.metadata.name);
    for (const m of cpMachines) await this.kube.remove(machineInfo, ns, m.metadata.name);
    for (const { info, objs } of w.children.values()) for (const o of objs) await this.kube.remove(info, ns, o.metadata.name);
    const generated = new Set([...(w.provider ? [...w.provider.certificates, ...w.provider.clusterSecrets] : []), 'kubeconfig'].map((p) => `${w.key.name}-${p}`));
    for (const s of w.secrets) {
      const bootstrapData = [...w.children.values()].some((c) => c.objs.some((o) => ownedBy(s, o.metadata.uid)));
      if (generated.has(s.metadata.name) || bootstrapData) await this.kube.removeSecret(ns, s.metadata.name);
    }
    if (w.cp?.obj) await this.kube.remove(w.cp.info, ns, w.cp.obj.metadata.name);
    if (w.infra?.obj) await this.kube.remove(w.infra.info, ns, w.infra.obj.metadata.name);
    if (!elapsed) return report('deleting');

    const finalizers = w.cluster.metadata.finalizers ?? [];
    if (finalizers.includes(CLUSTER_FINALIZER)) {
      await this.kube.replace(clusterInfo, { ...w.cluster, metadata: { ...w.cluster.metadata, finalizers: finalizers.filter((f) => f !== CLUSTER_FINALIZER) } });
    }
    this.mem.levels.delete(uid);
    this.mem.waits.delete(uid);
    this.mem.deleting.delete(uid);
    return report('deleted');
  }
}
