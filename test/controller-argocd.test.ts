/**
 * The controller on the Argo CD path, against the simulated API server, Cluster API and Argo CD through the
 * real client: a cluster goes from its spec to "agent stage pending", every stage condition going Unknown →
 * False → True with its message; the cluster is registered in Argo CD from CAPI's kubeconfig; provider
 * credentials are copied (and copied again when they change); a settled cluster costs no writes; and
 * `kubectl get lc` columns resolve against what the controller wrote.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { loadCrds } from '../cli/assets.js';
import { specRenderer } from '../cli/load.js';
import { argocdObjects } from '../core/flavor/flavors.js';
import { isRecord } from '../core/data.js';
import { StageCondition } from '../core/plan/stages.js';
import { startHarness, StatusRecorder, conditionOf, type Harness, eventually } from '../controller/testing.js';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { ArgoCdSim, type SyncResult } from '../sim/gitops/argocd.js';
import { withBuiltIns } from '../sim/gitops/health.js';
import { createHealthChecks, type HealthChecks } from '../sim/health/lua.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';

type Obj = KubernetesObject & Record<string, unknown>;
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});

const renderer = specRenderer();
const source = { repoURL: 'https://git.example.com/clusters.git', path: 'clusters', targetRevision: 'main' };
const example = (name: string) => {
  const c = exampleClusters().find((x) => x.metadata.name === name);
  if (!c) throw new Error(`no example ${name}`);
  return c;
};
/** What the plugin prints for one example cluster, parsed. */
const argoObjects = (name: string): Obj[] => {
  const text = renderer.renderObjects(argocdObjects(renderer, example(name), { namespace: 'argocd', project: 'default', plugin: 'lattice', source })).map((d) => `---\n${d.text}`).join('');
  return parseAllDocuments(text).map((d) => d.toJS() as Obj);
};

let sim: SimClients;
let checks: HealthChecks;
let capi: CapiSim;
let argo: ArgoCdSim;
let harness: Harness;
let recorder: StatusRecorder;

const lc = async (name: string): Promise<Obj> => (await sim.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name })) as Obj;
const secret = (namespace: string, name: string) => sim.core.readNamespacedSecret({ namespace, name });
const decode = (v: string | undefined) => Buffer.from(v ?? '', 'base64').toString('utf8');

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'lattice-system', 'capa-system'] });
  checks = await createHealthChecks();
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions });
  // The application controller is stepped by the test (reconcileApplications), so every "not healthy yet" is observable.
  argo = new ArgoCdSim({ kubeConfig: sim.kc, health: withBuiltIns(checks), pollMs: 20 });
  recorder = new StatusRecorder(sim.kc);
  await recorder.start();
  capi.start();
  harness = startHarness({ sim, config: { progressIntervalMs: 100 } });
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
}, 60_000);
afterAll(async () => {
  await harness.stop();
  await capi.stop();
  await recorder.stop();
  checks.close();
  await sim.server.close();
}, 60_000);
afterEach(() => {
  recorder.assertKstatus();
});

