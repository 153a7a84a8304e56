/**
 * The simulated Cluster API against a sim API server with the upstream CRD schemas (validation on),
 * through client-node: the example clusters rendered by specRenderer() go through the four steps with
 * the objects and status shapes CAPI writes, and every write the simulator makes must pass the schemas
 * with strict field validation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CoreV1Api, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../../cli/load.js';
import type { LatticeCluster } from '../../core/spec/model.js';
import { REPO, SHARED, exampleClusters } from '../../test/support/repo.js';
import { eventually, startSim, type SimClients } from '../apiserver/testing.js';
import { createHealthChecks } from '../health/lua.js';
import { createCapiSim, type CapiSim, type CapiSimOptions, type ReconcileReport } from './index.js';
import { list, rec, str, type Json } from './kube.js';

const renderer = specRenderer();
const examples = exampleClusters();
const CAPI = { group: 'cluster.x-k8s.io', version: 'v1beta2' };
const KCP = { group: 'controlplane.cluster.x-k8s.io', version: 'v1beta2' };
const BOOTSTRAP = { group: 'bootstrap.cluster.x-k8s.io', version: 'v1beta2' };
const INFRA = { group: 'infrastructure.cluster.x-k8s.io', version: 'v1beta2' };

let sim: SimClients;

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')] });
});
afterAll(async () => {
  await sim.server.close();
});

/** An example cluster under another name, so that each test has its own namespace. */
function example(name: string, as = name): LatticeCluster {
  const found = examples.find((c) => c.metadata.name === name);
  if (!found) throw new Error(`no example cluster ${name}`);
  const copy = structuredClone(found);
  copy.metadata.name = as;
  return copy;
}

/** Renders the cluster and applies every document, the way the GitOps engine would. */
async function apply(cluster: LatticeCluster, edit: (doc: Json) => Json = (d) => d): Promise<string> {
  for (const d of renderer.renderCluster(cluster)) {
    await sim.objects.create(edit(rec(parse(d.text))) as unknown as KubernetesObject);
  }
  return `capi-${cluster.metadata.name}`;
}

/** A simulator for one cluster only (tests share the server), with the renderer's apiVersions. */
function capiSim(name: string, options: Partial<CapiSimOptions> = {}): CapiSim {
  return createCapiSim({
    kubeConfig: sim.kc,
    apiVersions: renderer.versions.apiVersions,
    clusters: (c) => c.name === name,
    ...options,
  });
}

async function passes(capi: CapiSim, n: number): Promise<ReconcileReport> {
  let last: ReconcileReport = { clusters: [], writes: 0 };
  for (let i = 0; i < n; i++) last = await capi.reconcileOnce();
  return last;
}

type Gv = { group: string; version: string };

async function get(gv: Gv, plural: string, namespace: string, name: string): Promise<Json> {
  return rec(await sim.custom.getNamespacedCustomObject({ ...gv, namespace, plural, name }) as unknown);
}

async function items(gv: Gv, plural: string, namespace: string): Promise<Json[]> {
  return list(rec(await sim.custom.listNamespacedCustomObject({ ...gv, namespace, plural }) as unknown).items).map(rec);
}

async function gone(gv: Gv, plural: string, namespace: string, name: string): Promise<boolean> {
  try {
    await sim.custom.getNamespacedCustomObject({ ...gv, namespace, plural, name });
    return false;
  } catch {
    return true;
  }
}

const meta = (o: Json) => rec(o.metadata);
const status = (o: Json) => rec(o.status);
const condition = (o: Json, type: string) => list(status(o).conditions).map(rec).find((c) => c.type === type);
const owners = (o: Json) => list(meta(o).ownerReferences).map(rec);
const controllerOf = (o: Json) => owners(o).find((r) => r.controller === true);
const name = (o: Json) => str(meta(o).name) ?? '';

async function secret(namespace: string, secretName: string) {
  return sim.core.readNamespacedSecret({ namespace, name: secretName });
}

async function setCluster(namespace: string, clusterName: string, change: (c: Json) => Json): Promise<void> {
  const current = await get(CAPI, 'clusters', namespace, clusterName);
  await sim.custom.replaceNamespacedCustomObject({ ...CAPI, namespace, plural: 'clusters', name: clusterName, body: change(current) });
}

