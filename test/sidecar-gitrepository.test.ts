/**
 * The sidecar following a Flux GitRepository: it downloads the tarball source-controller serves (here a
 * local HTTP server), verifies its digest, unpacks it safely and publishes what it renders.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header, create } from 'tar';
import { specRenderer } from '../cli/load.js';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { parseSidecarConfig } from '../sidecar/config.js';
import { startSidecar, type SidecarHandle } from '../sidecar/runtime.js';
import { fetchLikeFlux, freePort, memoryLogger, tempDir } from '../sidecar/testing.js';
import { REPO, SHARED } from './support/repo.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const NS = 'flux-system';
const tmp = tempDir('lattice-sidecar-gitrepo-');
const served = new Map<string, Buffer>();
let sim: SimClients;
let server: Server;
let base: string;
let handle: SidecarHandle;
const logs = memoryLogger();

const group = { group: 'source.toolkit.fluxcd.io', version: 'v1', namespace: NS };
const getEA = async (name: string): Promise<Obj> => (await sim.custom.getNamespacedCustomObject({ ...group, plural: 'externalartifacts', name })) as Obj;
const ready = (ea: Obj): Obj | undefined => (ea.status?.conditions as Obj[] | undefined)?.find((c) => c.type === 'Ready');

/** A source-controller-like tarball of a tree: what GitRepository artifacts are (node-tar, not our packer). */
function tarballOf(tree: string): Buffer {
  const file = join(tmp.dir, `t-${served.size}.tar.gz`);
  create({ gzip: true, cwd: tree, file, sync: true, portable: true }, ['.']);
  return readFileSync(file);
}

let commitCounter = 0;
/** Serves a tarball and points the GitRepository's status at it, as source-controller does after a fetch. */
async function publishSource(bytes: Buffer, options: { digest?: string } = {}): Promise<string> {
  const commit = createHash('sha1').update(String(++commitCounter)).digest('hex');
  const path = `/gitrepository/${NS}/clusters/${commit}.tar.gz`;
  served.set(path, bytes);
  const current = (await sim.custom.getNamespacedCustomObject({ ...group, plural: 'gitrepositories', name: 'clusters' })) as Obj;
  await sim.custom.replaceNamespacedCustomObjectStatus({
    ...group, plural: 'gitrepositories', name: 'clusters',
    body: {
      ...current,
      status: {
        observedGeneration: 1,
        artifact: {
          url: `${base}${path}`, path: path.slice(1), revision: `main@sha1:${commit}`, size: bytes.length,
          digest: options.digest ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
          lastUpdateTime: '2026-01-01T00:00:00Z',
        },
      },
    },
  });
  return commit;
}

function tree(name: string, mutate?: (dir: string) => void): string {
  const dir = join(tmp.dir, name);
  mkdirSync(join(dir, 'clusters'), { recursive: true });
  cpSync(join(REPO, 'examples/clusters'), join(dir, 'clusters'), { recursive: true });
  writeFileSync(join(dir, 'README.md'), 'clusters\n');
  mutate?.(dir);
  return dir;
}

