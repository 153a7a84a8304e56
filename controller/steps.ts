/**
 * The reconcile steps of a cluster that is not being deleted, in order (see reconcile.ts). Each reads the
 * world, acts on it, records what it found in the context, and stops the list with a LatticeError when it
 * cannot go on.
 */
import { stalling, waiting } from '../core/errors.js';
import type { LatticeCluster } from '../core/spec/model.js';
import type { SpecValidator } from '../core/spec/validate.js';
import { clusterFacts, controlPlaneRef, poolFacts, poolFactsFromHealth, type CapiClusterFacts } from './capi.js';
import { formatDuration } from './config.js';
import { isKubeError, type KObject, type SecretObject } from './kube.js';
import { argocdClusterSecret, argocdInClusterSecret, fluxKubeconfigSecret, isOurs, proxyCredentials, proxyKubeconfig, readKubeconfig } from './registration.js';
import { CONTROLLER_MANAGER, FINALIZER, INFRA_PROVIDER, KUBECONFIG_KEY, LABEL, LATTICE_CLUSTER, NAMES, SECRET } from './resources.js';
import { applicationHealth, fluxHealth, pivotedCondition, stageConditions, type GitOpsObject, type StageInputs } from './stages.js';
import { StageCondition } from '../core/plan/stages.js';
import { agentConnection, deliverBootstrap, observeAgent } from './agents.js';
import { applySecret, b64decode, event, guarded, kubeFailure, namespaceExists, readState, readStateOf, rec, secretOf, writeState, type Ctx, type ReconcileDeps, type Step } from './context.js';
import { pivotStep, specSyncStep } from './pivot.js';

/** Add lattice.dev/unpivot so that deleting the spec waits for the teardown (DESIGN §7). */
const ensureFinalizer: Step = async (ctx, deps) => {
  const finalizers = ctx.lc.metadata.finalizers ?? [];
  if (finalizers.includes(FINALIZER)) return;
  ctx.lc = await guarded(`adding the finalizer to LatticeCluster ${ctx.name}`, () => deps.kube.mergePatch(LATTICE_CLUSTER, ctx.name, undefined, {
    metadata: { resourceVersion: ctx.lc.metadata.resourceVersion, finalizers: [...finalizers, FINALIZER] },
  }));
};

/** Read the InfraProvider spec.providerRef names (missing: the validation step waits for it). */
const resolveProvider: Step = async (ctx, deps) => {
  const ref = rec(ctx.lc.spec).providerRef;
  if (typeof ref !== 'string' || ref === '') return;
  ctx.provider = await guarded(`reading InfraProvider ${deps.config.namespace}/${ref}`, () => deps.kube.get(INFRA_PROVIDER, ref, deps.config.namespace));
};

const MAX_VALIDATIONS = 1024;

function validated(deps: ReconcileDeps, name: string, text: string): ReturnType<SpecValidator['validate']> {
  const cache = deps.validations;
  const known = cache?.get(text);
  if (known) return known;
  const result = deps.validator.validate([{ path: `LatticeCluster/${name}`, bytes: Buffer.from(text, 'utf8') }]);
  if (cache) {
    if (cache.size >= MAX_VALIDATIONS) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    cache.set(text, result);
  }
  return result;
}

