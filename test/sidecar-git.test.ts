/**
 * The sidecar against a real git repository (created here with simple-git) and the simulated API server:
 * what it publishes is fetched and unpacked the way Flux does, commit after commit; a second replica
 * serves the same bytes and only the Lease holder writes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { specRenderer, loadSpecs } from '../cli/load.js';
import { INDEX_ARTIFACT, clusterArtifactName } from '../core/flavor/flux.js';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { parseSidecarConfig, type RawSidecarOptions } from '../sidecar/config.js';
import { fluxArtifactsOf } from '../sidecar/render-flux.js';
import { startSidecar, type SidecarHandle } from '../sidecar/runtime.js';
import { createSpecRepo, fetchLikeFlux, freePort, memoryLogger, objectsUnder, tempDir, type SpecRepo } from '../sidecar/testing.js';
import { REPO, SHARED } from './support/repo.js';
import { UPSTREAM_CRDS_DIR, loadUpstreamSchemas } from './support/upstream-schemas.js';

// Objects read back from the API server are inspected field by field.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const EXAMPLES = join(REPO, 'examples/clusters');
const NS = 'flux-system';
const tmp = tempDir('lattice-sidecar-git-');
const upstream = loadUpstreamSchemas(join(UPSTREAM_CRDS_DIR, 'flux'));
const renderer = specRenderer();
let sim: SimClients;
let repo: SpecRepo;
let kubeconfig: string;
const handles: SidecarHandle[] = [];

const exampleFiles = (): Record<string, string> => Object.fromEntries(readdirSync(EXAMPLES).map((f) => [`clusters/${f}`, readFileSync(join(EXAMPLES, f), 'utf8')]));
const devSpec = () => readFileSync(join(EXAMPLES, 'dev-docker.yaml'), 'utf8');

async function start(name: string, raw: RawSidecarOptions, log = memoryLogger().log): Promise<SidecarHandle> {
  const port = await freePort();
  const config = parseSidecarConfig({
    gitUrl: repo.url, path: 'clusters', storageDir: join(tmp.dir, name, 'data'), cacheDir: join(tmp.dir, name, 'cache'),
    listen: `127.0.0.1:${port}`, advertiseUrl: `http://127.0.0.1:${port}`, namespace: NS, kubeconfig, pollInterval: '1h', identity: name, ...raw,
  }, renderer.versions.addons, { env: {}, hostname: name, readable: () => true, readFile: (p) => readFileSync(p, 'utf8') });
  if (!config.ok) throw new Error(config.errors.join('; '));
  const handle = await startSidecar(config.value, { log, processMetrics: false, lease: { retryPeriodMs: 100, leaseDurationSeconds: 2, renewDeadlineMs: 1500 } });
  handles.push(handle);
  return handle;
}

const getEA = async (name: string): Promise<Obj> => (await sim.custom.getNamespacedCustomObject({ group: 'source.toolkit.fluxcd.io', version: 'v1', namespace: NS, plural: 'externalartifacts', name })) as Obj;
const listEAs = async (): Promise<Obj[]> => ((await sim.custom.listNamespacedCustomObject({ group: 'source.toolkit.fluxcd.io', version: 'v1', namespace: NS, plural: 'externalartifacts' })) as { items: Obj[] }).items;
const writes = async (h: SidecarHandle): Promise<number> => (await h.metrics.registry.getSingleMetric('lattice_sidecar_status_writes_total')?.get())?.values[0]?.value ?? 0;
const holder = async (): Promise<string> => (await sim.coordination.readNamespacedLease({ name: 'lattice-sidecar', namespace: NS })).spec?.holderIdentity ?? '';
const ready = (ea: Obj): Obj | undefined => (ea.status?.conditions as Obj[] | undefined)?.find((c) => c.type === 'Ready');

/** What the sidecar should publish for the repository as it is now: rendered independently. */
function expectedFiles(): Map<string, Map<string, string>> {
  const { result } = loadSpecs(['clusters'], repo.dir);
  if (!result.ok) throw new Error('repository specs are invalid');
  return new Map(fluxArtifactsOf(renderer, result.value, { namespace: NS, artifactNamespace: NS }).map((a) => [a.name, new Map(a.files.map((f) => [f.path, f.text]))]));
}

beforeAll(async () => {
  sim = await startSim({ crds: [join(SHARED, 'upstream-crds', 'flux')], namespaces: ['default', NS] });
  kubeconfig = join(tmp.dir, 'kubeconfig');
  writeFileSync(kubeconfig, sim.server.kubeconfigYaml());
  repo = await createSpecRepo(join(tmp.dir, 'repo'));
  await repo.commit(exampleFiles(), 'add the example clusters');
});