beforeAll(async () => {
  sim = await startSim({ crds: [join(SHARED, 'upstream-crds', 'flux')], namespaces: ['default', NS] });
  server = createServer((req, res) => {
    const body = served.get(req.url ?? '');
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await sim.custom.createNamespacedCustomObject({
    ...group, plural: 'gitrepositories',
    body: { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'GitRepository', metadata: { name: 'clusters', namespace: NS }, spec: { url: 'https://git.example.com/clusters.git', interval: '1m', ref: { branch: 'main' } } },
  });
  const kubeconfig = join(tmp.dir, 'kubeconfig');
  writeFileSync(kubeconfig, sim.server.kubeconfigYaml());
  const port = await freePort();
  const config = parseSidecarConfig({
    gitrepository: 'clusters', path: 'clusters', namespace: NS, kubeconfig, pollInterval: '1h', listen: `127.0.0.1:${port}`, advertiseUrl: `http://127.0.0.1:${port}`,
    storageDir: join(tmp.dir, 'data'), cacheDir: join(tmp.dir, 'cache'), maxSourceBytes: '4Mi', identity: 'r',
  }, specRenderer().versions.addons, { env: {}, hostname: 'h', readable: () => true, readFile: (p) => readFileSync(p, 'utf8') });
  if (!config.ok) throw new Error(config.errors.join('; '));
  handle = await startSidecar(config.value, { log: logs.log, processMetrics: false, lease: { retryPeriodMs: 100 } });
});

afterAll(async () => {
  await handle.stop();
  await new Promise<void>((r) => server.close(() => r()));
  await sim.server.close();
  tmp.remove();
});

describe('lattice sidecar following a Flux GitRepository', () => {
  let commit: string;

  it('waits without alarm while the GitRepository has no artifact', async () => {
    await handle.sidecar.refresh();
    expect(handle.sidecar.isReady).toBe(false);
    expect(handle.sidecar.state.failure).toMatchObject({ reason: 'ArtifactNotReady' });
  });

  it('renders the downloaded, verified tarball and names the commit and the GitRepository', async () => {
    // GIVEN source-controller's artifact of the example tree
    commit = await publishSource(tarballOf(tree('v1')));
    // WHEN the sidecar syncs
    await handle.sidecar.refresh();
    // THEN every cluster is published with the GitRepository's commit as origin revision
    const dev = await eventually(async () => {
      const ea = await getEA('lattice-cluster-dev');
      expect(ready(ea)?.status).toBe('True');
      return ea;
    });
    expect(dev.status.artifact.metadata).toEqual({ 'org.opencontainers.image.revision': `main@sha1:${commit}` });
    const index = await getEA('lattice-index');
    expect(index.spec.sourceRef).toEqual({ apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'GitRepository', name: 'clusters', namespace: NS });
    const files = await fetchLikeFlux(dev.status.artifact);
    expect([...files.keys()].sort()).toEqual(['addons/manifests.yaml', 'agent/manifests.yaml', 'infrastructure/manifests.yaml']);
    expect(logs.entries()).toContainEqual(expect.objectContaining({ msg: 'source artifact unpacked', revision: `main@sha1:${commit}` }));
  });

  it('keeps the last good artifacts when the download does not match its digest', async () => {
    // GIVEN the good dev artifact
    const good = (await getEA('lattice-cluster-dev')).status.artifact;
    // WHEN the GitRepository names a digest the bytes do not have
    await publishSource(tarballOf(tree('v2', (d) => writeFileSync(join(d, 'clusters/extra.yaml'), '# nothing\n'))), { digest: `sha256:${'0'.repeat(64)}` });
    await handle.sidecar.refresh();
    // THEN the failure is reported and nothing else changes
    await eventually(async () => expect(ready(await getEA('lattice-cluster-dev'))).toMatchObject({ status: 'False', reason: 'VerificationFailed' }));
    expect((await getEA('lattice-cluster-dev')).status.artifact).toEqual(good);
  });

  it('refuses a tarball with an entry outside its root, writing nothing outside the cache', async () => {
    // GIVEN a tarball with a ../ entry (built by hand: no honest tool writes one)
    const header = Buffer.alloc(512);
    new Header({ path: '../../escaped.yaml', type: 'File', size: 2, mode: 0o644, mtime: new Date(0) }).encode(header, 0);
    const evil = gzipSync(Buffer.concat([header, Buffer.from('x\n'), Buffer.alloc(510), Buffer.alloc(1024)]));
    // WHEN it is followed
    await publishSource(evil);
    await handle.sidecar.refresh();
    // THEN it is refused
    await eventually(async () => expect(ready(await getEA('lattice-cluster-dev'))).toMatchObject({ status: 'False', reason: 'UnsafeArchive' }));
    expect(() => readFileSync(join(tmp.dir, 'escaped.yaml'))).toThrow();
    expect(() => readFileSync(join(tmp.dir, 'cache', 'escaped.yaml'))).toThrow();
  });

  it('follows a new revision touching one cluster: only its digest changes', async () => {
    // GIVEN the published digests
    const before = new Map(['lattice-index', 'lattice-cluster-dev', 'lattice-cluster-prod-eu'].map((n) => [n, '']));
    for (const n of before.keys()) before.set(n, (await getEA(n)).status.artifact.digest);
    // WHEN source-controller publishes a commit that changes prod-eu only
    await publishSource(tarballOf(tree('v3', (d) => {
      const f = join(d, 'clusters/prod-aws.yaml');
      writeFileSync(f, readFileSync(f, 'utf8').replace('lattice.dev/region: eu-west-1', 'lattice.dev/region: eu-west-2'));
    })));
    await handle.sidecar.refresh();
    // THEN
    await eventually(async () => expect((await getEA('lattice-cluster-prod-eu')).status.artifact.digest).not.toBe(before.get('lattice-cluster-prod-eu')));
    expect((await getEA('lattice-cluster-dev')).status.artifact.digest).toBe(before.get('lattice-cluster-dev'));
    expect((await getEA('lattice-index')).status.artifact.digest).toBe(before.get('lattice-index'));
    expect(ready(await getEA('lattice-cluster-dev'))).toMatchObject({ status: 'True' });
  });

  it('reports a garbage-collected artifact URL as a fetch failure, to be re-read next time', async () => {
    await publishSource(tarballOf(tree('v4')));
    served.clear();
    await handle.sidecar.refresh();
    expect(handle.sidecar.state.failure).toMatchObject({ reason: 'FetchFailed', message: expect.stringContaining('HTTP 404') });
  });
});