/** The object as a one-file spec set for core's validator (JSON: every string quoted, YAML 1.1-safe). */
const validateSpec: Step = async (ctx, deps) => {
  const meta = ctx.lc.metadata;
  const docs: unknown[] = [{
    apiVersion: ctx.lc.apiVersion ?? 'lattice.dev/v1alpha1', kind: 'LatticeCluster',
    metadata: { name: meta.name, ...(meta.labels ? { labels: meta.labels } : {}), ...(meta.annotations ? { annotations: meta.annotations } : {}) },
    spec: ctx.lc.spec,
  }];
  if (ctx.provider) {
    docs.push({ apiVersion: ctx.provider.apiVersion ?? 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: ctx.provider.metadata.name, namespace: ctx.provider.metadata.namespace }, spec: ctx.provider.spec });
  }
  const text = docs.map((d) => JSON.stringify(d)).join('\n---\n');
  const result = validated(deps, ctx.name, text);
  if (!result.ok) {
    const lines = result.issues.slice(0, 10).map((i) => {
      const where = i.document === 1 && ctx.provider ? `InfraProvider ${ctx.provider.metadata.namespace ?? ''}/${ctx.provider.metadata.name} ` : '';
      const detail = i.expected !== undefined || i.found !== undefined ? ` (expected ${i.expected ?? '?'}, found ${i.found ?? '?'})` : '';
      return `${i.code} ${where}${i.path ? `${i.path}: ` : ''}${i.message}${detail}`;
    });
    const more = result.issues.length > 10 ? `; and ${result.issues.length - 10} more` : '';
    throw stalling('InvalidSpec', `the spec is invalid: ${lines.join('; ')}${more}`);
  }
  ctx.model = result.value.clusters[0]?.object;
  if (!ctx.model) throw stalling('InvalidSpec', 'the object is not a LatticeCluster');
  if (!ctx.provider) {
    throw waiting('InfraProviderNotFound', `InfraProvider ${deps.config.namespace}/${ctx.model.spec.providerRef} does not exist (spec.providerRef)`);
  }
};

/** Copy the InfraProvider's credentials to where the rendered CAPI objects look for them; the spec is then accepted. */
const copyCredentials: Step = async (ctx, deps) => {
  const model = ctx.model;
  const provider = ctx.provider;
  if (!model || !provider) return;
  const spec = rec(provider.spec);
  const ref = model.spec.providerRef;
  const sourceName = rec(spec.credentialsSecretRef).name;
  if (typeof sourceName !== 'string') {
    // Docker needs no credentials; the validator refuses other types without a Secret.
    ctx.accepted = true;
    return;
  }
  const sourceId = `Secret ${deps.config.namespace}/${sourceName}`;
  const source = secretOf(await guarded(`reading ${sourceId}`, () => deps.kube.get(SECRET, sourceName, deps.config.namespace)));
  if (!source) throw waiting('CredentialsNotFound', `${sourceId} (credentials of InfraProvider ${ref}) does not exist`);
  await namespaceExists(ctx, deps, ctx.namespace);
  const copy = (namespace: string, labels: Record<string, string>): SecretObject => ({
    metadata: { name: NAMES.credentialsSecret(ref), namespace, labels: { [LABEL.managedBy]: CONTROLLER_MANAGER, [LABEL.infraProvider]: ref, ...labels } },
    type: source.type ?? 'Opaque',
    data: { ...(source.data ?? {}) },
  });
  // After a pivot the copy lives in the cluster itself (it moved with the Cluster API objects, and comes
  // back with them on unpivot); a copy here would be a second, unmanaged one.
  const pivoted = (await readStateOf(deps, ctx.name)).pivotComplete;
  const targets: { secret: SecretObject; id: string }[] = pivoted ? [] : [{
    // Moves with the cluster on a pivot (clusterctl's rule for owner-less Secrets, which the move honours).
    secret: copy(ctx.namespace, { [LABEL.cluster]: ctx.name, [LABEL.clusterctlMove]: 'true' }),
    id: `Secret ${ctx.namespace}/${NAMES.credentialsSecret(ref)}`,
  }];
  const aws = spec.type === 'aws';
  if (aws) {
    // CAPA resolves an AWSClusterStaticIdentity's secretRef in its own namespace (research/capi.md B.4.2),
    // shared by every cluster of this provider: no cluster label, never deleted with one cluster.
    await namespaceExists(ctx, deps, deps.config.capaNamespace);
    targets.push({ secret: copy(deps.config.capaNamespace, {}), id: `Secret ${deps.config.capaNamespace}/${NAMES.credentialsSecret(ref)}` });
  }
  for (const t of targets) {
    const done = await applySecret(deps, t.secret, t.id);
    if (done !== 'unchanged') {
      deps.log.info({ cluster: ctx.name, secret: t.id, action: done }, 'credentials copied');
      await event(ctx, deps, { type: 'Normal', reason: 'CredentialsCopied', message: `credentials of InfraProvider ${ref} ${done === 'created' ? 'copied to' : 'updated in'} ${t.id}` });
    }
  }
  if (aws) await ensureAwsIdentity(ctx, deps, ref);
  ctx.accepted = true;
};

