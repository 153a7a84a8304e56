/** The reconcile loop with a scripted source and writer: failure kinds, retries, requests for unknown URLs. */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { specRenderer } from '../cli/load.js';
import { transient, waiting } from '../core/errors.js';
import { createSidecarMetrics } from './metrics.js';
import type { PublishState } from './publisher.js';
import { Sidecar, type SidecarOptions } from './sidecar.js';
import type { Source, SourceSnapshot } from './source.js';
import { ArtifactStore } from './store.js';
import { memoryLogger, tempDir } from './testing.js';
import { REPO } from '../test/support/repo.js';
import { buildArtifacts, type BuildResult } from './build.js';

const tmp = tempDir('lattice-sidecar-loop-');
afterAll(() => tmp.remove());

const snapshot = (commit: string): SourceSnapshot => ({ dir: REPO, commit, branch: 'main', revision: `main@sha1:${commit}` });

class ScriptedSource implements Source {
  readonly description = 'scripted';
  syncs = 0;
  constructor(public next: () => SourceSnapshot) {}
  async sync(): Promise<SourceSnapshot> {
    this.syncs++;
    return this.next();
  }
}

async function loop(source: Source, extra: Partial<SidecarOptions> = {}) {
  const published: PublishState[] = [];
  const full: boolean[] = [];
  const store = new ArtifactStore({ dir: join(tmp.dir, String(Math.random()).slice(2)), graceMs: 0, now: () => 0, log: memoryLogger().log });
  await store.init();
  const sidecar = new Sidecar({
    source, store, renderer: specRenderer(), path: 'examples/clusters', flux: { namespace: 'flux-system' }, advertiseUrl: 'http://sidecar', pollIntervalMs: 3_600_000,
    writer: {
      publish: async (s, options) => {
        published.push(s);
        full.push(options?.full ?? false);
        return { created: 0, updated: 0, statusWrites: 0, deleted: 0 };
      },
    },
    metrics: createSidecarMetrics(), log: memoryLogger().log, ...extra,
  });
  return { sidecar, published, store, full };
}

describe('Sidecar loop', () => {
  it('renders a commit once, then only re-publishes while nothing changes', async () => {
    // GIVEN a source that stays on one commit, and a build that counts its calls
    let builds = 0;
    const source = new ScriptedSource(() => snapshot('a'.repeat(40)));
    const { sidecar, published } = await loop(source, { build: (...args) => { builds++; return realBuild(...args); } });
    // WHEN it cycles three times
    await sidecar.refresh();
    await sidecar.refresh();
    await sidecar.refresh();
    // THEN it rendered once, published each time, and serves 8 artifacts
    expect(builds).toBe(1);
    expect(published).toHaveLength(3);
    expect(published[2]?.artifacts.map((a) => a.name)).toHaveLength(8);
    expect(published[2]?.failure).toBeUndefined();
    expect(sidecar.isReady).toBe(true);
  });

  it('reports a source failure over the last good artifacts, and clears it when the source is back', async () => {
    const good = snapshot('b'.repeat(40));
    const source = new ScriptedSource(() => good);
    const { sidecar, published } = await loop(source);
    await sidecar.refresh();
    const artifacts = published[0]?.artifacts;
    // WHEN the source fails (transient), then waits (waiting), then recovers
    source.next = () => { throw transient('FetchFailed', 'cannot fetch branch main: connection refused'); };
    await sidecar.refresh();
    expect(published.at(-1)).toMatchObject({ failure: { reason: 'FetchFailed', message: 'cannot fetch branch main: connection refused' } });
    expect(published.at(-1)?.artifacts).toEqual(artifacts);
    source.next = () => { throw waiting('ArtifactNotReady', 'no artifact yet'); };
    await sidecar.refresh();
    expect(published.at(-1)?.failure?.reason).toBe('ArtifactNotReady');
    source.next = () => good;
    await sidecar.refresh();
    // THEN the failure is gone and the artifacts are the same
    expect(published.at(-1)?.failure).toBeUndefined();
    expect(published.at(-1)?.artifacts).toEqual(artifacts);
  });

  it('retries a render that crashed (a bug, not the input) on the next cycle, without details in the condition', async () => {
    let fail = true;
    const { sidecar, published } = await loop(new ScriptedSource(() => snapshot('c'.repeat(40))), {
      build: (...args) => {
        if (fail) throw new Error('template exploded at /internal/path');
        return realBuild(...args);
      },
    });
    await sidecar.refresh();
    expect(published.at(-1)?.failure).toEqual({ reason: 'RenderFailed', message: `main@sha1:${'c'.repeat(40)} could not be rendered; see the sidecar logs` });
    fail = false;
    await sidecar.refresh();
    expect(published.at(-1)?.failure).toBeUndefined();
    expect(published.at(-1)?.artifacts).toHaveLength(8);
  });

  it('refreshes for a request for an unknown artifact at most once per interval', async () => {
    const source = new ScriptedSource(() => snapshot('d'.repeat(40)));
    const { sidecar } = await loop(source, { missRefreshMs: 60_000 });
    await sidecar.refreshForMiss();
    await sidecar.refreshForMiss();
    await sidecar.refreshForMiss();
    expect(source.syncs).toBe(1);
  });

  it('does not publish while it is not the Lease holder', async () => {
    let leader = false;
    const { sidecar, published } = await loop(new ScriptedSource(() => snapshot('e'.repeat(40))), { isLeader: () => leader });
    await sidecar.refresh();
    expect(published).toHaveLength(0);
    expect(sidecar.isReady).toBe(true);
    leader = true;
    await sidecar.refresh();
    expect(published).toHaveLength(1);
  });

  it('asks the writer to reconcile everything first, after a failed publish and after not leading', async () => {
    // GIVEN a writer that fails once, and a Lease that is lost for a while
    let leader = true;
    let failNext = false;
    const { sidecar, full } = await loop(new ScriptedSource(() => snapshot('f'.repeat(40))), { isLeader: () => leader });
    const asked: boolean[] = [];
    const { sidecar: failing } = await loop(new ScriptedSource(() => snapshot('f'.repeat(40))), {
      writer: {
        publish: async (_s, options) => {
          asked.push(options?.full ?? false);
          if (failNext) throw new Error('conflict');
          return { created: 0, updated: 0, statusWrites: 0, deleted: 0 };
        },
      },
    });
    // WHEN it publishes, loses and regains the Lease
    await sidecar.refresh();
    await sidecar.refresh();
    leader = false;
    await sidecar.refresh();
    leader = true;
    await sidecar.refresh();
    await sidecar.refresh();
    // THEN the first publish and the first one after leading again are full, the others may be partial
    expect(full).toEqual([true, false, true, false]);
    // AND after a failed publish, the next one is full
    await failing.refresh();
    failNext = true;
    await failing.refresh();
    failNext = false;
    await failing.refresh();
    await failing.refresh();
    expect(asked).toEqual([true, false, true, false]);
  });
});

const realBuild = (...args: Parameters<typeof buildArtifacts>): BuildResult => buildArtifacts(...args);
