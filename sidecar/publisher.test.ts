/**
 * The ExternalArtifact writer against the simulated API server: after a commit it reads and writes only
 * the ExternalArtifacts whose artifact changed; an unchanged state lists everything and repairs drift.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { SHARED } from '../test/support/repo.js';
import { ExternalArtifactWriter, type PublishedArtifact, type PublishState } from './publisher.js';
import { memoryLogger } from './testing.js';

// Objects read back from the API server are inspected field by field.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const NS = 'flux-system';
const EA = { group: 'source.toolkit.fluxcd.io', version: 'v1', namespace: NS, plural: 'externalartifacts' };
let sim: SimClients;

beforeAll(async () => {
  sim = await startSim({ crds: [join(SHARED, 'upstream-crds', 'flux')], namespaces: ['default', NS] });
});
afterAll(async () => {
  await sim.server.close();
});

const hex = (seed: string) => seed.repeat(64).slice(0, 64);
function artifact(name: string, seed: string, commit = 'a'): PublishedArtifact {
  return {
    name, ...(name !== 'lattice-index' ? { cluster: name.replace('lattice-cluster-', '') } : {}), hex: hex(seed), size: 10,
    path: `${name}/${hex(seed)}.tar.gz`, url: `http://sidecar/artifacts/${name}/${hex(seed)}.tar.gz`,
    revision: `main@sha256:${hex(seed)}`, originRevision: `main@sha1:${commit.repeat(40)}`,
  };
}
const state = (artifacts: PublishedArtifact[], failure?: PublishState['failure']): PublishState => ({ artifacts, indexName: 'lattice-index', ...(failure ? { failure } : {}) });
const list = async (): Promise<Map<string, Obj>> => new Map(((await sim.custom.listNamespacedCustomObject(EA)) as { items: Obj[] }).items.map((o) => [String(o.metadata.name), o]));

describe('ExternalArtifactWriter', () => {
  const logs = memoryLogger();
  let writer: ExternalArtifactWriter;
  const written = () => logs.entries().filter((e) => e.msg === 'external artifacts written').at(-1);

  it('creates every ExternalArtifact on the first publish, listing first', async () => {
    writer = new ExternalArtifactWriter({ kubeConfig: sim.kc, namespace: NS, now: () => new Date('2026-01-01T00:00:00Z'), log: logs.log });
    const r = await writer.publish(state([artifact('lattice-index', '1'), artifact('lattice-cluster-a', '2'), artifact('lattice-cluster-b', '3')]));
    expect(r).toEqual({ created: 3, updated: 0, statusWrites: 3, deleted: 0 });
    expect(written()).toMatchObject({ listed: true });
  });

  it('writes only the changed ExternalArtifact after a commit, without listing, and keeps the others untouched', async () => {
    // GIVEN the published objects
    const before = await list();
    // WHEN a new commit changes b only (every artifact now names the new commit as its origin)
    const r = await writer.publish(state([artifact('lattice-index', '1', 'b'), artifact('lattice-cluster-a', '2', 'b'), artifact('lattice-cluster-b', '4', 'b')]));
    // THEN one status write, for b, and no list
    expect(r).toEqual({ created: 0, updated: 0, statusWrites: 1, deleted: 0 });
    expect(written()).toMatchObject({ listed: false });
    const after = await list();
    expect(after.get('lattice-cluster-b')?.status.artifact).toMatchObject({ digest: `sha256:${hex('4')}`, metadata: { 'org.opencontainers.image.revision': `main@sha1:${'b'.repeat(40)}` } });
    for (const name of ['lattice-index', 'lattice-cluster-a']) expect(after.get(name)?.metadata.resourceVersion, name).toBe(before.get(name)?.metadata.resourceVersion);
  });

  it('repairs drift on the next publish of an unchanged state (every poll lists)', async () => {
    // GIVEN someone deletes an ExternalArtifact behind the writer's back
    await sim.custom.deleteNamespacedCustomObject({ ...EA, name: 'lattice-cluster-a' });
    await eventually(async () => expect((await list()).has('lattice-cluster-a')).toBe(false));
    // WHEN the same state is published again
    const r = await writer.publish(state([artifact('lattice-index', '1', 'b'), artifact('lattice-cluster-a', '2', 'b'), artifact('lattice-cluster-b', '4', 'b')]));
    // THEN it was listed and recreated
    expect(r.created).toBe(1);
    expect(written()).toMatchObject({ listed: true });
    expect((await list()).get('lattice-cluster-a')?.status.artifact.digest).toBe(`sha256:${hex('2')}`);
  });

  it('deletes the ExternalArtifact of a removed cluster, and adds a new one, reading only those', async () => {
    // WHEN a commit removes b and adds c
    const r = await writer.publish(state([artifact('lattice-index', '5'), artifact('lattice-cluster-a', '2'), artifact('lattice-cluster-c', '6')]));
    // THEN the index is updated, c created, b deleted
    expect(r).toEqual({ created: 1, updated: 0, statusWrites: 2, deleted: 1 });
    expect(written()).toMatchObject({ listed: false });
    expect([...(await list()).keys()].sort()).toEqual(['lattice-cluster-a', 'lattice-cluster-c', 'lattice-index']);
  });

  it('lists and writes every status when a failure appears or clears, and whenever asked for a full publish', async () => {
    const good = [artifact('lattice-index', '5'), artifact('lattice-cluster-a', '2'), artifact('lattice-cluster-c', '6')];
    // WHEN a commit fails to render
    const failed = await writer.publish(state(good, { reason: 'InvalidSpec', message: 'bad commit' }));
    // THEN every ExternalArtifact says so
    expect(failed.statusWrites).toBe(3);
    expect(written()).toMatchObject({ listed: true });
    // AND the fix clears them all
    expect((await writer.publish(state(good))).statusWrites).toBe(3);
    // AND a full publish lists even when the state changed in one artifact only
    await writer.publish(state([good[0] as PublishedArtifact, artifact('lattice-cluster-a', '7'), good[2] as PublishedArtifact]), { full: true });
    expect(written()).toMatchObject({ listed: true, statusWrites: 1 });
  });

  it('does not take over an object of the same name that it does not manage', async () => {
    // GIVEN an ExternalArtifact of someone else, named like a cluster's
    await sim.custom.createNamespacedCustomObject({ ...EA, body: { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'ExternalArtifact', metadata: { name: 'lattice-cluster-d', namespace: NS }, spec: {} } });
    // WHEN a commit adds cluster d: the writer reads it as not ours and tries to create it
    const good = [artifact('lattice-index', '5'), artifact('lattice-cluster-a', '7'), artifact('lattice-cluster-c', '6')];
    await expect(writer.publish(state([...good, artifact('lattice-cluster-d', '8')]))).rejects.toThrow();
    // THEN the foreign object is untouched
    expect((await list()).get('lattice-cluster-d')?.metadata.labels).toBeUndefined();
  });
});
