/**
 * What reconciles cost the API server, counted at the sim API server (its `onRequest` hook): a reconcile
 * that changes nothing reads the watches' caches (controller/cache.ts) and makes no request and no write,
 * except an AWS cluster's one GET of its cluster-scoped AWSClusterStaticIdentity (the controller may not
 * watch those); a change seen in the caches still reaches the API server and is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../cli/load.js';
import { isRecord } from '../core/data.js';
import { StageCondition } from '../core/plan/stages.js';
import { conditionOf, eventually, startHarness, type Harness } from '../controller/testing.js';
import type { RequestInfo } from '../sim/apiserver/index.js';
import { startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const renderer = specRenderer();
const LC = { group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters' };
const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

let sim: SimClients;
let capi: CapiSim;
let harness: Harness;
/** The controller's requests since the last reset: `verb resource[/subresource]`, without Leases and watches. */
let calls: string[] = [];
const record = (info: RequestInfo) => {
  if (info.group === 'coordination.k8s.io' || info.verb === 'watch') return;
  calls.push(`${info.verb} ${info.resource ?? info.path}${info.subresource ? `/${info.subresource}` : ''}`);
};
const writes = () => calls.filter((c) => WRITES.has(c.split(' ')[0] ?? '')).sort();
const reconciled = () => harness.results.length;

const lc = async (name: string) => rec(await sim.custom.getClusterCustomObject({ ...LC, name }));

async function applyCluster(example: string): Promise<void> {
  const cluster = exampleClusters().find((c) => c.metadata.name === example);
  if (!cluster) throw new Error(`no example ${example}`);
  const text = renderer.renderCluster(cluster).map((d) => `---\n${d.text}`).join('');
  for (const doc of parseAllDocuments(text)) await sim.objects.create(doc.toJS() as KubernetesObject);
}

/** Cluster API has finished (control plane initialized, every pool's workers ready) and the status says so. */
async function settled(name: string): Promise<void> {
  const obj = await lc(name);
  expect(conditionOf(obj, StageCondition.ControlPlaneInitialized)?.status).toBe('True');
  const pools = Object.values(rec(rec(obj.status).workerPools)).map(rec);
  expect(pools.length).toBeGreaterThan(0);
  for (const p of pools) expect(p.ready).toBe(p.desired);
}

/** Every cluster reconciled once more (a forced resync, as the periodic one does); the requests it made. */
async function resync(): Promise<string[]> {
  calls = [];
  const before = reconciled();
  const queued = harness.controller.resync();
  expect(queued).toBeGreaterThan(0);
  await eventually(() => expect(reconciled() - before).toBeGreaterThanOrEqual(queued));
  return [...calls].sort();
}

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'lattice-system', 'capa-system'], onRequest: record });
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions });
  capi.start();
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
  await sim.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'aws-prod', namespace: 'lattice-system' }, spec: { type: 'aws', region: 'eu-west-1', credentialsSecretRef: { name: 'aws-prod-credentials' } } } as KubernetesObject);
  await sim.core.createNamespacedSecret({ namespace: 'lattice-system', body: { metadata: { name: 'aws-prod-credentials' }, data: { AccessKeyID: 'QQ==', SecretAccessKey: 'Qg==' } } });
  // Periodic requeues far away: only watch events and the forced resyncs reconcile.
  harness = startHarness({ sim, config: { leaseName: 'requests', resyncIntervalMs: 3_600_000, progressIntervalMs: 3_600_000 } });
  await applyCluster('dev');
  await applyCluster('prod-eu');
  await eventually(async () => {
    await settled('dev');
    await settled('prod-eu');
  }, { timeoutMs: 60_000 });
  // From here only the controller talks to the server (Cluster API's reads would be counted too).
  await capi.stop();
}, 90_000);
afterAll(async () => {
  await harness.stop();
  await capi.stop();
  await sim.server.close();
}, 60_000);

describe('lattice controller: requests per reconcile', () => {
  it('reconciles settled clusters from its watches\' caches: no write, no request but the AWS identity\'s GET', async () => {
    // GIVEN a docker and an AWS cluster that Cluster API has brought up, their status written
    // WHEN every cluster is reconciled again (retried until the last writes of bring-up have been seen)
    const made = await eventually(async () => {
      const r = await resync();
      // THEN the docker cluster costs nothing and the AWS cluster one GET of its AWSClusterStaticIdentity
      expect(r).toEqual(['get awsclusterstaticidentities']);
      return r;
    }, { timeoutMs: 30_000 });
    expect(made.filter((c) => WRITES.has(c.split(' ')[0] ?? ''))).toEqual([]);
    // AND so it stays, resync after resync
    expect(await resync()).toEqual(['get awsclusterstaticidentities']);
    expect(await resync()).toEqual(['get awsclusterstaticidentities']);
  }, 60_000);

  it('acts on a change the caches show: a rotated credential is copied again through the API server', async () => {
    // GIVEN the settled clusters, reconciled from the caches
    await eventually(async () => expect(await resync()).toEqual(['get awsclusterstaticidentities']), { timeoutMs: 30_000 });
    calls = [];
    // WHEN the AWS InfraProvider's credentials Secret is rotated
    const source = await sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'aws-prod-credentials' });
    await sim.core.replaceNamespacedSecret({ namespace: 'lattice-system', name: 'aws-prod-credentials', body: { ...source, data: { AccessKeyID: 'QQ==', SecretAccessKey: 'Qw==' } } });
    // THEN both copies are updated (in capi-prod-eu and in CAPA's namespace), each with its event
    await eventually(async () => {
      expect((await sim.core.readNamespacedSecret({ namespace: 'capi-prod-eu', name: 'aws-prod-credentials' })).data?.SecretAccessKey).toBe('Qw==');
      expect((await sim.core.readNamespacedSecret({ namespace: 'capa-system', name: 'aws-prod-credentials' })).data?.SecretAccessKey).toBe('Qw==');
    });
    // AND exactly those writes were made (the rotation itself, then the controller's), nothing twice
    await eventually(() => expect(writes()).toEqual(['create events', 'create events', 'update secrets', 'update secrets', 'update secrets']));
    // AND the next resync is free again
    await eventually(async () => expect(await resync()).toEqual(['get awsclusterstaticidentities']), { timeoutMs: 30_000 });
  }, 60_000);
});
