/**
 * The controller's pure parts, one behaviour per test: the work queue's guarantees, kstatus conditions,
 * reading CAPI status in both shapes, kubeconfig → Argo CD registration, the state Secret, the status
 * diff, transition events, GitOps health, and the configuration.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { specRenderer } from '../cli/load.js';
import { clusterFacts, poolFacts } from '../controller/capi.js';
import { kstatusViolations, mergeConditions, type DesiredCondition } from '../controller/conditions.js';
import { defaultConfig, formatDuration, loadControllerConfig, parseDuration } from '../controller/config.js';
import { statusEvents } from '../controller/events.js';
import { computeOutcome, jsonEqual, mergePatch } from '../controller/outcome.js';
import { jitter, WorkQueue } from '../controller/queue.js';
import { argocdClusterSecret, copiedLabels, readKubeconfig } from '../controller/registration.js';
import { pluralOf } from '../controller/resources.js';
import { applicationHealth, fluxHealth, stageConditions, type GitOpsObject } from '../controller/stages.js';
import { decodeState, encodeState } from '../controller/state.js';
import { waiting, stalling, LatticeError } from '../core/errors.js';
import { isPaused, type ListedObject } from '../core/move/graph.js';
import { checkedImport } from '../controller/pivot.js';
import { StageCondition } from '../core/plan/stages.js';
import { exampleClusters } from './support/repo.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T00:05:00Z');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const fromB64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

describe('WorkQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('hands a key added many times out once, and never to two workers at once', async () => {
    // GIVEN a key added three times
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('a');
    // WHEN a worker takes it and it is added again meanwhile
    expect(await q.get()).toBe('a');
    expect(q.depth).toBe(0);
    q.add('a');
    // THEN a second worker does not get it while the first holds it
    let second: string | undefined = 'none';
    void q.get().then((k) => {
      second = k;
    });
    await Promise.resolve();
    expect(second).toBe('none');
    // AND it is handed out again once the first is done
    q.done('a');
    await Promise.resolve();
    expect(second).toBe('a');
  });

  it('backs a failing key off exponentially up to the cap, and forgets on success', () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000 });
    expect([1, 2, 3, 4, 5].map(() => q.addRateLimited('a'))).toEqual([100, 200, 400, 800, 1000]);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(100);
  });

  it('delays adds, the earliest pending time winning, and drops them on shutdown', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 1000);
    q.addAfter('a', 100);
    q.addAfter('a', 5000);
    vi.advanceTimersByTime(100);
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    q.addAfter('b', 50);
    q.shutDown();
    vi.advanceTimersByTime(100);
    expect(q.depth).toBe(0);
    expect(await q.get()).toBeUndefined();
  });

  it('jitters periodic requeues by up to 10 %', () => {
    expect(jitter(1000, () => 0)).toBe(1000);
    expect(jitter(1000, () => 0.999)).toBe(1100);
  });
});

describe('conditions (kstatus)', () => {
  const ready = (status: 'True' | 'False', message = 'm'): DesiredCondition => ({ type: 'Ready', status, reason: 'Progressing', message });

  it('keeps lastTransitionTime when only the message changes, and moves it when the status changes', () => {
    const first = mergeConditions(undefined, [ready('False', 'one')], 3, T0);
    const sameStatus = mergeConditions(first, [ready('False', 'two')], 3, T1);
    expect(sameStatus[0]).toEqual({ type: 'Ready', status: 'False', reason: 'Progressing', message: 'two', observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z' });
    const flipped = mergeConditions(sameStatus, [ready('True')], 4, T1);
    expect(flipped[0]?.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
  });

  it('drops Reconciling and Stalled unless True, refuses both, and always wants Ready', () => {
    const out = mergeConditions(undefined, [ready('False'), { type: 'Reconciling', status: 'False', reason: 'X', message: '' }], 1, T0);
    expect(out.map((c) => c.type)).toEqual(['Ready']);
    expect(() => mergeConditions(undefined, [ready('False'), { type: 'Reconciling', status: 'True', reason: 'X', message: '' }, { type: 'Stalled', status: 'True', reason: 'Y', message: '' }], 1, T0)).toThrow(/both/);
    expect(() => mergeConditions(undefined, [{ type: 'CNI', status: 'True', reason: 'Healthy', message: '' }], 1, T0)).toThrow(/Ready/);
    expect(() => mergeConditions(undefined, [ready('False'), { type: 'CNI', status: 'True', reason: 'not camel', message: '' }], 1, T0)).toThrow(/reason/);
  });

  it('finds every broken invariant in a status', () => {
    const status = {
      observedGeneration: 5, phase: 'Failed',
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Ready', message: '', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' },
        { type: 'Reconciling', status: 'False', reason: 'X', message: '', observedGeneration: 1, lastTransitionTime: 'yesterday' },
      ],
    };
    expect(kstatusViolations({ metadata: { name: 'x', generation: 2 }, status })).toEqual([
      'x: status.observedGeneration is ahead of metadata.generation',
      'x: condition Reconciling has no RFC 3339 lastTransitionTime',
      'x: Reconciling is present but not True (kstatus: abnormal-true conditions are removed when False)',
      'x: Reconciling is True but Ready is True',
      'x: phase Failed without Stalled',
    ]);
  });
});

describe('reading Cluster API status', () => {
  it('reads the v1beta2 shape: initialization, counters, endpoint, failure under deprecated.v1beta1', () => {
    const facts = clusterFacts({
      metadata: { name: 'c' },
      spec: { controlPlaneEndpoint: { host: '10.0.0.1', port: 6443 } },
      status: {
        phase: 'Failed', initialization: { infrastructureProvisioned: true },
        controlPlane: { desiredReplicas: 3, readyReplicas: 1 },
        conditions: [{ type: 'ControlPlaneInitialized', status: 'False', reason: 'InitializationFailed', message: 'etcd would not start' }],
        deprecated: { v1beta1: { failureReason: 'CreateError', failureMessage: 'etcd would not start' } },
      },
    });
    expect(facts).toEqual({
      deleting: false, phase: 'Failed', infrastructureReady: true, controlPlaneInitialized: false, controlPlaneMessage: 'etcd would not start',
      failure: { reason: 'InitializationFailed', message: 'etcd would not start' }, endpoint: '10.0.0.1:6443', controlPlaneDesired: 3, controlPlaneReady: 1,
    });
  });

  it('reads the v1beta1 shape: infrastructureReady, controlPlaneReady, top-level failure fields, counters from the control plane', () => {
    const facts = clusterFacts({
      metadata: { name: 'c', deletionTimestamp: '2026-01-01T00:00:00Z' },
      status: { infrastructureReady: true, controlPlaneReady: true, conditions: [{ type: 'Ready', status: 'True' }] },
    }, { spec: { replicas: 3 }, status: { readyReplicas: 3 } });
    expect(facts).toEqual({ deleting: true, infrastructureReady: true, controlPlaneInitialized: true, controlPlaneDesired: 3, controlPlaneReady: 3 });
    const failed = clusterFacts({ metadata: { name: 'c' }, status: { failureReason: 'InvalidConfiguration', failureMessage: 'bad VPC' } });
    expect(failed.failure).toEqual({ reason: 'InvalidConfiguration', message: 'bad VPC' });
    // v1beta2 conditions seen through the v1beta1 view
    expect(clusterFacts({ metadata: { name: 'c' }, status: { v1beta2: { conditions: [{ type: 'ControlPlaneInitialized', status: 'True' }] } } }).controlPlaneInitialized).toBe(true);
  });

  it('counts worker pools from MachineDeployments, with the spec for pools not created yet', () => {
    const gpu = exampleClusters().find((c) => c.metadata.name === 'ml-inference');
    if (!gpu) throw new Error('no gpu example');
    const ids = Object.keys(gpu.spec.nodes.workerPools ?? {}).sort();
    const [first, ...rest] = ids;
    const md = {
      metadata: { name: 'x', labels: { 'lattice.dev/pool': first }, annotations: { 'cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size': '1', 'cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size': '4' } },
      spec: { replicas: 2 }, status: { replicas: 2, readyReplicas: 1 },
    };
    const facts = poolFacts(gpu, [md]);
    expect(facts.pools[first ?? '']).toEqual({ desired: 2, current: 2, ready: 1, autoscaling: true, message: '1/2 ready, 2 created' });
    expect(facts.readyWorkers).toBe(1);
    expect(facts.allReady).toBe(false);
    for (const id of rest) expect(facts.pools[id]?.message).toBe('MachineDeployment not created yet');
  });
});

describe('registration', () => {
  const kubeconfig = (user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://1.2.3.4:6443', 'certificate-authority-data': b64('CA') }) => stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'admin@c',
    clusters: [{ name: 'other', cluster: { server: 'https://wrong' } }, { name: 'c', cluster }],
    users: [{ name: 'admin', user }],
    contexts: [{ name: 'admin@c', context: { cluster: 'c', user: 'admin' } }],
  });

  it('turns a CAPI kubeconfig into an Argo CD cluster Secret: name, server, config JSON, labels', () => {
    // GIVEN the kubeconfig CAPI writes (current context's cluster, client certificate)
    const parsed = readKubeconfig(kubeconfig({ 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') }));
    if (!parsed.ok) throw new Error(parsed.message);
    // WHEN it becomes a registration
    const secret = argocdClusterSecret({ cluster: 'c', name: 'cluster-c', namespace: 'argocd', labels: { env: 'prod', 'argocd.argoproj.io/secret-type': 'repository', 'lattice.dev/cluster': 'spoof' }, credentials: parsed.value, source: 'capi-c/c-kubeconfig' });
    // THEN Argo CD's declarative format, the cluster's own labels kept but never the reserved ones
    expect(secret.metadata.labels).toEqual({ env: 'prod', 'argocd.argoproj.io/secret-type': 'cluster', 'app.kubernetes.io/managed-by': 'lattice-controller', 'lattice.dev/cluster': 'c' });
    expect(fromB64(secret.data?.name)).toBe('c');
    expect(fromB64(secret.data?.server)).toBe('https://1.2.3.4:6443');
    expect(JSON.parse(fromB64(secret.data?.config))).toEqual({ tlsClientConfig: { insecure: false, caData: b64('CA'), certData: b64('CERT'), keyData: b64('KEY') } });
  });

  it('registers token users with bearerToken, and refuses kubeconfigs Argo CD could not use, without quoting them', () => {
    const token = readKubeconfig(kubeconfig({ token: 'abc.def' }, { server: 'https://h:6443', 'insecure-skip-tls-verify': true }));
    expect(token).toEqual({ ok: true, value: { server: 'https://h:6443', bearerToken: 'abc.def', insecure: true } });
    const exec = readKubeconfig(kubeconfig({ exec: { command: 'aws' }, token: 'SECRET-TOKEN' }));
    expect(exec).toMatchObject({ ok: false, code: 'KubeconfigUnsupported' });
    const files = readKubeconfig(kubeconfig({ 'client-certificate': '/etc/cert', 'client-key': '/etc/key' }));
    expect(files).toMatchObject({ ok: false, code: 'KubeconfigUnsupported' });
    const garbage = readKubeconfig('{{{ SECRET-TOKEN');
    expect(garbage).toEqual({ ok: false, code: 'KubeconfigInvalid', message: 'it is not valid YAML' });
    expect(JSON.stringify([exec, files, garbage])).not.toContain('SECRET-TOKEN');
    expect(copiedLabels({ 'argocd.argoproj.io/anything': 'x', team: 'a' })).toEqual({ team: 'a' });
  });
});

describe('state Secret', () => {
  it('round-trips the durable markers and leaves absent ones false', () => {
    const state = { pivot: { moveId: 'm-1', startedAt: '2026-01-01T00:20:00.000Z' }, pivotComplete: true, pivotCleanupComplete: true, unpivotReleased: true, unpivotImportComplete: false, bootstrapComplete: true, bootstrapToken: { sha256: 'a'.repeat(64), issuedAt: '2026-01-01T00:00:00.000Z', expiresAt: '2026-01-01T01:00:00.000Z', consumedAt: '2026-01-01T00:10:00.000Z', lease: { id: 'l1', until: '2026-01-01T00:00:30.000Z' } }, provisioning: { since: '2026-01-01T00:00:00.000Z', generation: 2 } };
    const data = encodeState(state);
    expect(Object.keys(data).sort()).toEqual([
      'bootstrap-complete', 'bootstrap-token-consumed-at', 'bootstrap-token-expires-at', 'bootstrap-token-issued-at', 'bootstrap-token-lease',
      'bootstrap-token-lease-until', 'bootstrap-token-sha256', 'pivot-cleanup-complete', 'pivot-complete', 'pivot-move-id', 'pivot-started-at',
      'provisioning-generation', 'provisioning-since', 'unpivot-released',
    ]);
    expect(decodeState(data)).toEqual(state);
    expect(decodeState({ 'pivot-complete': b64('yes'), 'bootstrap-token-sha256': b64('not-a-hash') })).toEqual({ pivotComplete: false, unpivotImportComplete: false, bootstrapComplete: false });
  });
});

describe('status outcome', () => {
  const config = defaultConfig();

  it('writes a merge patch of what changed only, with null for what went away, and nothing when equal', () => {
    expect(mergePatch({ a: 1, pools: { x: { ready: 1 }, y: { ready: 2 } } }, { a: 1, pools: { x: { ready: 2 } } })).toEqual({ pools: { x: { ready: 2 }, y: null } });
    expect(mergePatch({ a: [1, 2], b: { c: 1 } }, { b: { c: 1 }, a: [1, 2] })).toBeUndefined();
    expect(mergePatch(undefined, { phase: 'Pending' })).toEqual({ phase: 'Pending' });
    expect(jsonEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true);
  });

  it('maps each error kind to its conditions and requeue: waiting, stalling, transient', () => {
    const base = { generation: 2, accepted: false };
    const w = computeOutcome({ ...base, error: waiting('InfraProviderNotFound', 'missing') }, { observedGeneration: 1 }, config, T0);
    expect(w).toMatchObject({ result: 'waiting', retry: false, requeueAfterMs: config.waitIntervalMs, phase: 'Pending' });
    expect(w.status.observedGeneration).toBe(1);
    expect(w.status.conditions).toEqual([
      { type: 'Reconciling', status: 'True', reason: 'InfraProviderNotFound', message: 'missing', observedGeneration: 2, lastTransitionTime: '2026-01-01T00:00:00Z' },
      { type: 'Ready', status: 'False', reason: 'InfraProviderNotFound', message: 'missing', observedGeneration: 2, lastTransitionTime: '2026-01-01T00:00:00Z' },
    ]);
    const s = computeOutcome({ ...base, error: stalling('InvalidSpec', 'bad') }, undefined, config, T0);
    expect(s).toMatchObject({ result: 'stalled', phase: 'Failed', requeueAfterMs: config.resyncIntervalMs });
    expect(s.status.observedGeneration).toBe(2);
    const t = computeOutcome({ ...base, error: waiting('X', 'y') }, { phase: 'Provisioning' }, config, T0);
    expect(t.phase).toBe('Provisioning');
  });

  it('walks the pivot phases: Pivoting while moving, Pivoted until every stage (Pivoted included) is True, then Ready', () => {
    const healthy: DesiredCondition[] = [{ type: 'CNI', status: 'True', reason: 'Healthy', message: '' }];
    const pivoted = (status: 'True' | 'False'): DesiredCondition => ({ type: 'Pivoted', status, reason: status === 'True' ? 'PivotComplete' : 'WaitingForChild', message: '' });
    const base = { generation: 1, accepted: true, capiExists: true };
    const markers = (pivotComplete: boolean) => ({ pivotComplete, unpivotImportComplete: false, bootstrapComplete: true });
    expect(computeOutcome({ ...base, pivoting: true, markers: markers(false), stageConditions: [...healthy, pivoted('False')] }, undefined, config, T0).phase).toBe('Pivoting');
    expect(computeOutcome({ ...base, markers: markers(true), stageConditions: [...healthy, pivoted('False')] }, undefined, config, T0).phase).toBe('Pivoted');
    const ready = computeOutcome({ ...base, markers: markers(true), stageConditions: [...healthy, pivoted('True')] }, undefined, config, T0);
    expect([ready.phase, (ready.status.conditions as { type: string; status: string }[]).find((c) => c.type === 'Ready')?.status]).toEqual(['Ready', 'True']);
    // Never pivoting (switched off, or no cell): Ready on healthy stages alone
    expect(computeOutcome({ ...base, pivotDisabled: true, markers: markers(false), stageConditions: [...healthy, { type: 'Pivoted', status: 'True', reason: 'Disabled', message: '' }] }, undefined, config, T0).phase).toBe('Ready');
    expect(computeOutcome({ ...base, pivotDisabled: true, markers: markers(false), stageConditions: [{ type: 'CNI', status: 'False', reason: 'Progressing', message: '' }] }, undefined, config, T0).phase).toBe('Provisioning');
  });

  it('moves lastHeartbeat only with a status written for another reason, so a healthy cluster\'s resyncs write nothing', () => {
    // GIVEN a settled, connected cluster whose status recorded a heartbeat five minutes ago
    const healthy: DesiredCondition[] = [{ type: 'CNI', status: 'True', reason: 'Healthy', message: '' }];
    const observed = (at: Date, cni = healthy) => ({ generation: 1, accepted: true, capiExists: true, pivotDisabled: true, markers: { pivotComplete: false, unpivotImportComplete: false, bootstrapComplete: true }, stageConditions: cni, lastHeartbeat: at });
    const first = computeOutcome(observed(T0), undefined, config, T0);
    expect(first.status.lastHeartbeat).toBe('2026-01-01T00:00:00Z');
    const later = new Date(T0.getTime() + 5 * 60_000);
    // WHEN a resync sees only newer heartbeats THEN the status is the same: nothing to write
    const resync = computeOutcome(observed(later), first.status, config, later);
    expect(mergePatch(first.status, resync.status)).toBeUndefined();
    // WHEN something else changes THEN the heartbeat is brought up to date with it
    const changed = computeOutcome(observed(later, [{ type: 'CNI', status: 'False', reason: 'Progressing', message: 'cilium 2/3 ready' }]), first.status, config, later);
    expect(changed.status.lastHeartbeat).toBe('2026-01-01T00:05:00Z');
  });
});

describe('events', () => {
  it('are recorded for transitions only: phase changes, Stalled appearing, stages turning True or failing', () => {
    const cond = (type: string, status: string, reason: string) => ({ type, status, reason, message: `${type} says ${reason}` });
    const before = { phase: 'Pending', conditions: [cond('Ready', 'False', 'Progressing'), cond('CNI', 'Unknown', 'WaitingForStage'), cond('GPU', 'True', 'Disabled')] };
    const after = { phase: 'Failed', message: 'boom', conditions: [cond('Ready', 'False', 'ProvisioningTimeout'), cond('Stalled', 'True', 'ProvisioningTimeout'), cond('CNI', 'True', 'Healthy'), cond('CertManager', 'False', 'Degraded'), cond('GPU', 'True', 'Disabled')] };
    expect(statusEvents(before, after)).toEqual([
      { type: 'Warning', reason: 'Failed', message: 'phase changed from Pending to Failed: boom' },
      { type: 'Warning', reason: 'ProvisioningTimeout', message: 'Stalled says ProvisioningTimeout' },
      { type: 'Normal', reason: 'Healthy', message: 'CNI: CNI says Healthy' },
      { type: 'Warning', reason: 'Degraded', message: 'CertManager: CertManager says Degraded' },
    ]);
    expect(statusEvents(after, after)).toEqual([]);
  });
});

describe('GitOps health', () => {
  it('reads Argo CD Application health with the most useful message', () => {
    expect(applicationHealth({ status: { health: { status: 'Healthy' } } })).toEqual({ health: 'Healthy' });
    expect(applicationHealth({ status: { health: { status: 'Degraded', message: 'CrashLoopBackOff' } } })).toEqual({ health: 'Degraded', message: 'CrashLoopBackOff' });
    expect(applicationHealth({ status: { health: { status: 'Unknown' }, conditions: [{ type: 'InvalidSpecError', message: 'there are no clusters with this name: dev' }] } }))
      .toEqual({ health: 'Unknown', message: 'there are no clusters with this name: dev' });
    expect(applicationHealth({})).toEqual({ health: 'Unknown', message: 'not assessed by Argo CD yet' });
  });

  it('maps Flux kstatus conditions to health', () => {
    const flux = (conditions: unknown[], spec = {}) => fluxHealth({ spec, status: { conditions } });
    expect(flux([{ type: 'Ready', status: 'True' }])).toEqual({ health: 'Healthy' });
    expect(flux([{ type: 'Ready', status: 'False', reason: 'DependencyNotReady', message: 'dependency not ready' }])).toEqual({ health: 'Progressing', message: 'dependency not ready' });
    expect(flux([{ type: 'Ready', status: 'False', reason: 'InstallFailed', message: 'x' }])).toEqual({ health: 'Degraded', message: 'x' });
    expect(flux([{ type: 'Ready', status: 'False', reason: 'InstallFailed' }, { type: 'Reconciling', status: 'True' }])).toEqual({ health: 'Progressing' });
    expect(flux([], { suspend: true }).health).toBe('Suspended');
    expect(flux([])).toEqual({ health: 'Unknown', message: 'not reconciled by Flux yet' });
  });

  it('turns addon health into stage conditions: worst part first, waiting messages for stages not started', () => {
    // GIVEN the dev example with CNI healthy and cert-manager degraded, mesh off
    const renderer = specRenderer();
    const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
    if (!dev) throw new Error('no dev example');
    const app = (id: string, health?: GitOpsObject['health'], message?: string): GitOpsObject => ({ kind: 'Application', namespace: 'argocd', name: `dev-${id}`, ...(health ? { health } : {}), ...(message ? { message } : {}) });
    const conditions = stageConditions({
      capiClusterId: 'capi-dev/dev', addons: renderer.addons(dev), catalog: renderer.versions.addons, flags: dev.spec as unknown as Record<string, unknown>,
      capi: { deleting: false, infrastructureReady: true, controlPlaneInitialized: true },
      pools: { pools: { general: { desired: 2, current: 2, ready: 2, autoscaling: false, message: '2/2 ready' } }, readyWorkers: 2, allReady: true, notReady: [] },
      objects: new Map([['cilium', app('cilium', 'Healthy')], ['cert-manager', app('cert-manager', 'Degraded', 'webhook down')]]),
      agentObject: app('lattice-agent'), agent: { connected: false }, pivot: { state: 'none' },
    });
    const byType = Object.fromEntries(conditions.map((c) => [c.type, c]));
    // THEN
    expect(byType[StageCondition.CNI]).toEqual({ type: 'CNI', status: 'True', reason: 'Healthy', message: 'cilium: Application argocd/dev-cilium is Healthy; workers 2/2 ready' });
    expect(byType[StageCondition.CertManager]).toEqual({ type: 'CertManager', status: 'False', reason: 'Degraded', message: 'cert-manager: Application argocd/dev-cert-manager is Degraded: webhook down' });
    expect(byType[StageCondition.Mesh]).toEqual({ type: 'Mesh', status: 'True', reason: 'Disabled', message: 'services is false in the spec' });
    expect(byType[StageCondition.Secrets]).toMatchObject({ status: 'Unknown', reason: 'WaitingForStage', message: 'waiting for the certificates stage (CertManager is False)' });
    expect(byType[StageCondition.AgentConnected]).toMatchObject({ status: 'Unknown', reason: 'WaitingForStage' });
    expect(byType[StageCondition.Pivoted]).toMatchObject({ status: 'Unknown', reason: 'NotPivoted' });
  });
});

describe('configuration', () => {
  it('takes flags over LATTICE_* env over defaults, and freezes the result', () => {
    const loaded = loadControllerConfig({ gitops: 'flux', resyncInterval: '10m' }, { LATTICE_GITOPS: 'argocd', LATTICE_CONCURRENCY: '8', LATTICE_SELF: 'mgmt', POD_NAME: 'pod-1' }, { identitySuffix: 'abc' });
    if (!loaded.ok) throw new Error(loaded.errors.join('; '));
    expect(loaded.value).toMatchObject({ gitops: 'flux', concurrency: 8, self: 'mgmt', resyncIntervalMs: 600_000, identity: 'pod-1_abc', provisioningTimeoutMs: 1_800_000, namespace: 'lattice-system' });
    expect(Object.isFrozen(loaded.value)).toBe(true);
  });

  it('reports every bad setting at once, naming where it came from', () => {
    const loaded = loadControllerConfig({ gitops: 'jenkins', port: '99999' }, { LATTICE_RESYNC_INTERVAL: 'often', LATTICE_NAMESPACE: 'Lattice' }, { identitySuffix: 'x' });
    expect(loaded).toEqual({ ok: false, errors: [
      '--gitops: expected argocd or flux, found "jenkins"',
      'LATTICE_NAMESPACE: expected a DNS label (lowercase letters, digits and -), found "Lattice"',
      'LATTICE_RESYNC_INTERVAL: expected a positive duration such as 500ms, 30s or 5m, found "often"',
      '--port: expected an integer from 0 to 65535, found "99999"',
    ] });
    expect(loadControllerConfig({ leaseDuration: '5s', renewDeadline: '10s' }, {}, { identitySuffix: 'x' })).toEqual({ ok: false, errors: ['leader election: expected --lease-duration > --renew-deadline > --retry-period'] });
  });

  it('parses and prints Go-style durations, and pluralizes kinds as controller-gen does', () => {
    expect(['500ms', '30s', '5m', '1h30m', '0', '1.5s', '5', '-1s'].map(parseDuration)).toEqual([500, 30_000, 300_000, 5_400_000, 0, 1500, undefined, undefined]);
    expect([500, 30_000, 600_000, 5_400_000].map(formatDuration)).toEqual(['500ms', '30s', '10m', '1h30m']);
    expect(['Cluster', 'AWSClusterStaticIdentity', 'KubeadmControlPlane', 'Ingress'].map(pluralOf)).toEqual(['clusters', 'awsclusterstaticidentities', 'kubeadmcontrolplanes', 'ingresses']);
  });
});

describe('unpivot import checks', () => {
  const ctx = { name: 'dev', namespace: 'capi-dev' };
  const o = (kind: string, name: string, uid: string, owners: { uid: string; kind: string; name: string }[] = [], apiVersion = 'cluster.x-k8s.io/v1beta2') => ({
    sourceUid: uid,
    object: { apiVersion, kind, metadata: { name, namespace: 'capi-dev' }, spec: {} } as Record<string, unknown>,
    owners: owners.map((w) => ({ ...w, apiVersion: 'cluster.x-k8s.io/v1beta2', controller: true })),
  });
  const cluster = o('Cluster', 'dev', 'c1');
  const md = o('MachineDeployment', 'dev-md', 'm1', [{ uid: 'c1', kind: 'Cluster', name: 'dev' }]);

  it('accepts exactly the cluster\'s graph, and pauses whatever the child sent', () => {
    const imported = checkedImport(ctx, [cluster, md]);
    expect(imported.map((i) => [i.object.kind, isPaused(i.object as unknown as ListedObject)])).toEqual([['Cluster', true], ['MachineDeployment', true]]);
  });

  it('refuses what a compromised child could use to make the parent provision something', () => {
    const refusal = (objects: Parameters<typeof checkedImport>[1]) => {
      try {
        checkedImport(ctx, objects);
        return 'accepted';
      } catch (e) {
        return e instanceof LatticeError ? `${e.kind} ${e.code}` : 'crashed';
      }
    };
    expect(refusal([])).toBe('stalling UnpivotEmpty');
    expect(refusal([cluster, md, o('Cluster', 'extra', 'c2')])).toBe('stalling UnpivotRejected');
    expect(refusal([o('Cluster', 'other', 'c3')])).toBe('stalling UnpivotRejected');
    expect(refusal([cluster, o('MachineDeployment', 'loose', 'm2')])).toBe('stalling UnpivotRejected');
    expect(refusal([cluster, o('Secret', 'lattice-state', 's1', [], 'v1')])).toBe('stalling UnpivotRejected');
  });
});
