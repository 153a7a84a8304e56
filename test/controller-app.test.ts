/**
 * The controller's HTTP server (probes and metrics, driven in-process with supertest) and `lattice controller`
 * as a command: configuration errors exit 2 before anything connects; a run against the simulated API
 * server serves probes, leads, logs JSON on stderr only, and shuts down cleanly, releasing its Lease.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import request from 'supertest';
import { Command } from 'commander';
import { Registry, Counter } from 'prom-client';
import { createControllerApp } from '../controller/app.js';
import type { ControllerHealth } from '../controller/controller.js';
import { registerControllerCommands, type ControllerCommandDeps } from '../controller/commands.js';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { REPO, SHARED } from './support/repo.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } }, out, err };
}

async function runCommand(args: string[], deps: ControllerCommandDeps) {
  const c = capture();
  let code = -1;
  const program = new Command('lattice').exitOverride().configureOutput({ writeOut: (s) => c.err.push(s), writeErr: (s) => c.err.push(s) });
  registerControllerCommands(program, c.io, (n) => {
    code = n;
  }, () => deps);
  await program.parseAsync(['controller', ...args], { from: 'user' });
  return { code, stdout: c.out.join(''), stderr: c.err.join('') };
}

describe('controller HTTP server', () => {
  const registry = new Registry();
  new Counter({ name: 'lattice_controller_reconciles_total', help: 'x', labelNames: ['result'], registers: [registry] }).inc({ result: 'success' });

  it('answers the liveness probe, and readiness by leadership and watch health', async () => {
    // GIVEN a leader with a failing required watch
    let health: ControllerHealth = { leader: true, ready: false, watches: { latticeclusters: false } };
    const app = createControllerApp({ health: () => health, registry });
    // THEN it is alive but not ready, and says which watch holds it back
    await request(app).get('/healthz').expect(200, { status: 'ok' });
    await request(app).get('/readyz').expect(503, { ready: false, leader: true, watches: { latticeclusters: false } });
    // WHEN the watch recovers (or the replica is a standby)
    health = { leader: false, ready: true, watches: {} };
    await request(app).get('/readyz').expect(200);
    await request(app).get('/nope').expect(404);
  });

  it('serves its own registry in the Prometheus text format, refreshed before each scrape', async () => {
    let scrapes = 0;
    const app = createControllerApp({ health: () => ({ leader: false, ready: true, watches: {} }), registry, beforeScrape: () => scrapes++ });
    const res = await request(app).get('/metrics').expect(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.text).toContain('lattice_controller_reconciles_total{result="success"} 1');
    expect(scrapes).toBe(1);
  });
});

describe('lattice controller (the command)', () => {
  let sim: SimClients;
  beforeAll(async () => {
    sim = await startSim({ crds: [join(REPO, 'crds'), join(SHARED, 'upstream-crds')], namespaces: ['default', 'lattice-system'] });
  }, 60_000);
  afterAll(async () => {
    await sim.server.close();
  });

  it('refuses bad settings with exit 2, every problem listed, before connecting anywhere', async () => {
    // GIVEN bad flags and env, and a kubeconfig loader that must not be reached
    const deps: ControllerCommandDeps = { env: { LATTICE_CONCURRENCY: 'many' }, kubeConfig: () => { throw new Error('must not connect'); } };
    // WHEN the command runs
    const r = await runCommand(['--gitops', 'spinnaker', '--provisioning-timeout', 'soon'], deps);
    // THEN
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe([
      'lattice controller: --gitops: expected argocd or flux, found "spinnaker"',
      'lattice controller: LATTICE_CONCURRENCY: expected an integer from 1 to 64, found "many"',
      'lattice controller: --provisioning-timeout: expected a duration such as 30s, 5m or 0, found "soon"',
      '',
    ].join('\n'));
  });

  it('needs a kubeconfig outside a cluster', async () => {
    const r = await runCommand([], { env: {} });
    expect(r).toMatchObject({ code: 2, stderr: 'lattice controller: no cluster to talk to: pass --kubeconfig (or LATTICE_KUBECONFIG), or run in a pod with a service account\n' });
  });

  it('serves probes and metrics, leads, logs JSON with constant messages on stderr, and stops cleanly on shutdown', async () => {
    // GIVEN the command wired to the simulated API server, on a free port
    let shutdown = () => undefined as void;
    let port = 0;
    const deps: ControllerCommandDeps = {
      env: {},
      kubeConfig: () => sim.kc,
      onListening: (a) => {
        port = a.port;
      },
      waitForShutdown: () => new Promise<void>((resolve) => {
        shutdown = resolve;
      }),
    };
    // WHEN it runs
    const running = runCommand(['--port', '0', '--host', '127.0.0.1', '--identity', 'cli-test', '--retry-period', '50ms', '--renew-deadline', '600ms', '--lease-duration', '1s'], deps);
    // THEN it becomes the leader and ready
    await eventually(async () => {
      expect(port).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(await res.json()).toMatchObject({ ready: true, leader: true });
    }, { timeoutMs: 15_000 });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain('lattice_controller_leader 1');
    // WHEN it is asked to stop
    shutdown();
    const r = await running;
    // THEN it exits 0, wrote nothing on stdout, only JSON lines with constant messages on stderr, and released the Lease
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; component: string });
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['controller serving', 'became leader', 'controller started', 'shutting down', 'controller stopped', 'stopped']));
    expect(new Set(lines.map((l) => l.component))).toEqual(new Set(['lattice-controller']));
    const lease = await sim.coordination.readNamespacedLease({ namespace: 'lattice-system', name: 'lattice-controller' });
    expect(lease.spec?.holderIdentity).toBe('');
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }, 60_000);
});
