/**
 * End to end: `lattice sidecar` as a child process (the built CLI, as the container runs it) against a git
 * repository of examples/clusters and the simulated API server; a Flux-like consumer reads the
 * ExternalArtifacts, downloads and verifies every artifact, and finds exactly what the Flux flavor renders
 * (`lattice render --flavor flux --out-dir`). `npm test` builds dist/ first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { loadSpecs, specRenderer } from '../cli/load.js';
import { fluxArtifactsOf } from '../sidecar/render-flux.js';
import { createSpecRepo, fetchLikeFlux, freePort, tempDir, type SpecRepo } from '../sidecar/testing.js';
import { CLI, REPO, SHARED } from './support/repo.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const NS = 'flux-system';
const TOKEN = 'e2e-hook-token-0123456789';
const tmp = tempDir('lattice-sidecar-e2e-');
const EXAMPLES = join(REPO, 'examples/clusters');

/**
 * How to run `lattice sidecar`: the CLI once `registerSidecarCommands` is wired into cli/program.ts;
 * until then the same command registered on a bare commander program (the lead wires it).
 */
function sidecarArgv(): string[] {
  if (readFileSync(join(REPO, 'dist/cli/program.js'), 'utf8').includes('registerSidecarCommands(')) return [CLI, 'sidecar'];
  const commands = JSON.stringify(join(REPO, 'dist/sidecar/commands.js'));
  const script = `import { Command } from 'commander'; import { registerSidecarCommands } from ${commands};
const program = new Command('lattice').exitOverride(); let code = 0;
registerSidecarCommands(program, { stdout: process.stdout, stderr: process.stderr }, (c) => { code = c; });
try { await program.parseAsync(process.argv.slice(1), { from: 'user' }); } catch { code = 2; }
process.exitCode = code;`;
  return ['--input-type=module', '-e', script, '--', 'sidecar'];
}

let sim: SimClients;
let repo: SpecRepo;
let child: ChildProcess;
let stderr = '';
let url: string;
let argv: string[];

const listEAs = async (): Promise<Obj[]> => ((await sim.custom.listNamespacedCustomObject({ group: 'source.toolkit.fluxcd.io', version: 'v1', namespace: NS, plural: 'externalartifacts' })) as { items: Obj[] }).items;
const ready = (ea: Obj): Obj | undefined => (ea.status?.conditions as Obj[] | undefined)?.find((c) => c.type === 'Ready');

beforeAll(async () => {
  argv = sidecarArgv();
  sim = await startSim({ crds: [join(SHARED, 'upstream-crds', 'flux')], namespaces: ['default', NS] });
  writeFileSync(join(tmp.dir, 'kubeconfig'), sim.server.kubeconfigYaml());
  writeFileSync(join(tmp.dir, 'token'), TOKEN);
  repo = await createSpecRepo(join(tmp.dir, 'repo'));
  await repo.commit(Object.fromEntries(readdirSync(EXAMPLES).map((f) => [`clusters/${f}`, readFileSync(join(EXAMPLES, f), 'utf8')])));
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  // Flags and LATTICE_SIDECAR_* variables mixed, as a Deployment would set them.
  child = spawn(process.execPath, [...argv, '--git-url', repo.url, '--path', 'clusters', '--listen', `127.0.0.1:${port}`], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? '', HOME: tmp.dir,
      LATTICE_SIDECAR_ADVERTISE_URL: url, LATTICE_SIDECAR_NAMESPACE: NS, LATTICE_SIDECAR_KUBECONFIG: join(tmp.dir, 'kubeconfig'),
      LATTICE_SIDECAR_STORAGE_DIR: join(tmp.dir, 'data'), LATTICE_SIDECAR_CACHE_DIR: join(tmp.dir, 'cache'),
      LATTICE_SIDECAR_POLL_INTERVAL: '1h', LATTICE_SIDECAR_HOOK_TOKEN_FILE: join(tmp.dir, 'token'), POD_NAME: 'lattice-sidecar-0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
});

afterAll(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  await sim.server.close();
  tmp.remove();
});

