import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { packArtifact } from './archive.js';
import { tempDir } from './testing.js';
import { untarGz } from './untar.js';

const tmp = tempDir('lattice-untar-');
afterAll(() => tmp.remove());
let n = 0;
const target = () => join(tmp.dir, `out-${n++}`);

/** A tar built by hand, so entries our packer would refuse can be made. */
function rawTar(entries: { path: string; type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO'; linkpath?: string; data?: string }[]): Buffer {
  const chunks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const block = Buffer.alloc(512);
    new Header({ path: e.path, type: e.type ?? 'File', size: e.type && e.type !== 'File' ? 0 : data.length, mode: 0o644, mtime: new Date(0), ...(e.linkpath ? { linkpath: e.linkpath } : {}) }).encode(block, 0);
    chunks.push(block);
    if (!e.type || e.type === 'File') chunks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  chunks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(chunks));
}

describe('untarGz (GitRepository artifacts)', () => {
  it('extracts files and directories of a well-formed archive', () => {
    // GIVEN an archive with nested files
    const dir = target();
    // WHEN extracted
    const result = untarGz(packArtifact([{ path: 'clusters/dev.yaml', content: 'a: 1\n' }, { path: 'README.md', content: 'hi' }]), dir, { maxBytes: 1 << 20 });
    // THEN the files are there with their content
    expect(result).toEqual({ files: 2, bytes: 7, skippedSymlinks: 0 });
    expect(readFileSync(join(dir, 'clusters/dev.yaml'), 'utf8')).toBe('a: 1\n');
  });

  it('skips symlinks, as Flux does, so nothing can point out of the tree', () => {
    const dir = target();
    const result = untarGz(rawTar([{ path: 'passwd.yaml', type: 'SymbolicLink', linkpath: '/etc/passwd' }, { path: 'ok.yaml', data: 'x' }]), dir, { maxBytes: 1 << 20 });
    expect(result.skippedSymlinks).toBe(1);
    expect(readdirSync(dir)).toEqual(['ok.yaml']);
  });

  for (const [what, entries, message] of [
    ['a parent-directory entry', [{ path: '../evil.yaml', data: 'x' }], /leaves the archive root/],
    ['a nested parent-directory entry', [{ path: 'a/../../evil.yaml', data: 'x' }], /leaves the archive root/],
    ['an absolute entry', [{ path: '/tmp/evil.yaml', data: 'x' }], /not a relative path/],
    ['a backslash entry', [{ path: 'a\\..\\evil.yaml', data: 'x' }], /not a relative path/],
    ['a hard link', [{ path: 'ok.yaml', data: 'x' }, { path: 'link.yaml', type: 'Link', linkpath: '/etc/passwd' }], /unsupported type Link/],
    ['a FIFO', [{ path: 'pipe', type: 'FIFO' }], /unsupported type FIFO/],
  ] as const) {
    it(`refuses ${what} and writes nothing outside the target`, () => {
      const dir = target();
      expect(() => untarGz(rawTar([...entries]), dir, { maxBytes: 1 << 20 })).toThrow(message);
      expect(existsSync(join(dir, '..', 'evil.yaml'))).toBe(false);
      expect(existsSync('/tmp/evil.yaml')).toBe(false);
    });
  }

  it('enforces the size and entry caps, including against a gzip bomb', () => {
    const big = packArtifact([{ path: 'big.yaml', content: 'a'.repeat(200_000) }]);
    expect(big.length).toBeLessThan(20_000);
    expect(() => untarGz(big, target(), { maxBytes: 100_000 })).toThrow(/not gzip within 100000 bytes|more than 100000 bytes/);
    const many = packArtifact(Array.from({ length: 20 }, (_, i) => ({ path: `f${i}.yaml`, content: '' })));
    expect(() => untarGz(many, target(), { maxBytes: 1 << 20, maxEntries: 10 })).toThrow(/more than 10 entries/);
  });

  it('refuses what is not a gzip tarball', () => {
    expect(() => untarGz(Buffer.from('plain text'), target(), { maxBytes: 1 << 20 })).toThrow(/not gzip/);
    expect(() => untarGz(gzipSync(Buffer.alloc(700, 7)), target(), { maxBytes: 1 << 20 })).toThrow(/not a valid tar|unsupported type/);
  });
});