describe('createCapiSim: the four steps', () => {
  it('docker/kubeadm dev: each pass completes one step, with the objects, owners and status CAPI writes', async () => {
    // GIVEN the rendered dev cluster in the management cluster, and a simulator
    const ns = await apply(example('dev'));
    const capi = capiSim('dev');

    // WHEN one pass runs
    const first = await capi.reconcileOnce();
    // THEN the infrastructure is provisioned, and nothing more
    expect(first.clusters).toEqual([{ namespace: ns, name: 'dev', reached: 'infrastructure', state: 'progressing' }]);
    const cluster1 = await get(CAPI, 'clusters', ns, 'dev');
    expect(meta(cluster1).finalizers).toEqual(['cluster.cluster.x-k8s.io']);
    expect(status(cluster1)).toMatchObject({ phase: 'Provisioned', initialization: { infrastructureProvisioned: true }, observedGeneration: meta(cluster1).generation });
    expect(condition(cluster1, 'InfrastructureReady')).toMatchObject({ status: 'True', reason: 'Ready' });
    expect(condition(cluster1, 'ControlPlaneInitialized')).toMatchObject({ status: 'False', reason: 'NotInitialized' });
    expect(rec(cluster1.spec).controlPlaneEndpoint).toEqual({ host: 'dev.capi-dev.capi-sim.test', port: 6443 });
    const devCluster = await get(INFRA, 'devclusters', ns, 'dev');
    expect(rec(devCluster.spec).controlPlaneEndpoint).toEqual({ host: 'dev.capi-dev.capi-sim.test', port: 6443 });
    expect(status(devCluster)).toMatchObject({ initialization: { provisioned: true } });
    expect(condition(devCluster, 'Ready')).toMatchObject({ status: 'True' });
    // AND the Cluster owns what it references, as the CAPI controllers set it (what clusterctl move walks)
    const clusterRef = { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster', name: 'dev', uid: meta(cluster1).uid };
    expect(owners(devCluster)).toEqual([{ ...clusterRef, controller: true, blockOwnerDeletion: true }]);
    const kcp = await get(KCP, 'kubeadmcontrolplanes', ns, 'dev-control-plane');
    expect(owners(kcp)).toEqual([{ ...clusterRef, controller: true, blockOwnerDeletion: true }]);
    expect(owners(await get(CAPI, 'machinedeployments', ns, 'dev-pool-general'))).toEqual([clusterRef]);
    expect(owners(await get(CAPI, 'machinehealthchecks', ns, 'dev-pool-general'))).toEqual([clusterRef]);
    for (const t of await items(INFRA, 'devmachinetemplates', ns)) expect(owners(t)).toEqual([clusterRef]);
    for (const t of await items(BOOTSTRAP, 'kubeadmconfigtemplates', ns)) expect(owners(t)).toEqual([clusterRef]);
    expect(await items(CAPI, 'machines', ns)).toEqual([]);

    // WHEN the second pass runs
    await capi.reconcileOnce();
    // THEN the control plane is initialized: one Machine controlled by the KCP, its KubeadmConfig controlled by the Machine
    const [cpMachine, ...moreMachines] = await items(CAPI, 'machines', ns);
    expect(moreMachines).toEqual([]);
    if (!cpMachine) throw new Error('no control plane machine');
    expect(name(cpMachine)).toMatch(/^dev-control-plane-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    expect(controllerOf(cpMachine)).toMatchObject({ kind: 'KubeadmControlPlane', name: 'dev-control-plane', uid: meta(kcp).uid });
    expect(meta(cpMachine).labels).toMatchObject({
      'cluster.x-k8s.io/cluster-name': 'dev', 'cluster.x-k8s.io/control-plane': '', 'cluster.x-k8s.io/control-plane-name': 'dev-control-plane',
    });
    expect(cpMachine.spec).toMatchObject({
      clusterName: 'dev', version: 'v1.34.1',
      bootstrap: { configRef: { apiGroup: 'bootstrap.cluster.x-k8s.io', kind: 'KubeadmConfig', name: name(cpMachine) }, dataSecretName: name(cpMachine) },
      infrastructureRef: { apiGroup: 'infrastructure.cluster.x-k8s.io', kind: 'DevMachine', name: name(cpMachine) },
    });
    expect(status(cpMachine)).toMatchObject({ phase: 'Provisioned', initialization: { bootstrapDataSecretCreated: true, infrastructureProvisioned: true } });
    expect(status(cpMachine).nodeRef).toBeUndefined();
    const config = await get(BOOTSTRAP, 'kubeadmconfigs', ns, name(cpMachine));
    expect(controllerOf(config)).toMatchObject({ kind: 'Machine', name: name(cpMachine), uid: meta(cpMachine).uid });
    expect(config.spec).toMatchObject({ format: 'cloud-config', initConfiguration: { skipPhases: ['addon/kube-proxy'] } });
    expect(status(config)).toMatchObject({ initialization: { dataSecretCreated: true }, dataSecretName: name(cpMachine) });
    const data = await secret(ns, name(cpMachine));
    expect(data.type).toBe('cluster.x-k8s.io/secret');
    expect(data.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'KubeadmConfig', name: name(cpMachine), controller: true });
    // AND DevMachine is not served by the pinned CRDs, so no infra machine was created (the Machine points at it anyway)
    expect((await sim.custom.getAPIResources(INFRA)).resources.map((r) => r.kind)).not.toContain('DevMachine');
    // AND the KCP secrets have CAPI's names, type, label and controller owner
    for (const purpose of ['ca', 'etcd', 'proxy', 'sa', 'kubeconfig']) {
      const s = await secret(ns, `dev-${purpose}`);
      expect(s.type).toBe('cluster.x-k8s.io/secret');
      expect(s.metadata?.labels).toEqual({ 'cluster.x-k8s.io/cluster-name': 'dev' });
      expect(s.metadata?.ownerReferences).toEqual([
        { apiVersion: 'controlplane.cluster.x-k8s.io/v1beta2', kind: 'KubeadmControlPlane', name: 'dev-control-plane', uid: meta(kcp).uid, controller: true, blockOwnerDeletion: true },
      ]);
    }
    const kubeconfig = rec(parse(Buffer.from((await secret(ns, 'dev-kubeconfig')).data?.value ?? '', 'base64').toString('utf8')));
    expect(kubeconfig).toMatchObject({
      'current-context': 'dev-admin@dev',
      clusters: [{ name: 'dev', cluster: { server: 'https://dev.capi-dev.capi-sim.test:6443' } }],
      users: [{ name: 'dev-admin' }],
    });
    const kcp2 = await get(KCP, 'kubeadmcontrolplanes', ns, 'dev-control-plane');
    expect(status(kcp2)).toMatchObject({
      initialization: { controlPlaneInitialized: true }, replicas: 1, readyReplicas: 0, availableReplicas: 0, upToDateReplicas: 1,
      selector: 'cluster.x-k8s.io/cluster-name=dev,cluster.x-k8s.io/control-plane',
    });
    expect(condition(kcp2, 'Available')).toMatchObject({ status: 'True' });
    const cluster2 = await get(CAPI, 'clusters', ns, 'dev');
    expect(status(cluster2)).toMatchObject({
      initialization: { infrastructureProvisioned: true, controlPlaneInitialized: true },
      controlPlane: { desiredReplicas: 1, replicas: 1, readyReplicas: 0, availableReplicas: 0, upToDateReplicas: 1 },
    });
    expect(condition(cluster2, 'ControlPlaneInitialized')).toMatchObject({ status: 'True', reason: 'Initialized' });
    expect(condition(cluster2, 'Available')).toMatchObject({ status: 'False' });

    // WHEN the third pass runs
    await capi.reconcileOnce();
    // THEN the MachineDeployment has a MachineSet and the MachineSet two Machines, not Ready yet
    const md = await get(CAPI, 'machinedeployments', ns, 'dev-pool-general');
    const [ms, ...moreSets] = await items(CAPI, 'machinesets', ns);
    expect(moreSets).toEqual([]);
    if (!ms) throw new Error('no machine set');
    expect(controllerOf(ms)).toMatchObject({ kind: 'MachineDeployment', name: 'dev-pool-general', uid: meta(md).uid });
    expect(rec(ms.spec)).toMatchObject({ clusterName: 'dev', replicas: 2 });
    const workers = (await items(CAPI, 'machines', ns)).filter((m) => controllerOf(m)?.kind === 'MachineSet');
    expect(workers).toHaveLength(2);
    for (const w of workers) {
      expect(controllerOf(w)).toMatchObject({ name: name(ms), uid: meta(ms).uid });
      expect(meta(w).labels).toMatchObject({ 'cluster.x-k8s.io/deployment-name': 'dev-pool-general', 'cluster.x-k8s.io/set-name': name(ms), 'lattice.dev/pool': 'general' });
      const workerConfig = await get(BOOTSTRAP, 'kubeadmconfigs', ns, name(w));
      expect(workerConfig.spec).toMatchObject({ joinConfiguration: { nodeRegistration: { kubeletExtraArgs: [{ name: 'node-labels', value: 'lattice.dev/pool=general' }] } } });
      expect(meta(workerConfig).annotations).toMatchObject({ 'cluster.x-k8s.io/cloned-from-name': 'dev-pool-general-bootstrap-0199a90765' });
    }
    expect(status(md)).toMatchObject({
      phase: 'ScalingUp', replicas: 2, readyReplicas: 0, availableReplicas: 0, upToDateReplicas: 2,
      selector: 'cluster.x-k8s.io/cluster-name=dev,lattice.dev/pool=general',
    });
    const mhc3 = await get(CAPI, 'machinehealthchecks', ns, 'dev-pool-general');
    expect(status(mhc3)).toMatchObject({ expectedMachines: 2, currentHealthy: 0, targets: workers.map(name).sort() });

    // WHEN the fourth pass runs
    const fourth = await capi.reconcileOnce();
    // THEN every Machine has its Node, and the Cluster is Available
    expect(fourth.clusters[0]).toMatchObject({ reached: 'nodes', state: 'ready' });
    for (const m of await items(CAPI, 'machines', ns)) {
      expect(status(m)).toMatchObject({ phase: 'Running', nodeRef: { name: name(m) } });
      expect(condition(m, 'Ready')).toMatchObject({ status: 'True' });
      expect(condition(m, 'Available')).toMatchObject({ status: 'True' });
    }
    expect(status(await get(CAPI, 'machinedeployments', ns, 'dev-pool-general'))).toMatchObject({ phase: 'Running', readyReplicas: 2, availableReplicas: 2 });
    // AND the MachineHealthCheck is healthy by Argo CD's built-in rule (expectedMachines == currentHealthy)
    expect(status(await get(CAPI, 'machinehealthchecks', ns, 'dev-pool-general'))).toMatchObject({ expectedMachines: 2, currentHealthy: 2, remediationsAllowed: 0 });
    expect(status(await get(KCP, 'kubeadmcontrolplanes', ns, 'dev-control-plane'))).toMatchObject({ readyReplicas: 1, availableReplicas: 1 });
    const cluster4 = await get(CAPI, 'clusters', ns, 'dev');
    for (const type of ['ControlPlaneAvailable', 'WorkersAvailable', 'Available']) expect(condition(cluster4, type)).toMatchObject({ status: 'True' });
    expect(status(cluster4)).toMatchObject({ phase: 'Provisioned', workers: { desiredReplicas: 2, replicas: 2, readyReplicas: 2, availableReplicas: 2 } });
  });

  it('does not write when nothing changed: a converged cluster keeps every resourceVersion', async () => {
    // GIVEN a cluster brought to Available, on a clock that moves a minute per pass (a rewritten timestamp would show)
    let clock = Date.parse('2026-11-21T12:00:00Z');
    const ns = await apply(example('dev', 'steady'));
    const capi = capiSim('steady', { now: () => new Date((clock += 60_000)) });
    expect((await passes(capi, 4)).clusters[0]?.state).toBe('ready');
    const versions = async () => {
      const out: Record<string, unknown> = {};
      const kinds: [Gv, string][] = [[CAPI, 'clusters'], [CAPI, 'machines'], [CAPI, 'machinesets'], [CAPI, 'machinedeployments'], [CAPI, 'machinehealthchecks'],
        [KCP, 'kubeadmcontrolplanes'], [BOOTSTRAP, 'kubeadmconfigs'], [BOOTSTRAP, 'kubeadmconfigtemplates'], [INFRA, 'devclusters'], [INFRA, 'devmachinetemplates']];
      for (const [gv, plural] of kinds) for (const o of await items(gv, plural, ns)) out[`${plural}/${name(o)}`] = meta(o).resourceVersion;
      for (const s of (await sim.core.listNamespacedSecret({ namespace: ns })).items) out[`secrets/${s.metadata?.name ?? ''}`] = s.metadata?.resourceVersion;
      return out;
    };
    const before = await versions();
    // WHEN more passes run
    const report = await passes(capi, 2);
    // THEN nothing was written
    expect(report.writes).toBe(0);
    expect(await versions()).toEqual(before);
  });

  it('step delays: a step completes once its delay has passed on the injected clock, which also stamps the conditions', async () => {
    // GIVEN a simulator whose infrastructure step takes 30 s on a fake clock
    let clock = Date.parse('2026-11-21T12:00:00Z');
    const ns = await apply(example('dev', 'slow'));
    const capi = capiSim('slow', { now: () => new Date(clock), stepDelayMs: { infrastructure: 30_000 } });
    // WHEN passes run until just before the delay is over
    await capi.reconcileOnce();
    clock += 29_000;
    const early = await capi.reconcileOnce();
    // THEN the infrastructure is still being provisioned
    expect(early.clusters[0]).toMatchObject({ reached: undefined, state: 'progressing' });
    const waiting = await get(CAPI, 'clusters', ns, 'slow');
    expect(status(waiting).phase).toBe('Provisioning');
    expect(condition(waiting, 'InfrastructureReady')).toMatchObject({ status: 'False', reason: 'NotReady', lastTransitionTime: '2026-11-21T12:00:00Z' });
    // WHEN the delay has passed
    clock += 1_000;
    // THEN the next pass provisions it, stamped with the injected clock
    expect((await capi.reconcileOnce()).clusters[0]).toMatchObject({ reached: 'infrastructure' });
    const provisioned = await get(CAPI, 'clusters', ns, 'slow');
    expect(condition(provisioned, 'InfrastructureReady')).toMatchObject({ status: 'True', lastTransitionTime: '2026-11-21T12:00:30Z' });
    // AND the next step, with no delay, follows on the next pass
    expect((await capi.reconcileOnce()).clusters[0]).toMatchObject({ reached: 'controlPlane' });
  });

  it('rke2 secure: RKE2ControlPlane Machines get RKE2Configs, and CAPRKE2 secrets (-ca, -cca, -kubeconfig; -token owned by the Cluster)', async () => {
    // GIVEN the FIPS RKE2 cluster on AWS
    const ns = await apply(example('secure'));
    const capi = capiSim('secure');
    // WHEN the simulator brings it to Available
    expect((await passes(capi, 4)).clusters[0]?.state).toBe('ready');
    // THEN the control plane has three Machines controlled by the RKE2ControlPlane, each with its RKE2Config
    const rke2 = await get(KCP, 'rke2controlplanes', ns, 'secure-control-plane');
    const machines = (await items(CAPI, 'machines', ns)).filter((m) => controllerOf(m)?.kind === 'RKE2ControlPlane');
    expect(machines).toHaveLength(3);
    for (const m of machines) {
      const config = await get(BOOTSTRAP, 'rke2configs', ns, name(m));
      expect(controllerOf(config)).toMatchObject({ kind: 'Machine', uid: meta(m).uid });
      expect(config.spec).toEqual({ agentConfig: { kubelet: { extraArgs: ['cloud-provider=external'] } } });
    }
    expect(status(rke2)).toMatchObject({ initialization: { controlPlaneInitialized: true }, replicas: 3, readyReplicas: 3, version: 'v1.33.5+rke2r1' });
    for (const purpose of ['ca', 'cca', 'kubeconfig']) expect((await secret(ns, `secure-${purpose}`)).metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'RKE2ControlPlane' });
    expect((await secret(ns, 'secure-token')).metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Cluster', name: 'secure' });
    await expect(secret(ns, 'secure-etcd')).rejects.toThrow();
    // AND the AWSCluster, a v1beta1-contract kind, reports ready: true with a v1beta1 Ready condition, and got an endpoint
    const aws = await get(INFRA, 'awsclusters', ns, 'secure');
    expect(status(aws)).toMatchObject({ ready: true, conditions: [{ type: 'Ready', status: 'True' }] });
    expect(rec(aws.spec).controlPlaneEndpoint).toEqual({ host: 'secure.capi-secure.capi-sim.test', port: 6443 });
  });

  it('proxmox lab and openstack edge-dc1: the user-given endpoint is copied to the Cluster; v1beta1-contract status shapes', async () => {
    // GIVEN the Proxmox and OpenStack clusters
    const lab = await apply(example('lab'));
    const edge = await apply(example('edge-dc1'));
    const capi = createCapiSim({ kubeConfig: sim.kc, apiVersions: renderer.versions.apiVersions, clusters: (c) => c.name === 'lab' || c.name === 'edge-dc1' });
    // WHEN the simulator runs four passes
    const report = await passes(capi, 4);
    // THEN both are Available
    expect(report.clusters.map((c) => c.state)).toEqual(['ready', 'ready']);
    // AND the Proxmox VIP from the spec is the Cluster's endpoint, and the ProxmoxCluster (v1alpha1) is ready
    expect(rec((await get(CAPI, 'clusters', lab, 'lab')).spec).controlPlaneEndpoint).toEqual({ host: '10.10.0.100', port: 6443 });
    const pve = await get({ ...INFRA, version: 'v1alpha1' }, 'proxmoxclusters', lab, 'lab');
    expect(status(pve)).toMatchObject({ ready: true, conditions: [{ type: 'Ready', status: 'True' }] });
    // AND the OpenStackCluster (v1beta1) has both the v1beta1 ready flag and the v1beta2 initialization
    const os = await get({ ...INFRA, version: 'v1beta1' }, 'openstackclusters', edge, 'edge-dc1');
    expect(status(os)).toMatchObject({ ready: true, initialization: { provisioned: true } });
    // AND each has its control plane and workers (lab: 3 + 3, edge-dc1: 1 + 2)
    expect(await items(CAPI, 'machines', lab)).toHaveLength(6);
    expect(await items(CAPI, 'machines', edge)).toHaveLength(3);
  });

  it('autoscaled ml-inference: a MachineDeployment without spec.replicas gets the autoscaler minimum (0 here)', async () => {
    // GIVEN the GPU cluster: pool gpu autoscaled from 0, pool system with 2 replicas
    const ns = await apply(example('ml-inference'));
    const capi = capiSim('ml-inference');
    // WHEN the simulator brings it to Available
    expect((await passes(capi, 4)).clusters[0]?.state).toBe('ready');
    // THEN the gpu MachineSet wants 0 replicas and has no Machines, and both deployments are Running
    const sets = await items(CAPI, 'machinesets', ns);
    const gpu = sets.find((s) => controllerOf(s)?.name === 'ml-inference-pool-gpu');
    expect(rec(gpu?.spec).replicas).toBe(0);
    expect((await items(CAPI, 'machines', ns)).filter((m) => meta(m).labels !== undefined && rec(meta(m).labels)['lattice.dev/pool'] === 'gpu')).toEqual([]);
    expect(status(await get(CAPI, 'machinedeployments', ns, 'ml-inference-pool-gpu'))).toMatchObject({ phase: 'Running', replicas: 0 });
    expect(status(await get(CAPI, 'machinedeployments', ns, 'ml-inference-pool-system'))).toMatchObject({ phase: 'Running', replicas: 2, availableReplicas: 2 });
    expect(status(await get(CAPI, 'clusters', ns, 'ml-inference'))).toMatchObject({ workers: { desiredReplicas: 2, replicas: 2 } });
  });

  it('follows MachineDeployment changes: scaling resizes the MachineSet, a new template replaces it', async () => {
    // GIVEN a cluster brought to Available with 2 workers
    const ns = await apply(example('dev', 'elastic'));
    const capi = capiSim('elastic');
    await passes(capi, 4);
    const setMd = async (change: (spec: Json) => Json) => {
      const md = await get(CAPI, 'machinedeployments', ns, 'elastic-pool-general');
      await sim.custom.replaceNamespacedCustomObject({ ...CAPI, namespace: ns, plural: 'machinedeployments', name: 'elastic-pool-general', body: { ...md, spec: change(rec(md.spec)) } });
    };
    const workers = async () => (await items(CAPI, 'machines', ns)).filter((m) => controllerOf(m)?.kind === 'MachineSet');
    // WHEN the MachineDeployment is scaled to 3
    await setMd((s) => ({ ...s, replicas: 3 }));
    await capi.reconcileOnce();
    // THEN its MachineSet wants 3, and the third Machine is Running like the others
    const [ms] = await items(CAPI, 'machinesets', ns);
    expect(rec(ms?.spec).replicas).toBe(3);
    expect((await workers()).map((m) => status(m).phase)).toEqual(['Running', 'Running', 'Running']);
    // WHEN its template changes (a Kubernetes upgrade)
    await setMd((s) => ({ ...s, template: { ...rec(s.template), spec: { ...rec(rec(s.template).spec), version: 'v1.34.2' } } }));
    await capi.reconcileOnce();
    // THEN a new MachineSet replaces the old one, whose Machines the garbage collector removes
    const sets = await items(CAPI, 'machinesets', ns);
    expect(sets.map(name)).not.toContain(name(ms ?? {}));
    expect(sets).toHaveLength(1);
    await eventually(async () => {
      const now = await workers();
      expect(now).toHaveLength(3);
      for (const m of now) expect(rec(m.spec).version).toBe('v1.34.2');
    });
    // WHEN it is scaled down to 1
    await setMd((s) => ({ ...s, replicas: 1 }));
    const report = await passes(capi, 2);
    // THEN one worker is left and the Cluster counts it
    expect(await workers()).toHaveLength(1);
    expect(report.clusters[0]?.state).toBe('ready');
    expect(status(await get(CAPI, 'clusters', ns, 'elastic'))).toMatchObject({ workers: { desiredReplicas: 1, replicas: 1, readyReplicas: 1 } });
  });

  it('creates infra machines only where the kind is served: DockerMachineTemplate clones a DockerMachine per Machine', async () => {
    // GIVEN the dev cluster on the (served) Docker* kinds instead of Dev*
    const toDocker = (doc: Json): Json => {
      const s = rec(doc.spec);
      if (doc.kind === 'DevCluster') return { ...doc, kind: 'DockerCluster', spec: {} };
      if (doc.kind === 'DevMachineTemplate') return { ...doc, kind: 'DockerMachineTemplate', spec: { template: { spec: rec(rec(rec(rec(s.template).spec).backend).docker) } } };
      return JSON.parse(JSON.stringify(doc).replaceAll('"DevMachineTemplate"', '"DockerMachineTemplate"').replaceAll('"DevCluster"', '"DockerCluster"')) as Json;
    };
    const ns = await apply(example('dev', 'docker'), toDocker);
    const capi = capiSim('docker');
    // WHEN the simulator brings it to Available
    expect((await passes(capi, 4)).clusters[0]?.state).toBe('ready');
    // THEN every Machine has a DockerMachine controlled by it, cloned from its template and provisioned
    const machines = await items(CAPI, 'machines', ns);
    expect(machines).toHaveLength(3);
    for (const m of machines) {
      const dm = await get(INFRA, 'dockermachines', ns, name(m));
      expect(controllerOf(dm)).toMatchObject({ kind: 'Machine', uid: meta(m).uid });
      expect(meta(dm).annotations).toMatchObject({ 'cluster.x-k8s.io/cloned-from-groupkind': 'DockerMachineTemplate.infrastructure.cluster.x-k8s.io' });
      expect(dm.spec).toEqual({ extraMounts: [{ containerPath: '/var/run/docker.sock', hostPath: '/var/run/docker.sock' }] });
      expect(status(dm)).toMatchObject({ initialization: { provisioned: true } });
    }
  });
});

describe('createCapiSim: pause, pivot, faults, deletion', () => {
  it('honours spec.paused on the Cluster and the paused annotation on one object', async () => {
    // GIVEN a cluster with its infrastructure provisioned
    const ns = await apply(example('dev', 'paused'));
    const capi = capiSim('paused');
    await capi.reconcileOnce();
    // WHEN the Cluster is paused and passes run
    await setCluster(ns, 'paused', (c) => ({ ...c, spec: { ...rec(c.spec), paused: true } }));
    const report = await passes(capi, 3);
    // THEN it does not progress, and the v1beta2 Paused conditions say why
    expect(report.clusters[0]).toMatchObject({ state: 'paused', reached: 'infrastructure' });
    expect(await items(CAPI, 'machines', ns)).toEqual([]);
    expect(condition(await get(CAPI, 'clusters', ns, 'paused'), 'Paused')).toMatchObject({ status: 'True', reason: 'Paused', message: 'Cluster spec.paused is set to true' });
    expect(condition(await get(KCP, 'kubeadmcontrolplanes', ns, 'paused-control-plane'), 'Paused')).toMatchObject({ status: 'True' });
    expect((await passes(capi, 1)).writes).toBe(0);

    // WHEN the Cluster is unpaused but the control plane carries the paused annotation
    await setCluster(ns, 'paused', (c) => ({ ...c, spec: { ...rec(c.spec), paused: false } }));
    const kcp = await get(KCP, 'kubeadmcontrolplanes', ns, 'paused-control-plane');
    await sim.custom.replaceNamespacedCustomObject({ ...KCP, namespace: ns, plural: 'kubeadmcontrolplanes', name: 'paused-control-plane',
      body: { ...kcp, metadata: { ...meta(kcp), annotations: { 'cluster.x-k8s.io/paused': '' } } } });
    const held = await passes(capi, 3);
    // THEN the control plane step waits for it, and the Cluster is no longer marked paused
    expect(held.clusters[0]).toMatchObject({ state: 'progressing', reached: 'infrastructure' });
    expect(await items(CAPI, 'machines', ns)).toEqual([]);
    expect(condition(await get(CAPI, 'clusters', ns, 'paused'), 'Paused')).toMatchObject({ status: 'False', reason: 'NotPaused' });
    expect(condition(await get(KCP, 'kubeadmcontrolplanes', ns, 'paused-control-plane'), 'Paused')).toMatchObject({
      status: 'True', message: 'KubeadmControlPlane has the cluster.x-k8s.io/paused annotation',
    });

    // WHEN the annotation is removed
    const annotated = await get(KCP, 'kubeadmcontrolplanes', ns, 'paused-control-plane');
    await sim.custom.replaceNamespacedCustomObject({ ...KCP, namespace: ns, plural: 'kubeadmcontrolplanes', name: 'paused-control-plane',
      body: { ...annotated, metadata: { ...meta(annotated), annotations: {} } } });
    // THEN the next pass initializes the control plane
    expect((await capi.reconcileOnce()).clusters[0]).toMatchObject({ reached: 'controlPlane' });
  });

  it('leaves a Cluster annotated lattice.dev/pivoted-to alone entirely', async () => {
    // GIVEN a pivoted shadow: the Cluster carries lattice.dev/pivoted-to
    const ns = await apply(example('dev', 'shadow'), (d) => (d.kind === 'Cluster'
      ? { ...d, metadata: { ...meta(d), annotations: { 'lattice.dev/pivoted-to': 'shadow' } } } : d));
    const capi = capiSim('shadow');
    // WHEN passes run
    const report = await passes(capi, 3);
    // THEN nothing was written: no finalizer, no status, no owner references, no Machines
    expect(report).toEqual({ clusters: [{ namespace: ns, name: 'shadow', reached: undefined, state: 'pivoted' }], writes: 0 });
    const cluster = await get(CAPI, 'clusters', ns, 'shadow');
    expect(meta(cluster).finalizers).toBeUndefined();
    expect(cluster.status).toBeUndefined();
    expect(owners(await get(KCP, 'kubeadmcontrolplanes', ns, 'shadow-control-plane'))).toEqual([]);
  });

  it('stall: a stalled step never completes until the fault is cleared', async () => {
    // GIVEN a simulator built with a stall of the control plane step
    const ns = await apply(example('dev', 'stuck'));
    const capi = capiSim('stuck', { faults: { stuck: { step: 'controlPlane', mode: 'stall' } } });
    // WHEN passes run
    const report = await passes(capi, 4);
    // THEN the cluster stops after its infrastructure, with nothing failed
    expect(report.clusters[0]).toMatchObject({ state: 'stalled', reached: 'infrastructure' });
    expect(await items(CAPI, 'machines', ns)).toEqual([]);
    const cluster = await get(CAPI, 'clusters', ns, 'stuck');
    expect(status(cluster).phase).toBe('Provisioned');
    expect(condition(cluster, 'ControlPlaneInitialized')).toMatchObject({ status: 'False', reason: 'NotInitialized' });
    // WHEN the fault is cleared
    capi.clearFault('stuck');
    // THEN the next pass continues
    expect((await capi.reconcileOnce()).clusters[0]).toMatchObject({ reached: 'controlPlane' });
  });

  it('fail: the Cluster turns Failed with the step condition False and failure fields, which Argo CD reads as Degraded; clearing recovers', async () => {
    // GIVEN a cluster and a simulator, and a failure injected at runtime into the infrastructure step
    const ns = await apply(example('edge-dc1', 'broken'));
    const capi = capiSim('broken');
    capi.setFault({ namespace: ns, name: 'broken' }, { step: 'infrastructure', mode: 'fail', message: 'quota exceeded for floating IPs' });
    // WHEN passes run
    const report = await passes(capi, 2);
    // THEN the Cluster is Failed, InfrastructureReady says why, and the v1beta1 failure fields carry it
    expect(report.clusters[0]).toMatchObject({ state: 'failed', reached: undefined });
    const cluster = await get(CAPI, 'clusters', ns, 'broken');
    expect(status(cluster).phase).toBe('Failed');
    expect(condition(cluster, 'InfrastructureReady')).toMatchObject({ status: 'False', reason: 'ProvisioningFailed', message: 'quota exceeded for floating IPs' });
    expect(rec(rec(status(cluster).deprecated).v1beta1)).toEqual({ failureReason: 'CreateError', failureMessage: 'quota exceeded for floating IPs' });
    // AND the OpenStackCluster (v1beta1 contract) shows the failure in its own fields
    const os = await get({ ...INFRA, version: 'v1beta1' }, 'openstackclusters', ns, 'broken');
    expect(status(os)).toMatchObject({ ready: false, failureReason: 'CreateError', failureMessage: 'quota exceeded for floating IPs' });
    expect(condition(os, 'Ready')).toMatchObject({ status: 'False', severity: 'Error', reason: 'ProvisioningFailed' });
    // AND the shipped Argo CD health check reports the Cluster Degraded
    const checks = await createHealthChecks();
    try {
      expect(checks.health(cluster)).toEqual({ status: 'Degraded', message: 'CreateError: quota exceeded for floating IPs' });
      // WHEN the fault is cleared
      capi.clearFault({ namespace: ns, name: 'broken' });
      await passes(capi, 2);
      // THEN the cluster recovers: no failure fields, the control plane initialized, and the Cluster Healthy for the infrastructure wave
      const recovered = await get(CAPI, 'clusters', ns, 'broken');
      expect(status(recovered).phase).toBe('Provisioned');
      expect(status(recovered).deprecated).toBeUndefined();
      expect(checks.health(recovered)?.status).toBe('Healthy');
      expect(checks.health(await get(KCP, 'kubeadmcontrolplanes', ns, 'broken-control-plane'))?.status).toBe('Healthy');
    } finally {
      checks.close();
    }
  });

  it('deletion: tears down what it created and removes its finalizer only after the configured delay', async () => {
    // GIVEN a cluster brought to Available, with a fake clock and a 60 s teardown
    let clock = Date.parse('2026-11-21T10:00:00Z');
    const ns = await apply(example('dev', 'doomed'));
    const capi = capiSim('doomed', { now: () => new Date(clock), deletionDelayMs: 60_000 });
    expect((await passes(capi, 4)).clusters[0]?.state).toBe('ready');
    // WHEN the Cluster is deleted and a pass runs
    await sim.custom.deleteNamespacedCustomObject({ ...CAPI, namespace: ns, plural: 'clusters', name: 'doomed' });
    const deleting = await capi.reconcileOnce();
    // THEN the Machines, MachineSets, configs, secrets, control plane and infra cluster are gone, but the Cluster stays
    expect(deleting.clusters[0]?.state).toBe('deleting');
    expect(await items(CAPI, 'machines', ns)).toEqual([]);
    expect(await items(CAPI, 'machinesets', ns)).toEqual([]);
    expect(await items(BOOTSTRAP, 'kubeadmconfigs', ns)).toEqual([]);
    expect(await gone(KCP, 'kubeadmcontrolplanes', ns, 'doomed-control-plane')).toBe(true);
    expect(await gone(INFRA, 'devclusters', ns, 'doomed')).toBe(true);
    expect((await sim.core.listNamespacedSecret({ namespace: ns })).items.map((s) => s.metadata?.name)).toEqual([]);
    const cluster = await get(CAPI, 'clusters', ns, 'doomed');
    expect(meta(cluster).finalizers).toEqual(['cluster.cluster.x-k8s.io']);
    expect(status(cluster).phase).toBe('Deleting');
    expect(condition(cluster, 'Deleting')).toMatchObject({ status: 'True', reason: 'WaitingForWorkersDeletion' });
    // WHEN the teardown time passes
    clock += 60_000;
    const done = await capi.reconcileOnce();
    // THEN the finalizer is removed and the Cluster is gone
    expect(done.clusters[0]?.state).toBe('deleted');
    expect(await gone(CAPI, 'clusters', ns, 'doomed')).toBe(true);
  });
});

describe('createCapiSim: the child cluster', () => {
  it('start() polls to Available; the kubeconfig Secret reaches the child API server, where the Nodes are Ready', async () => {
    // GIVEN a second sim API server standing in for the workload cluster
    const child = await startSim();
    const ns = await apply(example('secure', 'child'));
    const capi = capiSim('child', { childServer: () => child.url, childKubeConfig: () => child.kc, intervalMs: 5 });
    try {
      // WHEN the simulator runs in the background
      capi.start();
      // THEN the Cluster becomes Available
      await eventually(async () => expect(condition(await get(CAPI, 'clusters', ns, 'child'), 'Available')).toMatchObject({ status: 'True' }));
      await capi.stop();
      // AND the kubeconfig from the Secret lists the child's Nodes, one per Machine, Ready, with roles and pool labels
      const kc = new KubeConfig();
      kc.loadFromString(Buffer.from((await secret(ns, 'child-kubeconfig')).data?.value ?? '', 'base64').toString('utf8'));
      expect(kc.getCurrentCluster()?.server).toBe(child.url);
      const nodes = (await kc.makeApiClient(CoreV1Api).listNode()).items;
      expect(nodes.map((n) => n.metadata?.name).sort()).toEqual((await items(CAPI, 'machines', ns)).map(name).sort());
      expect(nodes).toHaveLength(6);
      for (const n of nodes) expect(n.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(nodes.filter((n) => n.metadata?.labels?.['node-role.kubernetes.io/control-plane'] === 'true')).toHaveLength(3);
      expect(nodes.filter((n) => n.metadata?.labels?.['lattice.dev/pool'] === 'general')).toHaveLength(3);
    } finally {
      await capi.stop();
      await child.server.close();
    }
  });
});
