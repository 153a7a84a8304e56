/**
 * The agent end to end from a rendered spec (issue M7): Argo CD (simulated) applies the plugin's output for
 * `dev` to a sim parent, Cluster API (simulated) brings it up with its kubeconfig pointing at a sim child,
 * the controller with a real cell (gRPC and HTTPS on loopback, real certificates) mints a one-time token
 * and writes it into the child, and an agent started against the child bootstraps and connects: the
 * LatticeCluster shows AgentConnected=True, bootstrapComplete and the token as consumed, never the token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { pino } from 'pino';
import type { KubernetesObject } from '@kubernetes/client-node';
import { specRenderer } from '../cli/load.js';
import { argocdObjects } from '../core/flavor/flavors.js';
import { createAgent, type Agent } from '../agent/agent.js';
import { leaderCell, stateSecretTokenStore } from '../controller/agents.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { createKube } from '../controller/kube.js';
import { conditionOf, startHarness, StatusRecorder, type Harness } from '../controller/testing.js';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { createCapiSim, type CapiSim } from '../sim/capi/index.js';
import { ArgoCdSim } from '../sim/gitops/argocd.js';
import { withBuiltIns } from '../sim/gitops/health.js';
import { createHealthChecks, type HealthChecks } from '../sim/health/lua.js';
import { REPO, SHARED, exampleClusters } from './support/repo.js';

type Obj = KubernetesObject & Record<string, unknown>;

const renderer = specRenderer();
let parent: SimClients;
let child: SimClients;
let checks: HealthChecks;
let capi: CapiSim;
let argo: ArgoCdSim;
let cell: Cell | undefined;
let harness: Harness;
let recorder: StatusRecorder;
let agent: Agent | undefined;

beforeAll(async () => {
  parent = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'argocd', 'lattice-system'] });
  child = await startSim({ namespaces: ['default', 'kube-system'] });
  checks = await createHealthChecks();
  capi = createCapiSim({ kubeConfig: parent.kc, intervalMs: 50, apiVersions: renderer.versions.apiVersions, childServer: () => child.url });
  argo = new ArgoCdSim({ kubeConfig: parent.kc, health: withBuiltIns(checks), pollMs: 20 });
  const tokens = stateSecretTokenStore({ kube: createKube(parent.kc, { fieldManager: 'lattice-cell' }) });
  // The cell runs while the controller leads, as `lattice controller --cell-host` runs it.
  const leader = leaderCell({
    host: '127.0.0.1', tokens,
    start: async () => {
      cell = await startCell({ core: parent.core, hosts: ['127.0.0.1'], tokens, grpcPort: 0, bootstrapPort: 0, proxyPort: 0, bindHost: '127.0.0.1', heartbeatIntervalMs: 500, log: pino({ level: 'silent' }) });
      return cell;
    },
  });
  recorder = new StatusRecorder(parent.kc);
  await recorder.start();
  harness = startHarness({ sim: parent, config: { progressIntervalMs: 200 }, agents: leader.integration, whileLeading: leader.service });
  capi.start();
  argo.start();
  await parent.objects.create({ apiVersion: 'lattice.dev/v1alpha1', kind: 'InfraProvider', metadata: { name: 'docker', namespace: 'lattice-system' }, spec: { type: 'docker' } } as KubernetesObject);
}, 60_000);
afterAll(async () => {
  await agent?.stop();
  argo.stop();
  await harness.stop();
  await capi.stop();
  await recorder.stop();
  checks.close();
  await Promise.all([parent.server.close(), child.server.close()]);
}, 60_000);

describe('the agent stage, end to end', () => {
  it('takes a rendered cluster to AgentConnected=True through a one-time token the controller delivers into the child', async () => {
    // GIVEN the plugin's output for the dev example, synced by Argo CD
    const dev = exampleClusters().find((c) => c.metadata.name === 'dev');
    if (!dev) throw new Error('no dev example');
    const text = renderer.renderObjects(argocdObjects(renderer, dev, { namespace: 'argocd', project: 'default', plugin: 'lattice', source: { repoURL: 'https://git.example.com/c.git', path: 'clusters', targetRevision: 'main' } })).map((d) => `---\n${d.text}`).join('');
    const sync = argo.sync(parseAllDocuments(text).map((d) => d.toJS() as Obj));
    // WHEN the control plane is up, the controller writes the bootstrap Secret into the child
    const bootstrap = await eventually(() => child.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'lattice-agent-bootstrap' }), { timeoutMs: 20_000 });
    const token = Buffer.from(bootstrap.data?.token ?? '', 'base64').toString('utf8');
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const lc = async () => (await parent.custom.getClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters', name: 'dev' })) as Obj;
    await eventually(async () => expect((await lc()).status).toMatchObject({ bootstrapToken: { state: 'Issued' } }));
    // AND only the token's hash is stored in the parent
    const state = await parent.core.readNamespacedSecret({ namespace: 'capi-dev', name: 'lattice-state' });
    const stored = Object.values(state.data ?? {}).map((v) => Buffer.from(v, 'base64').toString('utf8'));
    expect(stored.some((v) => v.includes(token))).toBe(false);
    expect(conditionOf(await lc(), 'AgentConnected')?.status).not.toBe('True');
    // WHEN the agent starts in the child (what the agent Application deploys there)
    agent = createAgent({ config: { cluster: 'dev', heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: [] }, kubeConfig: child.kc, namespace: 'lattice-system', log: pino({ level: 'silent' }), backoff: { initialMs: 20, maxMs: 200, stableMs: 100 } });
    agent.start();
    // THEN the LatticeCluster shows the agent connected, the bootstrap complete and the token spent
    await eventually(async () => {
      const live = await lc();
      const status = live.status as Record<string, unknown>;
      expect(conditionOf(live, 'AgentConnected')).toMatchObject({ status: 'True', reason: 'AgentConnected' });
      expect(status).toMatchObject({ bootstrapComplete: true, bootstrapToken: { state: 'Consumed' }, lastHeartbeat: expect.stringMatching(/Z$/) });
    }, { timeoutMs: 20_000 });
    // AND no status anywhere carries the token
    expect(recorder.of('dev').some((o) => JSON.stringify(o).includes(token))).toBe(false);
    expect(await sync).toMatchObject({ phase: 'Succeeded' });
    recorder.assertKstatus();
  }, 60_000);
});
