/** The simulated Flux against a sim API server through client-node. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { SHARED } from '../../test/support/repo.js';
import { eventually, startSim, type SimClients } from '../apiserver/testing.js';
import { FluxSim } from './flux.js';

let sim: SimClients;
beforeAll(async () => {
  sim = await startSim({ crds: [join(SHARED, 'upstream-crds', 'flux')], namespaces: ['default', 'flux-system'] });
});
afterAll(async () => {
  await sim.server.close();
});

const helmRelease = (name: string, dependsOn: string[] = []) => ({
  apiVersion: 'helm.toolkit.fluxcd.io/v2', kind: 'HelmRelease',
  metadata: { name, namespace: 'flux-system' },
  spec: {
    interval: '10m',
    chart: { spec: { chart: name, sourceRef: { kind: 'HelmRepository', name: 'repo' } } },
    kubeConfig: { secretRef: { name: 'dev-kubeconfig' } },
    ...(dependsOn.length > 0 ? { dependsOn: dependsOn.map((d) => ({ name: d })) } : {}),
  },
});
const ready = async (name: string): Promise<{ status?: string; reason?: string } | undefined> => {
  const o = (await sim.custom.getNamespacedCustomObject({ group: 'helm.toolkit.fluxcd.io', version: 'v2', namespace: 'flux-system', plural: 'helmreleases', name })) as { status?: { conditions?: { type: string; status: string; reason: string }[] } };
  return o.status?.conditions?.find((c) => c.type === 'Ready');
};

describe('FluxSim', () => {
  it('makes HelmReleases Ready in dependsOn order once the kubeconfig Secret exists, and not before', async () => {
    // GIVEN a chain cilium <- cert-manager, and no kubeconfig Secret yet
    await sim.objects.create(helmRelease('cilium'));
    await sim.objects.create(helmRelease('cert-manager', ['cilium']));
    const flux = new FluxSim({ kubeConfig: sim.kc, pollMs: 10 });
    // WHEN it reconciles
    await flux.reconcile();
    // THEN the root waits for the Secret and its dependent for the root
    expect(await ready('cilium')).toMatchObject({ status: 'False', reason: 'InstallFailed' });
    expect(await ready('cert-manager')).toMatchObject({ status: 'False', reason: 'DependencyNotReady' });
    // WHEN the Secret appears
    await sim.core.createNamespacedSecret({ namespace: 'flux-system', body: { metadata: { name: 'dev-kubeconfig' }, data: { value: '' } } });
    flux.start();
    try {
      // THEN both turn Ready, the dependent after the root
      await eventually(async () => expect(await ready('cert-manager')).toMatchObject({ status: 'True', reason: 'InstallSucceeded' }));
      expect(await ready('cilium')).toMatchObject({ status: 'True' });
    } finally {
      flux.stop();
    }
  });

  it('writes status only when the Ready condition changes', async () => {
    const flux = new FluxSim({ kubeConfig: sim.kc });
    await flux.reconcile();
    const rv = async () => ((await sim.custom.getNamespacedCustomObject({ group: 'helm.toolkit.fluxcd.io', version: 'v2', namespace: 'flux-system', plural: 'helmreleases', name: 'cilium' })) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const before = await rv();
    await flux.reconcile();
    expect(await rv()).toBe(before);
  });

  it('reports injected failures and leaves suspended objects alone', async () => {
    await sim.objects.create({ apiVersion: 'kustomize.toolkit.fluxcd.io/v1', kind: 'Kustomization', metadata: { name: 'frozen', namespace: 'flux-system' }, spec: { interval: '5m', prune: true, suspend: true, sourceRef: { kind: 'GitRepository', name: 'x' } } });
    const flux = new FluxSim({ kubeConfig: sim.kc, failed: new Set(['flux-system/cilium']) });
    await flux.reconcile();
    expect(await ready('cilium')).toMatchObject({ status: 'False', reason: 'InstallFailed' });
    const frozen = (await sim.custom.getNamespacedCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', namespace: 'flux-system', plural: 'kustomizations', name: 'frozen' })) as { status?: { conditions?: unknown[] } };
    expect(frozen.status?.conditions).toBeUndefined();
  });
});
