/**
 * The whole Argo CD path on simulators: the bundled examples rendered by the plugin's own selection code,
 * applied to a sim parent by the simulated Argo CD (waves gated on the shipped Lua health checks), with
 * the simulated Cluster API bringing clusters up. Every Cluster must reach control plane initialized and
 * every addon Application must turn Healthy, with waves applied in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubernetesObject } from '@kubernetes/client-node';
import { loadSpecs, specRenderer } from '../cli/load.js';
import { generateText, selectArgoCdObjects } from '../plugin/generate.js';
import { readCmpOptions } from '../plugin/options.js';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { ArgoCdSim, capiKubeconfigRegistry, waveOf } from '../sim/gitops/argocd.js';
import { withBuiltIns } from '../sim/gitops/health.js';
import { createHealthChecks, type HealthChecks } from '../sim/health/lua.js';
import { REPO, SHARED } from './support/repo.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = KubernetesObject & Record<string, any>;

let sim: SimClients;
let checks: HealthChecks;
let capi: CapiSim;
let argo: ArgoCdSim;
const acceptance = new AbortController();

/** What `lattice cmp generate` prints for examples/clusters, parsed. */
function generated(): Obj[] {
  const renderer = specRenderer();
  const options = readCmpOptions({ ARGOCD_APP_SOURCE_REPO_URL: 'https://git.example.com/clusters.git', ARGOCD_APP_SOURCE_PATH: 'clusters', ARGOCD_APP_SOURCE_TARGET_REVISION: 'main' }, []);
  const { result } = loadSpecs([join(REPO, 'examples/clusters')]);
  if (!options.ok || !result.ok) throw new Error('examples must load');
  const selection = selectArgoCdObjects(renderer, result.value, options.value);
  if (!selection.ok) throw new Error(selection.errors.join('; '));
  const docs = parseAllDocuments(generateText(renderer, selection.objects));
  return (Array.isArray(docs) ? docs : [docs]).map((d) => d.toJS() as Obj);
}

/**
 * A stand-in for the Lattice controller (M6), doing only what the wave-0 gate needs: it observes each
 * LatticeCluster's generation. Everything else the controller does is out of scope here.
 */
async function acceptSpecs(signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const list = (await sim.custom.listClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters' })) as { items: Obj[] };
    for (const lc of list.items) {
      if (lc.status?.observedGeneration === lc.metadata?.generation) continue;
      await sim.custom.replaceClusterCustomObjectStatus({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: lc.metadata?.name ?? '', body: { ...lc, status: { observedGeneration: lc.metadata?.generation, phase: 'Provisioning' } } });
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'lattice-system'] });
  checks = await createHealthChecks();
  capi = createCapiSim({ kubeConfig: sim.kc, intervalMs: 20, apiVersions: specRenderer().versions.apiVersions });
  argo = new ArgoCdSim({ kubeConfig: sim.kc, health: withBuiltIns(checks), pollMs: 20, isRegistered: capiKubeconfigRegistry(sim.kc) });
  capi.start();
  argo.start();
  void acceptSpecs(acceptance.signal).catch(() => undefined);
});
afterAll(async () => {
  acceptance.abort();
  argo.stop();
  await capi.stop();
  checks.close();
  await sim.server.close();
});

describe('examples/clusters through the simulated Argo CD and Cluster API', () => {
  it('syncs every wave in order; every Cluster reaches control plane initialized and every addon Application is Healthy', async () => {
    // GIVEN the plugin's output for the bundled examples
    const objects = generated();
    const applications = objects.filter((o) => o.kind === 'Application');
    const clusters = objects.filter((o) => o.kind === 'Cluster');
    expect(clusters).toHaveLength(7);
    // WHEN the simulated Argo CD syncs it as one app-of-apps
    const result = await argo.sync(objects);
    // THEN the sync succeeds through every wave, in order
    expect(result).toEqual({ phase: 'Succeeded', message: 'successfully synced (all tasks run)', waves: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
    // and every Cluster has its control plane initialized
    for (const c of clusters) {
      const live = (await sim.custom.getNamespacedCustomObject({ group: 'cluster.x-k8s.io', version: 'v1beta2', namespace: c.metadata?.namespace ?? '', plural: 'clusters', name: c.metadata?.name ?? '' })) as Obj;
      expect(live.status?.initialization?.controlPlaneInitialized, c.metadata?.name).toBe(true);
      expect(live.status?.conditions.find((x: Obj) => x.type === 'ControlPlaneInitialized')?.status).toBe('True');
    }
    // and every Application, the last wave's agent Applications included, turns Healthy
    await eventually(async () => {
      for (const app of applications) {
        const live = JSON.parse(JSON.stringify(await sim.objects.read({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Application', metadata: { name: app.metadata?.name ?? '', namespace: 'argocd' } }))) as Obj;
        expect(checks.health(live), app.metadata?.name).toEqual({ status: 'Healthy', message: '' });
      }
    }, { timeoutMs: 10_000 });
    expect(new Set(applications.map(waveOf))).toEqual(new Set([2, 3, 4, 5, 6, 7, 8, 9]));
  }, 60_000);
});
