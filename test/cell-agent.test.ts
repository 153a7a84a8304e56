/**
 * The agent end to end: a parent sim API server (the cell CA lives there), a started cell (gRPC + HTTPS
 * on loopback, real certificates) and a child sim API server (the agent's Secrets, Nodes and workloads).
 * Bootstrap, connect, heartbeat health, restarts of either side, spec sync, and the CLI.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppsV1Api, type V1Node } from '@kubernetes/client-node';
import { Command } from 'commander';
import { parse } from 'yaml';
import { startSim, eventually, type SimClients } from '../sim/apiserver/testing.js';
import { InMemoryTokenStore, issueBootstrapToken } from '../controller/cell/bootstrap.js';
import { startCell, type Cell } from '../controller/cell/cell.js';
import { specSyncCommand } from '../controller/cell/commands.js';
import { certificateFacts } from '../controller/cell/pki.js';
import { bootstrapSecret, IDENTITY_KEYS, parentEndpoints, secretValue } from '../controller/cell/secrets.js';
import type { AgentEvent } from '../controller/cell/server.js';
import { recordingLogger } from '../controller/cell/testing.js';
import { createAgent, type Agent, type AgentOptions } from '../agent/agent.js';
import { specRenderer, specValidator } from '../cli/load.js';
import { registerAgentCommands } from '../agent/commands.js';
import type { AgentConfig } from '../agent/config.js';

const FAST = { initialMs: 20, maxMs: 200, stableMs: 100 };
const NS = 'lattice-system';

let parent: SimClients;
let child: SimClients;
let tokens: InMemoryTokenStore;
let cell: Cell;
let events: AgentEvent[];
let logs: string[];
let agents: Agent[];
const cellLog = recordingLogger();

async function startTheCell(ports: { grpcPort: number; bootstrapPort: number } = { grpcPort: 0, bootstrapPort: 0 }): Promise<Cell> {
  const c = await startCell({
    core: parent.core, hosts: ['127.0.0.1', 'localhost'], tokens, proxyPort: 0, ...ports, bindHost: '127.0.0.1',
    heartbeatIntervalMs: 500, log: cellLog.log,
    bootstrapLimits: { perIp: { capacity: 50, refillPerSecond: 10 }, perCluster: { capacity: 10, refillPerSecond: 1 } },
  });
  c.agents.subscribe((e) => events.push(e));
  return c;
}

/** Mints a token for `cluster` and writes the bootstrap Secret into `namespace` of the child, as the controller will. */
async function prepareBootstrap(cluster: string, namespace = NS): Promise<string> {
  const { token } = await issueBootstrapToken(tokens, cluster, { now: new Date() });
  const body = bootstrapSecret({ token, ...parentEndpoints('127.0.0.1', { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort }), caBundle: cell.ca.trustBundle }, 'lattice-agent-bootstrap', namespace);
  await child.core.createNamespacedSecret({ namespace, body });
  return token;
}

function config(cluster: string, extra: Partial<AgentConfig> = {}): AgentConfig {
  return { cluster, heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: ['cilium', 'cert-manager'], ...extra };
}

function runAgent(cluster: string, options: Partial<AgentOptions> = {}): Agent {
  const { log, lines } = recordingLogger();
  logs = lines;
  const agent = createAgent({ config: config(cluster), kubeConfig: child.kc, namespace: NS, log, backoff: FAST, ...options });
  agents.push(agent);
  agent.start();
  return agent;
}

const node = (name: string, labels: Record<string, string>, ready: boolean): V1Node => ({
  metadata: { name, labels },
  status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});

beforeEach(async () => {
  events = [];
  agents = [];
  logs = [];
  tokens = new InMemoryTokenStore();
  parent = await startSim({ namespaces: ['default', NS] });
  child = await startSim({ namespaces: ['default', 'kube-system', NS, 'agent-cli', 'cilium', 'cert-manager', 'capi-system', 'docker-infrastructure-system'] });
  cell = await startTheCell();
});

afterEach(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await cell.close();
  await Promise.all([parent.server.close(), child.server.close()]);
});