/** The cluster-scoped AWSClusterStaticIdentity the rendered AWSCluster's identityRef names (core/render/providers.ts). */
async function ensureAwsIdentity(ctx: Ctx, deps: ReconcileDeps, ref: string): Promise<void> {
  const r = deps.resources.awsStaticIdentity;
  const name = NAMES.awsIdentity(ref);
  const id = `AWSClusterStaticIdentity ${name}`;
  const spec = {
    secretRef: NAMES.credentialsSecret(ref),
    // Every namespace Lattice renders a cluster into carries lattice.dev/cluster (core/render/plan.ts).
    allowedNamespaces: { selector: { matchExpressions: [{ key: LABEL.cluster, operator: 'Exists' }] } },
  };
  const live = await guarded(`reading ${id}`, () => deps.kube.get(r, name));
  const labels = { [LABEL.managedBy]: CONTROLLER_MANAGER, [LABEL.infraProvider]: ref };
  if (!live) {
    await guarded(`creating ${id}`, () => deps.kube.create(r, { metadata: { name, labels }, spec }));
    await event(ctx, deps, { type: 'Normal', reason: 'CredentialsCopied', message: `${id} created for InfraProvider ${ref}` });
    return;
  }
  if (live.metadata.labels?.[LABEL.managedBy] !== CONTROLLER_MANAGER) throw stalling('SecretConflict', `${id} exists and is not managed by Lattice; delete it or rename the InfraProvider`);
  if (JSON.stringify(rec(live.spec).secretRef) === JSON.stringify(spec.secretRef) && JSON.stringify(rec(live.spec).allowedNamespaces) === JSON.stringify(spec.allowedNamespaces)) return;
  await guarded(`updating ${id}`, () => deps.kube.replace(r, { ...live, spec: { ...rec(live.spec), ...spec } }));
}

/** Read the durable markers, creating the state Secret on first sight. */
const loadState: Step = async (ctx, deps) => {
  await namespaceExists(ctx, deps, ctx.namespace);
  const { state, live } = await readState(ctx, deps);
  ctx.state = live ? state : await writeState(deps, ctx.name, {});
};

/** Observe the CAPI Cluster, its control plane and MachineDeployments; run the provisioning clock. */
const observeCapi: Step = async (ctx, deps) => {
  const model = ctx.model;
  if (!model) return;
  const r = deps.resources;
  const id = `Cluster ${ctx.namespace}/${NAMES.capiCluster(ctx.name)}`;
  const [cluster, mds] = await Promise.all([
    guarded(`reading ${id}`, () => deps.kube.get(r.capiCluster, NAMES.capiCluster(ctx.name), ctx.namespace)),
    guarded(`listing the MachineDeployments of ${ctx.namespace}`, () => deps.kube.list(r.machineDeployment, { namespace: ctx.namespace, labelSelector: `${LABEL.capiCluster}=${ctx.name}` })),
  ]);
  ctx.pools = poolFacts(model, mds);
  ctx.capiExists = cluster !== undefined;
  if (!cluster) return;
  ctx.capiCluster = cluster;
  const ref = controlPlaneRef(cluster);
  const cpResource = ref ? r.controlPlanes[ref.kind] : undefined;
  let controlPlane: KObject | undefined;
  if (ref && cpResource) {
    try {
      controlPlane = await deps.kube.get(cpResource, ref.name, ctx.namespace);
    } catch (e) {
      // The Cluster's v1beta2 counters suffice; a control plane kind that is not served is no reason to stop.
      if (!isKubeError(e)) throw kubeFailure(e, `reading ${ref.kind} ${ctx.namespace}/${ref.name}`);
    }
  }
  const facts = clusterFacts(cluster, controlPlane);
  ctx.capi = facts;
  if (facts.failure) ctx.failure = { reason: facts.failure.reason, message: `Cluster ${ctx.namespace}/${ctx.name} failed: ${facts.failure.message}` };
  await provisioningClock(ctx, deps, facts);
};

