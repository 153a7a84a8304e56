import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from './archive.js';
import { ArtifactStore } from './store.js';
import { memoryLogger, tempDir } from './testing.js';

const tmp = tempDir('lattice-store-');
afterAll(() => tmp.remove());

describe('artifact store', () => {
  it('keeps a superseded artifact for the grace period, then collects it', async () => {
    // GIVEN a store with a 10 s grace period and a controllable clock
    let now = 1_000;
    const store = new ArtifactStore({ dir: join(tmp.dir, 'a'), graceMs: 10_000, now: () => now, log: memoryLogger().log });
    await store.init();
    const first = await store.put('lattice-cluster-dev', Buffer.from('one'));
    store.setCurrent([first]);
    // WHEN a new artifact replaces it
    now = 2_000;
    const second = await store.put('lattice-cluster-dev', Buffer.from('two'));
    store.setCurrent([second]);
    // THEN the old one is served until the grace period has passed, then deleted from disk
    now = 11_999;
    expect(await store.collect()).toBe(0);
    expect(store.get('lattice-cluster-dev', first.hex)).toBeDefined();
    now = 12_000;
    expect(await store.collect()).toBe(1);
    expect(store.get('lattice-cluster-dev', first.hex)).toBeUndefined();
    expect(existsSync(store.file(first))).toBe(false);
    expect(store.body(first)).toBeUndefined();
    expect(store.body(second)?.toString()).toBe('two');
    expect(store.get('lattice-cluster-dev', second.hex)).toEqual({ name: 'lattice-cluster-dev', hex: sha256Hex(Buffer.from('two')), size: 3, path: `lattice-cluster-dev/${second.hex}.tar.gz` });
    // AND a current artifact is never collected
    now = 1e9;
    expect(await store.collect()).toBe(0);
  });

  it('keeps its own copy of the bytes it serves from memory', async () => {
    // GIVEN bytes put into the store
    const store = new ArtifactStore({ dir: join(tmp.dir, 'copy'), graceMs: 0, now: () => 0, log: memoryLogger().log });
    await store.init();
    const bytes = Buffer.from('served');
    const stored = await store.put('lattice-index', bytes);
    // WHEN the caller reuses its buffer
    bytes.fill(0);
    // THEN what is served is still what was stored, and matches the file
    expect(store.body(stored)?.toString()).toBe('served');
    expect(sha256Hex(store.body(stored) ?? Buffer.alloc(0))).toBe(stored.hex);
  });

  it('stores by digest: the same bytes twice are one file', async () => {
    const store = new ArtifactStore({ dir: join(tmp.dir, 'b'), graceMs: 0, now: () => 0, log: memoryLogger().log });
    await store.init();
    const a = await store.put('lattice-index', Buffer.from('x'));
    const b = await store.put('lattice-index', Buffer.from('x'));
    expect(b).toBe(a);
    expect(store.size).toBe(1);
    await expect(store.put('../escape', Buffer.from('x'))).rejects.toThrow(/invalid artifact name/);
  });

  it('adopts what a previous run left when it verifies, and removes anything else', async () => {
    // GIVEN a storage directory with a good artifact, a corrupted one and stray files
    const dir = join(tmp.dir, 'c');
    const good = Buffer.from('good');
    mkdirSync(join(dir, 'lattice-index'), { recursive: true });
    writeFileSync(join(dir, 'lattice-index', `${sha256Hex(good)}.tar.gz`), good);
    writeFileSync(join(dir, 'lattice-index', `${'0'.repeat(64)}.tar.gz`), 'tampered');
    writeFileSync(join(dir, 'lattice-index', 'notes.txt'), 'x');
    mkdirSync(join(dir, 'Bad_Name'));
    const logs = memoryLogger();
    let now = 0;
    const store = new ArtifactStore({ dir, graceMs: 5_000, now: () => now, log: logs.log });
    // WHEN the store starts
    await store.init();
    // THEN the good one is served for a grace period, the rest is gone
    expect(store.get('lattice-index', sha256Hex(good))).toBeDefined();
    expect(store.get('lattice-index', '0'.repeat(64))).toBeUndefined();
    expect(existsSync(join(dir, 'lattice-index', 'notes.txt'))).toBe(false);
    expect(existsSync(join(dir, 'Bad_Name'))).toBe(false);
    expect(logs.entries().filter((e) => e.msg === 'removing unexpected file from artifact storage')).toHaveLength(2);
    now = 5_000;
    expect(await store.collect()).toBe(1);
  });
});