afterAll(async () => {
  for (const h of handles) await h.stop();
  await sim.server.close();
  tmp.remove();
});

describe('lattice sidecar following a git repository', () => {
  let sidecar: SidecarHandle;
  const logs = memoryLogger();
  let firstDigests: Map<string, string>;

  it('publishes one ExternalArtifact per cluster plus the index, which a Flux consumer verifies and unpacks into exactly the rendered files', async () => {
    // GIVEN the example clusters committed on main
    const head = (await repo.git.revparse(['HEAD'])).trim();
    // WHEN the sidecar starts
    sidecar = await start('a', { hookTokenFile: writeToken() }, logs.log);
    // THEN an ExternalArtifact exists for the index and each of the 7 clusters, each Ready with an artifact
    const names = [INDEX_ARTIFACT, ...['dev', 'edge-dc1', 'lab', 'mgmt', 'ml-inference', 'prod-eu', 'secure'].map(clusterArtifactName)].sort();
    const eas = await eventually(async () => {
      const items = await listEAs();
      expect(items.map((e) => e.metadata.name).sort()).toEqual(names);
      for (const e of items) expect(ready(e)?.status, e.metadata.name).toBe('True');
      return items;
    });
    const expected = expectedFiles();
    for (const ea of eas) {
      const a = ea.status.artifact as Obj;
      const hex = String(a.digest).replace('sha256:', '');
      // AND its status follows the ExternalArtifact contract and the upstream schema
      expect(upstream.validate(ea), ea.metadata.name).toEqual({ ok: true });
      expect(a).toMatchObject({
        digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), revision: `main@sha256:${hex}`,
        url: `${sidecar.url}/artifacts/${ea.metadata.name}/${hex}.tar.gz`, path: `${ea.metadata.name}/${hex}.tar.gz`,
        size: expect.any(Number), lastUpdateTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
        metadata: { 'org.opencontainers.image.revision': `main@sha1:${head}` },
      });
      expect(ready(ea)).toMatchObject({ reason: 'Succeeded', message: `stored artifact for revision 'main@sha256:${hex}'` });
      // AND the consumer gets exactly the files the flavor renders
      const files = await fetchLikeFlux(a as { url: string; digest: string; revision: string });
      expect(new Map(files)).toEqual(expected.get(ea.metadata.name));
    }
    const dev = eas.find((e) => e.metadata.name === 'lattice-cluster-dev');
    expect(dev?.spec.sourceRef).toEqual({ apiVersion: 'lattice.dev/v1alpha1', kind: 'LatticeCluster', name: 'dev' });
    expect(dev?.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'lattice-sidecar', 'lattice.dev/cluster': 'dev' });
    firstDigests = new Map(eas.map((e) => [String(e.metadata.name), String(e.status.artifact.digest)]));
  });

  it('gives every Kustomization of the index a path its ExternalArtifact holds, with the objects rendered for it', async () => {
    // GIVEN the index as Flux downloads it
    const index = await fetchLikeFlux((await getEA(INDEX_ARTIFACT)).status.artifact);
    const kustomizations = objectsUnder(index, './') as Obj[];
    expect(kustomizations.filter((k) => k.kind === 'Kustomization')).toHaveLength(21);
    // WHEN each Kustomization's source is fetched and its path built
    for (const k of kustomizations.filter((x) => x.kind === 'Kustomization')) {
      const source = await getEA(k.spec.sourceRef.name);
      const objects = objectsUnder(await fetchLikeFlux(source.status.artifact), k.spec.path) as Obj[];
      // THEN it applies objects, and the agent Kustomization only the agent's
      expect(objects.length, k.metadata.name).toBeGreaterThan(3);
      if (k.spec.path === './agent') expect(objects.map((o) => o.kind)).toContain('Deployment');
      if (k.spec.path === './addons') expect(objects.filter((o) => o.kind === 'HelmRelease').every((o) => o.spec.kubeConfig.secretRef.name === `${String(k.metadata.labels['lattice.dev/cluster'])}-kubeconfig`)).toBe(true);
    }
  });

  it('changes only the touched cluster\'s digest on a new commit, and writes no other status', async () => {
    // GIVEN the published state
    const before = new Map((await listEAs()).map((e) => [String(e.metadata.name), e]));
    // WHEN a commit scales dev's workers
    await repo.commit({ 'clusters/dev-docker.yaml': devSpec().replace('replicas: 2', 'replicas: 3') });
    await sidecar.sidecar.refresh();
    // THEN dev's artifact changes and nothing else is rewritten
    const after = await eventually(async () => {
      const items = new Map((await listEAs()).map((e) => [String(e.metadata.name), e]));
      expect(items.get('lattice-cluster-dev')?.status.artifact.digest).not.toBe(firstDigests.get('lattice-cluster-dev'));
      return items;
    });
    for (const [name, ea] of after) {
      if (name === 'lattice-cluster-dev') continue;
      expect(ea.metadata.resourceVersion, name).toBe(before.get(name)?.metadata.resourceVersion);
      expect(ea.status.artifact.digest, name).toBe(firstDigests.get(name));
    }
    const files = await fetchLikeFlux(after.get('lattice-cluster-dev')?.status.artifact);
    expect(files.get('infrastructure/manifests.yaml')).toContain('replicas: 3');
  });

  let goodDev: Obj;
  it('keeps serving the last good artifacts on a commit with an invalid spec, and reports the located error', async () => {
    // GIVEN the current dev artifact
    goodDev = (await getEA('lattice-cluster-dev')).status.artifact;
    // WHEN a commit makes the control plane even (line 17, column 17 of the file)
    const bad = await repo.commit({ 'clusters/dev-docker.yaml': devSpec().replace('replicas: 2', 'replicas: 3').replace(/controlPlane:\n {6}replicas: 1/, 'controlPlane:\n      replicas: 2') });
    await sidecar.sidecar.refresh();
    // THEN every ExternalArtifact turns Ready=False with the file:line:col, path, expected and found
    const located = 'clusters/dev-docker.yaml:17:17: error CONTROL_PLANE_REPLICAS_NOT_ODD spec.nodes.controlPlane.replicas: control plane replicas must be a positive odd number so etcd keeps quorum (expected an odd number >= 1 (1, 3, 5, ...), found 2)';
    await eventually(async () => {
      for (const ea of await listEAs()) {
        expect(ready(ea), ea.metadata.name).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
        expect(ready(ea)?.message).toContain(`main@sha1:${bad} has 1 invalid spec error; still serving the artifacts of main@sha1:`);
        expect(ready(ea)?.message).toContain(located);
      }
    });
    // AND the artifact and its URL are the last good ones, still downloadable
    const dev = await getEA('lattice-cluster-dev');
    expect(dev.status.artifact).toEqual(goodDev);
    expect((await fetchLikeFlux(goodDev as { url: string; digest: string; revision: string })).get('infrastructure/manifests.yaml')).toContain('replicas: 3');
    // AND the logs carry the same located error, with constant message and fields
    expect(logs.entries()).toContainEqual(expect.objectContaining({ msg: 'invalid spec', code: 'CONTROL_PLANE_REPLICAS_NOT_ODD', file: 'clusters/dev-docker.yaml', line: 17, col: 17, path: 'spec.nodes.controlPlane.replicas', issue: located }));
    expect(sidecar.sidecar.isReady).toBe(true);
    expect(await sidecar.metrics.registry.getSingleMetricAsString('lattice_sidecar_errors_total')).toContain('code="InvalidSpec"} 1');
  });

  it('recovers on the fix: Ready again, and an unchanged content keeps its artifact as it was', async () => {
    // WHEN the spec is fixed back to the last good content, with a webhook instead of a poll
    await repo.commit({ 'clusters/dev-docker.yaml': devSpec().replace('replicas: 2', 'replicas: 3') });
    const res = await fetch(`${sidecar.url}/hooks/git`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(202);
    // THEN everything is Ready, dev's artifact untouched (same digest, same lastUpdateTime and origin commit)
    await eventually(async () => {
      for (const ea of await listEAs()) expect(ready(ea), ea.metadata.name).toMatchObject({ status: 'True', reason: 'Succeeded' });
    });
    expect((await getEA('lattice-cluster-dev')).status.artifact).toEqual(goodDev);
  });

  let replica: SidecarHandle;
  it('renders byte-identical artifacts in a second replica, which serves the same URLs but writes nothing while the first holds the Lease', async () => {
    // GIVEN a second replica on the same repository, publishing enabled
    replica = await start('b', {});
    await eventually(() => expect(replica.sidecar.isReady).toBe(true));
    // WHEN it is asked for every URL the first one published
    for (const ea of await listEAs()) {
      const a = ea.status.artifact as { url: string; digest: string; revision: string };
      // THEN it has the same bytes (the digest checks out against its own server)
      const files = await fetchLikeFlux({ ...a, url: a.url.replace(sidecar.url, replica.url) });
      expect(files.size, ea.metadata.name).toBeGreaterThan(0);
    }
    // AND only the Lease holder has written ExternalArtifacts
    expect((await holder()).split('_')[0]).toBe('a');
    expect(await writes(sidecar)).toBeGreaterThan(0);
    expect(await writes(replica)).toBe(0);
  });

  it('deletes the ExternalArtifact of a cluster removed from git, and keeps serving its last artifact for the grace period', async () => {
    // GIVEN the lab cluster's artifact
    const lab = (await getEA('lattice-cluster-lab')).status.artifact as { url: string; digest: string; revision: string };
    // WHEN its spec is removed
    await repo.commit({ 'clusters/lab-proxmox.yaml': null });
    await sidecar.sidecar.refresh();
    // THEN its ExternalArtifact goes, the index changes, and the old URL still answers (grace period)
    await eventually(async () => expect((await listEAs()).map((e) => e.metadata.name)).not.toContain('lattice-cluster-lab'));
    expect((await getEA(INDEX_ARTIFACT)).status.artifact.digest).not.toBe(firstDigests.get(INDEX_ARTIFACT));
    expect((await fetchLikeFlux(lab)).size).toBeGreaterThan(0);
  });

  it('refuses to publish an index without clusters, which would make Flux prune them all', async () => {
    // WHEN every spec is removed
    const files = Object.fromEntries(Object.keys(exampleFiles()).filter((f) => f.endsWith('.yaml')).map((f) => [f, null]));
    await repo.commit({ ...files, 'clusters/README.md': 'moved' });
    await sidecar.sidecar.refresh();
    // THEN nothing is deleted and the index says why
    await eventually(async () => expect(ready(await getEA(INDEX_ARTIFACT))).toMatchObject({ status: 'False', reason: 'NoClusters' }));
    expect((await listEAs()).map((e) => e.metadata.name)).toContain('lattice-cluster-dev');
    await repo.commit({ ...exampleFiles(), 'clusters/lab-proxmox.yaml': null, 'clusters/dev-docker.yaml': devSpec().replace('replicas: 2', 'replicas: 3') });
    await sidecar.sidecar.refresh();
  });

  it('hands over to the other replica when the Lease holder stops, which then publishes the next commit', async () => {
    // GIVEN both replicas up to date, the first one leading
    await replica.sidecar.refresh();
    const before = (await getEA('lattice-cluster-dev')).status.artifact.digest as string;
    expect(await writes(replica)).toBe(0);
    // WHEN the leader stops (releasing the Lease) and a commit arrives
    await sidecar.stop();
    handles.splice(handles.indexOf(sidecar), 1);
    await eventually(async () => expect((await holder()).split('_')[0]).toBe('b'));
    await repo.commit({ 'clusters/dev-docker.yaml': devSpec().replace('replicas: 2', 'replicas: 7') });
    await replica.sidecar.refresh();
    // THEN the new leader publishes it
    await eventually(async () => expect((await getEA('lattice-cluster-dev')).status.artifact.digest).not.toBe(before));
    expect(await writes(replica)).toBeGreaterThan(0);
  });
});