/**
 * The provisioning timeout counts from when this generation's Cluster was first seen without ready
 * infrastructure. The start is kept in the state Secret, so a restarted controller keeps counting, and a new
 * generation restarts the clock (Failed is never sticky).
 */
async function provisioningClock(ctx: Ctx, deps: ReconcileDeps, facts: CapiClusterFacts): Promise<void> {
  const state = ctx.state;
  const timeout = deps.config.provisioningTimeoutMs;
  if (!state || ctx.deletion) return;
  if (facts.infrastructureReady || timeout === 0) {
    if (state.provisioning) ctx.state = await writeState(deps, ctx.name, (s) => {
      const { provisioning: _done, ...rest } = s;
      return rest;
    });
    return;
  }
  if (facts.failure) return;
  const now = deps.now();
  if (state.provisioning?.generation !== ctx.generation) {
    ctx.state = await writeState(deps, ctx.name, { provisioning: { since: now.toISOString(), generation: ctx.generation } });
    return;
  }
  if (now.getTime() - Date.parse(state.provisioning.since) >= timeout) {
    ctx.timeoutText = formatDuration(timeout);
    ctx.failure = { reason: 'ProvisioningTimeout', message: `the infrastructure of Cluster ${ctx.namespace}/${ctx.name} is not ready after ${ctx.timeoutText}` };
  }
}

/** The addon objects (and the agent's) of this cluster in the GitOps engine's namespace. */
async function gitopsObjects(ctx: Ctx, deps: ReconcileDeps, model: LatticeCluster): Promise<{ objects: Map<string, GitOpsObject>; agent: GitOpsObject }> {
  const c = deps.config;
  const argo = c.gitops === 'argocd';
  const namespace = argo ? c.argocdNamespace : c.fluxNamespace;
  const addonResource = argo ? deps.resources.application : deps.resources.helmRelease;
  const agentResource = argo ? deps.resources.application : deps.resources.kustomization;
  const agentName = argo ? NAMES.argocdAgentApplication(ctx.name) : NAMES.fluxKustomization.agent(ctx.name);
  const health = argo ? applicationHealth : fluxHealth;
  const addons = deps.renderer.addons(model);
  const selector = `${LABEL.cluster}=${ctx.name}`;
  const listed = new Map<string, KObject>();
  for (const r of new Set([addonResource, agentResource])) {
    for (const o of await guarded(`listing ${r.kind}s in ${namespace}`, () => deps.kube.list(r, { namespace, labelSelector: selector }))) listed.set(`${r.kind}/${o.metadata.name}`, o);
  }
  // Objects not labelled with the cluster (a flavor that does not label them) are fetched by name.
  const find = async (kind: typeof addonResource, name: string): Promise<KObject | undefined> =>
    listed.get(`${kind.kind}/${name}`) ?? guarded(`reading ${kind.kind} ${namespace}/${name}`, () => deps.kube.get(kind, name, namespace));
  const toGitOps = (kind: string, name: string, o: KObject | undefined): GitOpsObject => {
    if (!o) return { kind, namespace, name };
    const h = health(o);
    return { kind, namespace, name, health: h.health, ...(h.message ? { message: h.message } : {}) };
  };
  const [found, agent] = await Promise.all([
    Promise.all(addons.map(async (a) => {
      const name = argo ? NAMES.argocdApplication(ctx.name, a.id) : NAMES.fluxHelmRelease(ctx.name, a.id);
      return [a.id, toGitOps(addonResource.kind, name, await find(addonResource, name))] as const;
    })),
    find(agentResource, agentName),
  ]);
  return { objects: new Map(found), agent: toGitOps(agentResource.kind, agentName, agent) };
}