describe('lattice controller with Argo CD', () => {
  it('brings a cluster from its spec to "agent stage pending", each stage condition going Unknown, False, True', async () => {
    // GIVEN the plugin's output for the dev example, with Cluster API held before the infrastructure is ready
    capi.setFault('dev', { step: 'infrastructure', mode: 'stall' });
    const objects = argoObjects('dev');
    // WHEN Argo CD syncs it (wave by wave, each wave gated on health)
    const sync: Promise<SyncResult> = argo.sync(objects);

    // THEN the spec is accepted (the wave-0 gate), the CAPI objects arrive and the phase turns Provisioning
    await eventually(async () => expect(rec((await lc('dev')).status).phase).toBe('Provisioning'));
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.InfrastructureReady)).toMatchObject({ status: 'False', reason: 'Provisioning' }));
    // WHEN the infrastructure comes up but the control plane is held
    capi.setFault('dev', { step: 'controlPlane', mode: 'stall' });
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.ControlPlaneInitialized)).toMatchObject({ status: 'False', reason: 'Initializing' }));
    expect(conditionOf(await lc('dev'), StageCondition.InfrastructureReady)?.status).toBe('True');
    capi.clearFault('dev');
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.ControlPlaneInitialized)?.status).toBe('True'));

    // AND each addon stage: its Applications appear (False: not assessed yet), then Argo CD reports them Healthy (True)
    for (const type of [StageCondition.CNI, StageCondition.CertManager, StageCondition.Secrets, StageCondition.Metrics, StageCondition.Monitoring, StageCondition.Providers]) {
      await eventually(async () => expect(conditionOf(await lc('dev'), type)?.status, type).toBe('False'));
      await argo.reconcileApplications();
      await eventually(async () => expect(conditionOf(await lc('dev'), type)?.status, type).toBe('True'));
    }
    // AND the last wave, the agent: pending, waiting for the agent to connect
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.AgentConnected)?.status).toBe('False'));
    await argo.reconcileApplications();
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.AgentConnected)?.message).toBe('waiting for the agent to connect: Application argocd/dev-lattice-agent is Healthy'));
    expect(await sync).toEqual({ phase: 'Succeeded', message: 'successfully synced (all tasks run)', waves: [0, 1, 2, 3, 5, 6, 7, 8, 9] });

    // THEN the histories: every enabled stage went Unknown → False → True; switched-off features are True/Disabled
    for (const type of [StageCondition.InfrastructureReady, StageCondition.ControlPlaneInitialized, StageCondition.CNI, StageCondition.CertManager, StageCondition.Secrets, StageCondition.Metrics, StageCondition.Monitoring, StageCondition.Providers]) {
      expect(recorder.history('dev', type), type).toEqual(['Unknown', 'False', 'True']);
    }
    for (const type of [StageCondition.Mesh, StageCondition.Backups, StageCondition.GPU]) {
      expect(recorder.history('dev', type), type).toEqual(['True']);
      expect(conditionOf(await lc('dev'), type)?.reason).toBe('Disabled');
    }
    expect(recorder.history('dev', StageCondition.AgentConnected)).toEqual(['Unknown', 'False']);
    expect(recorder.history('dev', 'Ready')).toEqual(['False']);
    // with messages precise enough to act on
    expect(recorder.firstMessage('dev', StageCondition.CertManager, 'Unknown')).toBe('waiting for the infrastructure stage (InfrastructureReady is Unknown)');
    expect(recorder.firstMessage('dev', StageCondition.CertManager, 'False')).toBe('cert-manager: Application argocd/dev-cert-manager is Unknown: not assessed by Argo CD yet');
    expect(recorder.firstMessage('dev', StageCondition.CertManager, 'True')).toBe('cert-manager: Application argocd/dev-cert-manager is Healthy');
    expect(recorder.firstMessage('dev', StageCondition.Monitoring, 'True')).toBe('victoria-metrics: Application argocd/dev-victoria-metrics is Healthy; keda: Application argocd/dev-keda is Healthy');
    expect(recorder.firstMessage('dev', StageCondition.InfrastructureReady, 'Unknown')).toBe('waiting for the Cluster API Cluster capi-dev/dev to be created');
    expect(recorder.firstMessage('dev', StageCondition.Backups, 'True')).toBe('backups is false in the spec');
    // the phases, in order
    expect([...new Set(recorder.of('dev').map((o) => rec(o.status).phase).filter((p) => p !== undefined))]).toEqual(['Pending', 'Provisioning']);

    // AND the status carries the counts, the pools, the endpoint and the generation
    await eventually(async () => expect(rec((await lc('dev')).status)).toMatchObject({
      observedGeneration: 1, phase: 'Provisioning', readyControlPlane: 1, readyWorkers: 2, endpoint: 'dev.capi-dev.capi-sim.test:6443',
      workerPools: { general: { desired: 2, current: 2, ready: 2, autoscaling: false, message: '2/2 ready' } },
      pivotComplete: false, bootstrapComplete: false, unpivotImportComplete: false,
    }));
    const status = rec((await lc('dev')).status);
    expect(conditionOf(await lc('dev'), 'Reconciling')).toEqual({ status: 'True', reason: 'Progressing', message: 'AgentConnected: waiting for the agent to connect: Application argocd/dev-lattice-agent is Healthy' });
    for (const c of status.conditions as Record<string, unknown>[]) expect(c.observedGeneration, String(c.type)).toBe(1);
  }, 60_000);

  it('registers the cluster in Argo CD with the credentials of the CAPI kubeconfig and the cluster\'s labels', async () => {
    // GIVEN the dev cluster, registered by the previous test
    const registration = await secret('argocd', 'cluster-dev');
    const kubeconfig = parse(decode((await secret('capi-dev', 'dev-kubeconfig')).data?.value)) as { clusters: { cluster: Record<string, string> }[]; users: { user: Record<string, string> }[] };
    const cluster = kubeconfig.clusters[0]?.cluster ?? {};
    const user = kubeconfig.users[0]?.user ?? {};
    // THEN it is an Argo CD cluster Secret named for the cluster, with the LatticeCluster's labels
    expect(registration.metadata?.labels).toEqual({
      'argocd.argoproj.io/secret-type': 'cluster', 'app.kubernetes.io/managed-by': 'lattice-controller', 'lattice.dev/cluster': 'dev', 'lattice.dev/environment': 'dev',
    });
    // AND its data decodes to the name, the server and a config JSON with the kubeconfig's certificate data
    const data = registration.data ?? {};
    expect(decode(data.name)).toBe('dev');
    expect(decode(data.server)).toBe('https://dev.capi-dev.capi-sim.test:6443');
    expect(JSON.parse(decode(data.config))).toEqual({
      tlsClientConfig: { insecure: false, caData: cluster['certificate-authority-data'], certData: user['client-certificate-data'], keyData: user['client-key-data'] },
    });
    expect(cluster['certificate-authority-data']).toMatch(/^[A-Za-z0-9+/=]{20,}$/);

    // WHEN someone edits the registration by hand
    await sim.core.replaceNamespacedSecret({ namespace: 'argocd', name: 'cluster-dev', body: { ...registration, data: { ...data, server: Buffer.from('https://evil.example.com').toString('base64') } } });
    // THEN the controller puts it back (its own Secrets are watched)
    await eventually(async () => expect(decode((await secret('argocd', 'cluster-dev')).data?.server)).toBe('https://dev.capi-dev.capi-sim.test:6443'));
    // AND no event, log or condition carries the key material
    const everything = JSON.stringify(recorder.seen) + JSON.stringify(await sim.core.listNamespacedEvent({ namespace: 'default' }));
    expect(everything).not.toContain(user['client-key-data']);
  }, 60_000);

  it('writes nothing while nothing changes: periodic resyncs of a settled cluster leave every resourceVersion alone', async () => {
    // GIVEN the settled dev cluster (requeued every ~100 ms while it waits for its agent)
    await eventually(async () => expect(conditionOf(await lc('dev'), StageCondition.AgentConnected)?.status).toBe('False'));
    const versions = async () => ({
      cluster: (await lc('dev')).metadata?.resourceVersion,
      registration: (await secret('argocd', 'cluster-dev')).metadata?.resourceVersion,
      state: (await secret('capi-dev', 'lattice-state')).metadata?.resourceVersion,
    });
    // Settled means two more reconciles leave everything as it was (counted, not timed).
    await eventually(async () => {
      const a = await versions();
      const n = harness.reconciles('dev');
      await eventually(() => expect(harness.reconciles('dev')).toBeGreaterThanOrEqual(n + 2));
      expect(await versions()).toEqual(a);
    });
    const before = await versions();
    const reconciles = harness.reconciles('dev');
    const writes = (await harness.controller.metrics.registry.getSingleMetricAsString('lattice_controller_status_writes_total'));
    // WHEN the controller reconciles it five more times
    await eventually(() => expect(harness.reconciles('dev')).toBeGreaterThanOrEqual(reconciles + 5));
    // THEN no object changed and no status write happened
    expect(await versions()).toEqual(before);
    expect(await harness.controller.metrics.registry.getSingleMetricAsString('lattice_controller_status_writes_total')).toBe(writes);
  }, 60_000);

  it('resolves every `kubectl get lc` column against the status the controller wrote', async () => {
    // GIVEN the CRD's printer columns and the dev cluster as stored
    const crd = loadCrds(REPO).map(rec).find((c) => rec(rec(c.spec).names).kind === 'LatticeCluster');
    const columns = (rec(rec(crd).spec).versions as Record<string, unknown>[])[0]?.additionalPrinterColumns as { name: string; jsonPath: string }[];
    const obj = await lc('dev');
    // WHEN each column's jsonPath is evaluated
    const row = Object.fromEntries(columns.map((c) => [c.name, jsonPath(obj, c.jsonPath)]));
    // THEN every column has a value, and the status ones show what the controller wrote
    expect(row).toMatchObject({ Phase: 'Provisioning', Provider: 'docker', Kubernetes: 'v1.34.1', Ready: 'False', Reason: 'WaitingForAgent', Endpoint: 'dev.capi-dev.capi-sim.test:6443' });
    for (const c of columns) expect(row[c.name], c.name).not.toBe(undefined);
  }, 60_000);

  it('copies the InfraProvider credentials into capi-<name> (and for AWS into CAPA\'s namespace with a static identity), again when they change', async () => {
    // GIVEN an AWS cluster whose InfraProvider's credentials Secret does not exist yet
    const prod = example('prod-eu');
    await sim.core.createNamespace({ body: { metadata: { name: 'capi-prod-eu', labels: { 'lattice.dev/cluster': 'prod-eu' } } } });
    await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'aws-prod', namespace: 'lattice-system' }, spec: { type: 'aws', region: 'eu-west-1', credentialsSecretRef: { name: 'aws-prod-credentials' } } } as KubernetesObject);
    await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'LatticeCluster', metadata: { name: 'prod-eu', labels: prod.metadata.labels ?? {} }, spec: prod.spec } as unknown as KubernetesObject);
    // THEN the spec is not accepted yet: observedGeneration stays unset, so Argo CD's wave 0 keeps waiting
    await eventually(async () => expect(conditionOf(await lc('prod-eu'), 'Ready')).toMatchObject({ status: 'False', reason: 'CredentialsNotFound', message: 'Secret lattice-system/aws-prod-credentials (credentials of InfraProvider aws-prod) does not exist' }));
    expect(rec((await lc('prod-eu')).status).observedGeneration).toBeUndefined();

    // WHEN the credentials appear
    const creds = { AccessKeyID: Buffer.from('AKIAEXAMPLE').toString('base64'), SecretAccessKey: Buffer.from('s3cr3t-v1').toString('base64') };
    await sim.core.createNamespacedSecret({ namespace: 'lattice-system', body: { metadata: { name: 'aws-prod-credentials' }, data: creds } });
    // THEN they are copied where the rendered objects look for them, and the spec is accepted
    await eventually(async () => expect((await secret('capi-prod-eu', 'aws-prod-credentials')).data).toEqual(creds));
    await eventually(async () => expect(rec((await lc('prod-eu')).status).observedGeneration).toBe(1));
    expect((await secret('capi-prod-eu', 'aws-prod-credentials')).metadata?.labels).toMatchObject({ 'lattice.dev/cluster': 'prod-eu', 'lattice.dev/infra-provider': 'aws-prod', 'clusterctl.cluster.x-k8s.io/move': 'true' });
    expect((await secret('capa-system', 'aws-prod-credentials')).data).toEqual(creds);
    const identity = rec(await sim.custom.getClusterCustomObject({ group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2', plural: 'awsclusterstaticidentities', name: 'aws-prod' }));
    expect(identity.spec).toEqual({ secretRef: 'aws-prod-credentials', allowedNamespaces: { selector: { matchExpressions: [{ key: 'lattice.dev/cluster', operator: 'Exists' }] } } });

    // WHEN the credentials are rotated
    const rotated = { ...creds, SecretAccessKey: Buffer.from('s3cr3t-v2').toString('base64') };
    const source = await secret('lattice-system', 'aws-prod-credentials');
    await sim.core.replaceNamespacedSecret({ namespace: 'lattice-system', name: 'aws-prod-credentials', body: { ...source, data: rotated } });
    // THEN both copies follow, and an event says so without the secret
    await eventually(async () => {
      expect((await secret('capi-prod-eu', 'aws-prod-credentials')).data).toEqual(rotated);
      expect((await secret('capa-system', 'aws-prod-credentials')).data).toEqual(rotated);
    });
    const events = (await sim.core.listNamespacedEvent({ namespace: 'default' })).items.filter((e) => e.involvedObject.name === 'prod-eu');
    expect(events.filter((e) => e.reason === 'CredentialsCopied').map((e) => e.message)).toContain('credentials of InfraProvider aws-prod updated in Secret capi-prod-eu/aws-prod-credentials');
    expect(JSON.stringify(events)).not.toContain('s3cr3t');
  }, 60_000);
});

/** kubectl's JSONPath for the forms printer columns use: `.a.b` and `.a[?(@.k=="v")].b`. */
function jsonPath(obj: unknown, path: string): unknown {
  let node: unknown = obj;
  for (const part of path.split(/\.(?![^[]*\])/).filter((p) => p !== '')) {
    const filter = /^(\w+)\[\?\(@\.(\w+)=="([^"]*)"\)\]$/.exec(part);
    if (filter) {
      const [, field, key, value] = filter;
      const list = rec(node)[field ?? ''];
      node = Array.isArray(list) ? list.find((e) => rec(e)[key ?? ''] === value) : undefined;
    } else {
      node = rec(node)[part];
    }
  }
  return node;
}