describe('agent', () => {
  it('bootstraps, connects and heartbeats the child\'s health', async () => {
    // GIVEN a child with five nodes (one control plane, pools general and gpu), addon and provider workloads
    for (const n of [
      node('cp-0', { 'node-role.kubernetes.io/control-plane': '' }, true),
      node('w-0', { 'lattice.dev/pool': 'general' }, true),
      node('w-1', { 'lattice.dev/pool': 'general' }, false),
      node('g-0', { 'lattice.dev/pool': 'gpu' }, true),
      node('stray', {}, false),
    ]) await child.core.createNode({ body: n });
    const apps = child.kc.makeApiClient(AppsV1Api);
    const sel = { selector: { matchLabels: { app: 'x' } }, template: { metadata: { labels: { app: 'x' } } } };
    await apps.createNamespacedDaemonSet({ namespace: 'cilium', body: { metadata: { name: 'cilium' }, spec: sel, status: { desiredNumberScheduled: 4, numberReady: 3, currentNumberScheduled: 4, numberMisscheduled: 0 } } });
    await apps.createNamespacedDeployment({ namespace: 'cilium', body: { metadata: { name: 'cilium-operator' }, spec: { ...sel, replicas: 1 }, status: { readyReplicas: 1 } } });
    await apps.createNamespacedDeployment({ namespace: 'cert-manager', body: { metadata: { name: 'cert-manager' }, spec: { ...sel, replicas: 1 }, status: { readyReplicas: 1 } } });
    await apps.createNamespacedDeployment({ namespace: 'capi-system', body: { metadata: { name: 'capi-controller-manager', labels: { 'cluster.x-k8s.io/provider': 'cluster-api' } }, spec: { ...sel, replicas: 1 }, status: { readyReplicas: 1 } } });
    await apps.createNamespacedDeployment({ namespace: 'docker-infrastructure-system', body: { metadata: { name: 'capd-controller-manager', labels: { 'cluster.x-k8s.io/provider': 'infrastructure-docker' } }, spec: { ...sel, replicas: 1 } } });
    const token = await prepareBootstrap('dev');
    // WHEN the agent starts
    const agent = runAgent('dev');
    // THEN the cell has it connected, with the health counted from the child
    await eventually(() => expect(cell.agents.get('dev')?.heartbeats).toBeGreaterThanOrEqual(2), { timeoutMs: 10_000 });
    expect(cell.agents.get('dev')?.health).toEqual({
      nodes: { ready: 3, total: 5 },
      controlPlane: { ready: 1, total: 1 },
      pools: [{ name: 'general', ready: 1, total: 2 }, { name: 'gpu', ready: 1, total: 1 }],
      addons: [
        { namespace: 'cert-manager', ready: 1, total: 1, notReady: [] },
        { namespace: 'cilium', ready: 1, total: 2, notReady: [{ kind: 'DaemonSet', name: 'cilium', ready: 3, desired: 4 }] },
      ],
      providers: [
        { name: 'cluster-api', namespace: 'capi-system', ready: 1, total: 1 },
        { name: 'infrastructure-docker', namespace: 'docker-infrastructure-system', ready: 0, total: 1 },
      ],
      errors: [],
    });
    expect(cell.agents.get('dev')?.kubernetesVersion).toBe('v1.33.0+lattice-sim');
    expect(agent.status()).toMatchObject({ connected: true, bootstrapped: true, hasIdentity: true });
    // AND the token is spent, the identity is stored in the child for CN=dev, and no secret was logged
    expect((await tokens.lookup('dev'))?.consumedAt).toBeInstanceOf(Date);
    const identity = await child.core.readNamespacedSecret({ namespace: NS, name: 'lattice-agent-identity' });
    const key = secretValue(identity, IDENTITY_KEYS.key) ?? '';
    expect(certificateFacts(secretValue(identity, IDENTITY_KEYS.certificate) ?? '').commonName).toBe('dev');
    expect(key).toContain('PRIVATE KEY');
    const allLogs = [...logs, ...cellLog.lines].join('');
    expect(allLogs.includes(token)).toBe(false);
    expect(allLogs.includes(key.split('\n')[1] ?? 'unreachable')).toBe(false);
    expect(allLogs).toContain('agent bootstrapped');
  });

  it('does not bootstrap again after a restart: the stored identity is used', async () => {
    // GIVEN an agent that bootstrapped and connected, then stopped cleanly
    await prepareBootstrap('dev');
    const first = runAgent('dev');
    await eventually(() => expect(first.status().connected).toBe(true), { timeoutMs: 10_000 });
    const stored = await child.core.readNamespacedSecret({ namespace: NS, name: 'lattice-agent-identity' });
    await first.stop();
    await eventually(() => expect(events.some((e) => e.type === 'disconnected' && e.reason === 'closed')).toBe(true));
    // WHEN a new agent process starts (with a bootstrap call that must not happen)
    let posts = 0;
    const second = runAgent('dev', { post: async () => { posts += 1; return { status: 500, body: '' }; } });
    // THEN it connects with the stored identity, without calling the bootstrap endpoint
    await eventually(() => expect(second.status().connected).toBe(true), { timeoutMs: 10_000 });
    expect(second.status().bootstrapped).toBe(false);
    expect(posts).toBe(0);
    const after = await child.core.readNamespacedSecret({ namespace: NS, name: 'lattice-agent-identity' });
    expect(after.metadata?.resourceVersion).toBe(stored.metadata?.resourceVersion);
    expect(logs.join('')).toContain('agent identity loaded');
  });

  it('keeps retrying with a refused token, stores nothing, and bootstraps once the controller re-mints', async () => {
    // GIVEN a bootstrap Secret whose token the cell does not know (e.g. expired and replaced)
    await prepareBootstrap('dev');
    await issueBootstrapToken(tokens, 'dev', { now: new Date() });
    // WHEN the agent starts
    const agent = runAgent('dev');
    // THEN it is refused, says why by code only, stores no identity and is not ready
    await eventually(() => expect(agent.status().lastError).toBe('BootstrapTokenRejected'), { timeoutMs: 10_000 });
    expect(agent.status()).toMatchObject({ connected: false, hasIdentity: false });
    const none = await child.core.readNamespacedSecret({ namespace: NS, name: 'lattice-agent-identity' }).catch(() => undefined);
    expect(none).toBeUndefined();
    // WHEN the controller mints a new token and replaces the bootstrap Secret
    const { token } = await issueBootstrapToken(tokens, 'dev', { now: new Date() });
    await child.core.replaceNamespacedSecret({
      namespace: NS, name: 'lattice-agent-bootstrap',
      body: bootstrapSecret({ token, ...parentEndpoints('127.0.0.1', { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort }), caBundle: cell.ca.trustBundle }),
    });
    // THEN the agent picks it up on its next attempt and connects
    await eventually(() => expect(agent.status()).toMatchObject({ connected: true, bootstrapped: true }), { timeoutMs: 10_000 });
  });

  it('reconnects when the cell restarts on the same port', async () => {
    // GIVEN a connected agent
    await prepareBootstrap('dev');
    const agent = runAgent('dev');
    await eventually(() => expect(cell.agents.get('dev')).toBeDefined(), { timeoutMs: 10_000 });
    const ports = { grpcPort: cell.grpcPort, bootstrapPort: cell.bootstrapPort };
    // WHEN the cell goes away
    await cell.close();
    // THEN the agent notices
    await eventually(() => expect(agent.status().connected).toBe(false));
    // WHEN a new cell starts on the same ports (same CA, from the parent's Secret)
    cell = await startTheCell(ports);
    // THEN the agent is back and heartbeating, with its identity from before
    await eventually(() => expect(cell.agents.get('dev')?.heartbeats).toBeGreaterThanOrEqual(1), { timeoutMs: 10_000 });
    expect(agent.status()).toMatchObject({ connected: true, sessions: 2 });
  });

  it('keeps the spec the cell syncs and reports the addons of that spec', async () => {
    // GIVEN a connected agent configured with no addon namespaces (and core's validator compiled, as it
    // blocks the one event loop the cell, both sims and the agent share here for a moment)
    specValidator();
    specRenderer();
    await prepareBootstrap('dev');
    const agent = runAgent('dev', { config: config('dev', { addonNamespaces: [] }) });
    await eventually(() => expect(cell.agents.get('dev')?.heartbeats).toBeGreaterThanOrEqual(1), { timeoutMs: 10_000 });
    expect(cell.agents.get('dev')?.health?.addons).toEqual([]);
    // WHEN the cell syncs the dev example spec (generation 3)
    const dev = parse(readFileSync('examples/clusters/dev-docker.yaml', 'utf8')) as { metadata: { name: string; generation?: number }; spec: unknown };
    const ack = await cell.agents.send('dev', specSyncCommand({ ...dev, metadata: { ...dev.metadata, generation: 3 } }));
    // THEN it is acknowledged, kept, and heartbeats report the addon namespaces of that spec
    expect(ack).toMatchObject({ ok: true });
    expect(agent.spec.generation).toBe(3);
    expect(agent.spec.addonNamespaces).toEqual(expect.arrayContaining(['kube-system', 'cert-manager', 'capi-operator-system']));
    expect(agent.spec.addonNamespaces).not.toContain('velero');
    await eventually(() => expect(cell.agents.get('dev')?.health?.addons.map((a) => a.namespace)).toEqual([...agent.spec.addonNamespaces]));
    // AND a spec for another cluster is refused as Invalid, an older generation ignored
    const foreign = await cell.agents.send('dev', specSyncCommand({ ...dev, metadata: { name: 'prod', generation: 9 } }));
    expect(foreign).toMatchObject({ ok: false, errorCode: 'Invalid' });
    expect(await cell.agents.send('dev', specSyncCommand({ ...dev, metadata: { ...dev.metadata, generation: 1 } }))).toMatchObject({ ok: true });
    expect(agent.spec.generation).toBe(3);
  });

  it('runs as `lattice agent --config`: probes follow the connection, SIGTERM stops it cleanly', async () => {
    // GIVEN a config file, a kubeconfig for the child, and a bootstrap Secret in the agent's namespace
    const dir = mkdtempSync(join(tmpdir(), 'lattice-agent-'));
    try {
      const token = await prepareBootstrap('cli', 'agent-cli');
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ cluster: 'cli', heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity' }));
      writeFileSync(join(dir, 'kubeconfig'), child.server.kubeconfigYaml());
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((r) => {
        stop = r;
      });
      let probePort = 0;
      const stderr: string[] = [];
      let exit = -1;
      const program = new Command().exitOverride();
      registerAgentCommands(program, { stdout: { write: () => { throw new Error('stdout must stay empty'); } }, stderr: { write: (s: string) => stderr.push(s) } }, (c) => {
        exit = c;
      }, {
        env: { POD_NAMESPACE: 'agent-cli' },
        waitForShutdown: () => stopped,
        agent: { backoff: FAST },
        onStarted: (i) => {
          probePort = i.probePort;
        },
      });
      // WHEN it runs
      const run = program.parseAsync(['agent', '--config', join(dir, 'config.json'), '--kubeconfig', join(dir, 'kubeconfig'), '--probe-port', '0'], { from: 'user' });
      await eventually(() => expect(probePort).toBeGreaterThan(0));
      // THEN it is live, becomes ready once connected
      expect((await probe(probePort, '/healthz')).status).toBe(200);
      await eventually(async () => expect((await probe(probePort, '/readyz')).status).toBe(200), { timeoutMs: 10_000 });
      expect(cell.agents.get('cli')).toBeDefined();
      // WHEN it gets SIGTERM
      stop();
      await run;
      // THEN it closed its stream cleanly and exited 0, and no secret reached stderr
      expect(exit).toBe(0);
      await eventually(() => expect(events.some((e) => e.type === 'disconnected' && e.cluster === 'cli' && e.reason === 'closed')).toBe(true));
      expect(stderr.join('').includes(token)).toBe(false);
      expect(stderr.join('')).toContain('agent stopped');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function probe(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    }).on('error', reject);
  });
}