/** Observe each stage's addon objects in the GitOps engine and compute the stage conditions. */
const observeStages: Step = async (ctx, deps) => {
  const model = ctx.model;
  if (!model || !ctx.pools) return;
  const health = ctx.agentInfo?.health;
  if (ctx.state?.pivotComplete && health) {
    // After the pivot the parent's objects are shadows: the child's own Nodes say how its pools are.
    ctx.pools = poolFactsFromHealth(model, health.pools);
    if (ctx.capi) ctx.capi = { ...ctx.capi, controlPlaneReady: health.controlPlane.ready };
  }
  const { objects, agent } = await gitopsObjects(ctx, deps, model);
  ctx.stage = stageConditions({
    capiClusterId: `${ctx.namespace}/${NAMES.capiCluster(ctx.name)}`,
    addons: deps.renderer.addons(model),
    catalog: deps.renderer.versions.addons,
    flags: model.spec as unknown as Record<string, unknown>,
    ...(ctx.capi ? { capi: ctx.capi } : {}),
    ...(ctx.timeoutText !== undefined && !ctx.capi?.infrastructureReady ? { provisioningTimeout: ctx.timeoutText } : {}),
    pools: ctx.pools,
    objects,
    agentObject: agent,
    agent: deps.agents ? agentConnection(ctx.agentInfo) : deps.agent?.(ctx.name) ?? { connected: false },
    pivot: pivotInput(ctx, deps),
  });
};

/** The registration Secret's resource, namespace and name for the configured GitOps engine. */
function registrationTarget(deps: ReconcileDeps, cluster: string): { namespace: string; name: string } {
  return deps.config.gitops === 'argocd'
    ? { namespace: deps.config.argocdNamespace, name: NAMES.argocdClusterSecret(cluster) }
    : { namespace: deps.config.fluxNamespace, name: NAMES.fluxKubeconfigSecret(cluster) };
}

/**
 * Register the child with the GitOps engine from CAPI's kubeconfig (nothing to do until it exists), or, while
 * it is pivoted, with the cell's API proxy. The deletion steps run it too, so an unpivot import switches the
 * registration back to the kubeconfig for the teardown.
 */
export const register: Step = async (ctx, deps) => {
  const target = registrationTarget(deps, ctx.name);
  const id = `Secret ${target.namespace}/${target.name}`;
  let desired: SecretObject | undefined;
  if (ctx.self) {
    // The parent itself: Argo CD reaches it in-cluster; Flux applies to it without a kubeconfig.
    if (deps.config.gitops !== 'argocd') return;
    desired = argocdInClusterSecret({ cluster: ctx.name, ...target, labels: ctx.lc.metadata.labels });
  } else if (ctx.state?.pivotComplete && !ctx.state.unpivotImportComplete) {
    // Pivoted: Cluster API's kubeconfig moved into the child, which takes no inbound traffic; the engine
    // reaches it through the cell's API proxy until an unpivot brings the kubeconfig back.
    const proxy = deps.agents?.proxy(ctx.name);
    // No cell here (a replica that does not lead): leave the registration as it is.
    if (!proxy) return;
    const source = 'lattice-cell-proxy';
    desired = deps.config.gitops === 'argocd'
      ? argocdClusterSecret({ cluster: ctx.name, ...target, labels: ctx.lc.metadata.labels, credentials: proxyCredentials(proxy), source })
      : fluxKubeconfigSecret({ cluster: ctx.name, ...target, kubeconfigBase64: Buffer.from(proxyKubeconfig(ctx.name, proxy)).toString('base64'), source });
  } else {
    const sourceName = NAMES.kubeconfigSecret(ctx.name);
    const sourceId = `Secret ${ctx.namespace}/${sourceName}`;
    const source = secretOf(await guarded(`reading ${sourceId}`, () => deps.kube.get(SECRET, sourceName, ctx.namespace)));
    const value = source?.data?.[KUBECONFIG_KEY];
    // No kubeconfig yet: Cluster API writes it once the control plane has certificates.
    if (!source || value === undefined) return;
    const parsed = readKubeconfig(b64decode(value));
    if (!parsed.ok) throw waiting(parsed.code, `${sourceId} cannot be registered: ${parsed.message}`);
    desired = deps.config.gitops === 'argocd'
      ? argocdClusterSecret({ cluster: ctx.name, ...target, labels: ctx.lc.metadata.labels, credentials: parsed.value, source: `${ctx.namespace}/${sourceName}` })
      : fluxKubeconfigSecret({ cluster: ctx.name, ...target, kubeconfigBase64: value, source: `${ctx.namespace}/${sourceName}` });
  }
  const done = await applySecret(deps, desired, id);
  if (done === 'unchanged') return;
  deps.log.info({ cluster: ctx.name, secret: id, action: done }, 'cluster registered');
  await event(ctx, deps, { type: 'Normal', reason: done === 'created' ? 'Registered' : 'RegistrationUpdated', message: `${id} ${done === 'created' ? 'created' : 'updated'}: the ${deps.config.gitops === 'argocd' ? 'Argo CD' : 'Flux'} destination of this cluster` });
};

