/**
 * How the controller reports clusters that fail, and that it lets them recover (Failed is never sticky):
 * a Cluster API failure, an invalid spec, and a provisioning timeout measured on an injected clock.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../cli/load.js';
import { isRecord } from '../core/data.js';
import { StageCondition } from '../core/plan/stages.js';
import { conditionOf, startHarness, StatusRecorder, type Harness, eventually } from '../controller/testing.js';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';

type Obj = KubernetesObject & Record<string, unknown>;
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const renderer = specRenderer();

let sim: SimClients;
let capi: CapiSim;
let harness: Harness;
let recorder: StatusRecorder;
/** The controller's clock: real time plus an offset the timeout test moves forward. */
let offsetMs = 0;

const lc = async (name: string): Promise<Obj> => (await sim.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name })) as Obj;
const phase = async (name: string) => rec((await lc(name)).status).phase;

/** Applies a docker cluster named `name` the way GitOps would: namespace, LatticeCluster, Cluster API objects. */
async function applyCluster(name: string, spec?: (s: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
  if (!dev) throw new Error('no dev example');
  const cluster = { ...dev, metadata: { name }, spec: spec ? spec(dev.spec as unknown as Record<string, unknown>) : dev.spec } as typeof dev;
  const text = renderer.renderCluster(cluster).map((d) => `---\n${d.text}`).join('');
  for (const doc of parseAllDocuments(text)) await sim.objects.create(doc.toJS() as KubernetesObject);
}

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'lattice-system'] });
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions });
  recorder = new StatusRecorder(sim.kc);
  await recorder.start();
  capi.start();
  harness = startHarness({ sim, now: () => new Date(Date.now() + offsetMs), config: { progressIntervalMs: 50, provisioningTimeoutMs: 10 * 60_000 } });
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
}, 60_000);
afterAll(async () => {
  await harness.stop();
  await capi.stop();
  await recorder.stop();
  await sim.server.close();
}, 60_000);
afterEach(() => {
  recorder.assertKstatus();
});