const TOKEN = 'hook-token-for-the-git-test';
function writeToken(): string {
  const file = join(tmp.dir, 'hook-token');
  writeFileSync(file, `${TOKEN}\n`);
  return file;
}

describe('git credentials', () => {
  it('never reach a log line, a condition or a message', async () => {
    // GIVEN HTTP credentials in files and a repository that cannot be reached
    const password = 'p4ssw0rd-that-must-not-leak';
    writeFileSync(join(tmp.dir, 'user'), 'deploy-bot\n');
    writeFileSync(join(tmp.dir, 'password'), `${password}\n`);
    const logs = memoryLogger();
    const port = await freePort();
    const h = await start('creds', {
      gitUrl: `http://127.0.0.1:${port}/clusters.git`, gitUsernameFile: join(tmp.dir, 'user'), gitPasswordFile: join(tmp.dir, 'password'),
      publish: 'false',
    }, logs.log);
    // WHEN a fetch fails
    await h.sidecar.refresh();
    // THEN the failure is logged without the password, in clear or in its Basic encoding
    const text = logs.lines.join('\n');
    expect(text).toContain('source sync failed');
    expect(text).toContain('FetchFailed');
    for (const secret of [password, Buffer.from(`deploy-bot:${password}`).toString('base64')]) {
      expect(text).not.toContain(secret);
      expect(h.sidecar.state.failure?.message ?? '').not.toContain(secret);
    }
  });
});