/** Registration Secrets of a cluster that the controller made (also finds ones left by a previous mode). */
export async function removeRegistration(deps: ReconcileDeps, cluster: string): Promise<void> {
  const c = deps.config;
  for (const [namespace, name] of [[c.argocdNamespace, NAMES.argocdClusterSecret(cluster)], [c.fluxNamespace, NAMES.fluxKubeconfigSecret(cluster)]] as const) {
    // A Secret in a namespace that does not exist reads as not found: nothing to clean there.
    const live = secretOf(await guarded(`reading Secret ${namespace}/${name}`, () => deps.kube.get(SECRET, name, namespace)));
    if (live && isOurs(live) && live.metadata.labels?.[LABEL.cluster] === cluster) {
      await guarded(`deleting Secret ${namespace}/${name}`, () => deps.kube.remove(SECRET, name, namespace));
    }
  }
}

/** The Pivoted condition's input: not started, moving, moved (and whether the child confirms). */
function pivotInput(ctx: Ctx, deps: ReconcileDeps): StageInputs['pivot'] {
  // Never pivoting here (switched off, or no cell to move through): the parent manages the cluster for good.
  if (!ctx.state?.pivot && !ctx.state?.pivotComplete && (!deps.config.pivot || !deps.agents)) return { state: 'disabled' };
  if (ctx.state?.pivotComplete) return { state: 'complete', childConfirmed: ctx.agentInfo?.selfManagement?.pivotComplete === true };
  if (ctx.state?.pivot) return { state: 'pivoting', message: 'the pivot is in progress' };
  return ctx.pivotWaiting !== undefined ? { state: 'none', waiting: ctx.pivotWaiting } : { state: 'none' };
}

/** The Pivoted condition again once the pivot step has run (it knows the step it reached). */
const observePivot: Step = async (ctx, deps) => {
  if (!ctx.stage) return;
  const input: StageInputs['pivot'] = ctx.pivot && !ctx.pivot.complete ? { state: 'pivoting', message: ctx.pivot.message } : pivotInput(ctx, deps);
  ctx.stage = ctx.stage.map((c) => (c.type === StageCondition.Pivoted ? pivotedCondition(input) : c));
};

export const STEPS: readonly Step[] = [ensureFinalizer, resolveProvider, validateSpec, copyCredentials, loadState, observeCapi, observeAgent, observeStages, register, deliverBootstrap, specSyncStep, withPivotObserved(pivotStep), observePivot];

/** Runs the pivot step and, whatever it throws, records where it got to in the Pivoted condition first. */
function withPivotObserved(step: Step): Step {
  return async (ctx, deps) => {
    try {
      await step(ctx, deps);
    } finally {
      await observePivot(ctx, deps);
    }
  };
}