describe('lattice sidecar (child process)', () => {
  it('publishes every example cluster; a consumer downloads, verifies and finds exactly the rendered files', async () => {
    // GIVEN what the flavor renders for the same specs (what `lattice render --flavor flux --out-dir` writes)
    const { result } = loadSpecs(['clusters'], repo.dir);
    if (!result.ok) throw new Error('examples are invalid');
    const expected = new Map(fluxArtifactsOf(specRenderer(), result.value, { namespace: NS }).map((a) => [a.name, new Map(a.files.map((f) => [f.path, f.text]))]));
    // WHEN the sidecar has published
    const eas = await eventually(async () => {
      const items = await listEAs();
      expect(items).toHaveLength(8);
      for (const ea of items) expect(ready(ea)?.status, `${ea.metadata.name}: ${stderr}`).toBe('True');
      return items;
    }, { timeoutMs: 15_000, intervalMs: 50 });
    // THEN every artifact verifies and unpacks into the rendered files, byte for byte
    for (const ea of eas) expect(await fetchLikeFlux(ea.status.artifact), ea.metadata.name).toEqual(expected.get(ea.metadata.name));
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // AND the server bounds what it reads: oversized headers are refused before any handler runs
    expect((await fetch(`${url}/healthz`, { headers: { 'X-Padding': 'x'.repeat(20_000) } })).status).toBe(431);
    expect(await (await fetch(`${url}/metrics`)).text()).toContain('lattice_sidecar_artifacts 8');
    // AND the logs are JSON lines on stderr, nothing on stdout
    expect(stderr.split('\n').filter((l) => l.trim() !== '').every((l) => JSON.parse(l) !== null)).toBe(true);
  });

  it('picks up a commit on the git hook', async () => {
    const before = (await listEAs()).find((e) => e.metadata.name === 'lattice-cluster-dev')?.status.artifact.digest;
    const spec = readFileSync(join(EXAMPLES, 'dev-docker.yaml'), 'utf8').replace('replicas: 2', 'replicas: 6');
    await repo.commit({ 'clusters/dev-docker.yaml': spec });
    const res = await fetch(`${url}/hooks/git`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(202);
    const dev = await eventually(async () => {
      const ea = (await listEAs()).find((e) => e.metadata.name === 'lattice-cluster-dev');
      expect(ea?.status.artifact.digest).not.toBe(before);
      return ea;
    }, { timeoutMs: 10_000, intervalMs: 50 });
    expect((await fetchLikeFlux(dev?.status.artifact)).get('infrastructure/manifests.yaml')).toContain('replicas: 6');
  });

  it('shuts down on SIGTERM with exit 0, releasing its Lease', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lease = await sim.coordination.readNamespacedLease({ name: 'lattice-sidecar', namespace: NS });
    expect(lease.spec?.holderIdentity).toBe('');
    expect(stderr).toContain('"msg":"sidecar stopped"');
  });

  it('refuses a bad configuration before starting, listing every problem (exit 2)', () => {
    const r = spawnSync(process.execPath, [...argv, '--git-url', 'https://u:p@example.com/x.git', '--poll-interval', 'often'], { cwd: REPO, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', LATTICE_SIDECAR_PUBLISH: 'maybe' } });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('lattice sidecar: --git-url (LATTICE_SIDECAR_GIT_URL): must not carry credentials');
    expect(r.stderr).toContain('lattice sidecar: --poll-interval (LATTICE_SIDECAR_POLL_INTERVAL)');
    expect(r.stderr).toContain('lattice sidecar: --publish (LATTICE_SIDECAR_PUBLISH): expected true or false, found "maybe"');
    expect(r.stderr).not.toContain('u:p@');
  });

  it('exits 1 with a clear message when it cannot start (the port is taken)', async () => {
    // GIVEN a port something else listens on
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const { port } = blocker.address() as AddressInfo;
    try {
      // WHEN the sidecar is started on it
      const r = spawnSync(process.execPath, [...argv, '--git-url', repo.url, '--publish', 'false', '--listen', `127.0.0.1:${port}`, '--storage-dir', join(tmp.dir, 'busy', 'data'), '--cache-dir', join(tmp.dir, 'busy', 'cache')], { cwd: REPO, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
      // THEN it says why and exits 1
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('lattice sidecar: cannot start: listen EADDRINUSE');
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });
});
