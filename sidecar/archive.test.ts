import { describe, expect, it } from 'vitest';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { Parser, type ReadEntry } from 'tar';
import { checkArchivePath, gzipDeterministic, packArtifact, sha256Hex, tarFiles } from './archive.js';

interface Entry { path: string; type: string; mode?: number; uid?: number; gid?: number; uname?: string; gname?: string; mtime?: number; size: number; content: string }

function list(gz: Buffer): Entry[] {
  const out: Entry[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (e: ReadEntry) => {
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => out.push({ path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname, mtime: e.mtime?.getTime(), size: e.size, content: Buffer.concat(chunks).toString('utf8') }));
    },
  });
  parser.end(gunzipSync(gz));
  return out;
}

const files = [
  { path: 'infrastructure/manifests.yaml', content: 'apiVersion: v1\nkind: Namespace\n' },
  { path: 'addons/manifests.yaml', content: '---\nkind: HelmRelease\n'.repeat(50) },
  { path: 'agent/manifests.yaml', content: '' },
];

describe('gzip of artifacts', () => {
  it('round-trips any input through zlib\'s gunzip', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(40), (bytes, repeat) => {
      // GIVEN random bytes, repeated to give the matcher long distances and overlapping matches
      const input = Buffer.concat(Array.from({ length: 1 + (repeat % 5) }, () => Buffer.from(bytes)));
      // WHEN compressed THEN zlib gives the input back
      expect(gunzipSync(gzipDeterministic(input)).equals(input)).toBe(true);
    }), { numRuns: 150 });
  });

  it('compresses YAML-like text and tar padding well', () => {
    const tar = tarFiles(files);
    expect(gzipDeterministic(tar).length).toBeLessThan(tar.length / 8);
  });
});

describe('artifact tarballs', () => {
  it('are byte-identical for the same files in any order, and pinned across machines and versions', () => {
    // GIVEN the same files twice, in different orders
    const a = packArtifact(files);
    const b = packArtifact([...files].reverse());
    // THEN the bytes are equal, and equal to what this code produced when the digest was recorded: a change
    // here changes every published digest (and makes replicas of different versions disagree)
    expect(a.equals(b)).toBe(true);
    expect(sha256Hex(a)).toBe('d3d74e9e5efe40fcb2adf6c183bdc5acc8d173e2bf17eda5e25f1c7b0b739479');
  });

  it('have a fixed gzip header: no mtime, no name, OS "unknown"', () => {
    const gz = gzipDeterministic(Buffer.from('hello'));
    expect([...gz.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    expect(gunzipSync(gz).toString()).toBe('hello');
  });

  it('list directories before their files, sorted by path, with fixed modes, owners and times', () => {
    const entries = list(packArtifact(files));
    expect(entries.map((e) => `${e.type} ${e.path}`)).toEqual([
      'Directory addons/', 'File addons/manifests.yaml', 'Directory agent/', 'File agent/manifests.yaml',
      'Directory infrastructure/', 'File infrastructure/manifests.yaml',
    ]);
    for (const e of entries) {
      expect(e).toMatchObject({ uid: 0, gid: 0, mtime: 0, mode: e.type === 'File' ? 0o644 : 0o755 });
      expect(e.uname ?? '').toBe('');
      expect(e.gname ?? '').toBe('');
    }
    expect(entries.find((e) => e.path === 'addons/manifests.yaml')?.content).toBe(files[1]?.content);
  });

  it('refuse absolute, parent, backslash, empty and over-long paths, and duplicates', () => {
    for (const bad of ['/etc/passwd', '../x.yaml', 'a/../x.yaml', 'a\\b.yaml', '', 'a//b.yaml', './a.yaml', `${'d/'.repeat(60)}x.yaml`]) {
      expect(() => checkArchivePath(bad), bad).toThrow(/unsafe or too long/);
    }
    expect(() => tarFiles([{ path: 'a.yaml', content: '' }, { path: 'a.yaml', content: '' }])).toThrow(/duplicate/);
    expect(() => tarFiles([{ path: 'a', content: '' }, { path: 'a/b.yaml', content: '' }])).toThrow(/both a file and a directory/);
  });
});