describe('lattice controller: failures and recovery', () => {
  it('reports a Cluster API failure as phase Failed and Stalled, and leaves Failed when Cluster API recovers', async () => {
    // GIVEN a cluster whose infrastructure provider fails
    capi.setFault('broken', { step: 'infrastructure', mode: 'fail', message: 'quota exceeded for instances' });
    // WHEN it is applied
    await applyCluster('broken');
    // THEN the phase is Failed, Stalled says why, and the infrastructure condition carries CAPI's message
    await eventually(async () => expect(await phase('broken')).toBe('Failed'));
    const failed = await lc('broken');
    expect(conditionOf(failed, 'Stalled')).toEqual({ status: 'True', reason: 'ProvisioningFailed', message: 'Cluster capi-broken/broken failed: quota exceeded for instances' });
    expect(conditionOf(failed, 'Reconciling')).toBeUndefined();
    expect(conditionOf(failed, StageCondition.InfrastructureReady)).toEqual({ status: 'False', reason: 'ProvisioningFailed', message: 'Cluster capi-broken/broken failed: quota exceeded for instances' });
    expect(rec(failed.status).message).toBe('Cluster capi-broken/broken failed: quota exceeded for instances');
    // AND a Warning event says so, once
    const events = async () => (await sim.core.listNamespacedEvent({ namespace: 'default' })).items.filter((e) => e.involvedObject.name === 'broken');
    await eventually(async () => expect((await events()).filter((e) => e.type === 'Warning' && e.reason === 'Failed')).toHaveLength(1));

    // WHEN the provider recovers
    capi.clearFault('broken');
    // THEN the cluster leaves Failed and comes up
    await eventually(async () => expect(conditionOf(await lc('broken'), StageCondition.ControlPlaneInitialized)?.status).toBe('True'));
    expect(await phase('broken')).toBe('Provisioning');
    expect(conditionOf(await lc('broken'), 'Stalled')).toBeUndefined();
    expect((await events()).filter((e) => e.reason === 'Failed')).toHaveLength(1);
  }, 60_000);

  it('rejects an invalid spec with Stalled and phase Failed, and leaves Failed when a new generation fixes it', async () => {
    // GIVEN a spec the API server's schema accepts but core's rules refuse (the CEL rule is not evaluated by the sim)
    const body = {
      apiVersion: 'lattice.dev/v1alpha1', kind: 'LatticeCluster', metadata: { name: 'even' },
      spec: { providerRef: 'docker', provider: { kubernetes: { version: 'v1.34.1' }, config: { docker: {} } }, nodes: { controlPlane: { replicas: 2 } } },
    };
    // WHEN it is applied
    await sim.objects.create(body as KubernetesObject);
    // THEN the controller refuses it for the current generation, with the rule's code and what was found
    await eventually(async () => expect(await phase('even')).toBe('Failed'));
    const failed = await lc('even');
    expect(rec(failed.status).observedGeneration).toBe(1);
    expect(conditionOf(failed, 'Stalled')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(conditionOf(failed, 'Stalled')?.message).toContain('CONTROL_PLANE_REPLICAS_NOT_ODD spec.nodes.controlPlane.replicas');
    expect(conditionOf(failed, 'Stalled')?.message).toContain('found 2');
    expect(conditionOf(failed, 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });

    // WHEN the spec is fixed (a new generation)
    await sim.custom.patchClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: 'even', body: [{ op: 'replace', path: '/spec/nodes/controlPlane/replicas', value: 3 }] });
    // THEN the new generation is observed and the phase leaves Failed (nothing applied its CAPI objects: Pending)
    await eventually(async () => expect(rec((await lc('even')).status).observedGeneration).toBe(2));
    const fixed = await lc('even');
    expect(rec(fixed.status).phase).toBe('Pending');
    expect(conditionOf(fixed, 'Stalled')).toBeUndefined();
    expect(conditionOf(fixed, 'Reconciling')).toMatchObject({ status: 'True', reason: 'NamespaceNotFound' });
    expect(recorder.history('even', 'Ready')).toEqual(['False']);
  }, 60_000);

  it('fails a cluster whose infrastructure misses the provisioning timeout, and lets a new generation or ready infrastructure leave Failed', async () => {
    // GIVEN a cluster whose infrastructure never comes up, and a 10 minute timeout on the controller's clock
    capi.setFault('slow', { step: 'infrastructure', mode: 'stall' });
    await applyCluster('slow');
    await eventually(async () => expect(conditionOf(await lc('slow'), StageCondition.InfrastructureReady)).toMatchObject({ status: 'False', reason: 'Provisioning' }));
    expect(await phase('slow')).toBe('Provisioning');
    // WHEN eleven minutes pass
    offsetMs += 11 * 60_000;
    // THEN the phase is Failed with the timeout as the reason
    await eventually(async () => expect(await phase('slow')).toBe('Failed'));
    expect(conditionOf(await lc('slow'), 'Stalled')).toEqual({ status: 'True', reason: 'ProvisioningTimeout', message: 'the infrastructure of Cluster capi-slow/slow is not ready after 10m' });
    expect(conditionOf(await lc('slow'), StageCondition.InfrastructureReady)?.reason).toBe('ProvisioningTimeout');

    // WHEN the spec changes (a new generation restarts the clock)
    await sim.custom.patchClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: 'slow', body: [{ op: 'replace', path: '/spec/nodes/workerPools/general/replicas', value: 3 }] });
    // THEN it is Provisioning again
    await eventually(async () => expect(rec((await lc('slow')).status).observedGeneration).toBe(2));
    await eventually(async () => expect(await phase('slow')).toBe('Provisioning'));
    // AND it fails again only once the timeout passes again
    offsetMs += 11 * 60_000;
    await eventually(async () => expect(await phase('slow')).toBe('Failed'));

    // WHEN the infrastructure finally turns ready
    capi.clearFault('slow');
    // THEN it leaves Failed for good
    await eventually(async () => expect(conditionOf(await lc('slow'), StageCondition.InfrastructureReady)?.status).toBe('True'));
    expect(await phase('slow')).toBe('Provisioning');
    expect(conditionOf(await lc('slow'), 'Stalled')).toBeUndefined();
    // (Unknown first only if the controller saw the spec before its Cluster, which were applied together)
    expect(recorder.history('slow', StageCondition.InfrastructureReady).filter((s) => s !== 'Unknown')).toEqual(['False', 'True']);
  }, 60_000);
});
