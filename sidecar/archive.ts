/**
 * Deterministic artifact tarballs: the same files always give the same bytes, on any machine, so the
 * digest (sha256 of the served bytes, what Flux verifies: research/flux.md §2.2) only changes with the
 * content, and every replica serves every digest.
 *
 *  - tar: ustar headers (no PAX, no GNU extensions: Flux's Go reader and fluxcd/pkg/tar read them as is),
 *    entries sorted by path, parent directories listed before their files, relative `/`-separated paths,
 *    regular files (0644) and directories (0755) only, uid/gid 0, empty user and group names, mtime 0,
 *    two zero blocks at the end;
 *  - gzip: a fixed 10-byte header (mtime 0, no name, XFL 0, OS 255 "unknown"; zlib would write the
 *    machine's OS code) around DEFLATE data from fflate, then CRC-32 and size.
 *
 * Why not Node's zlib for DEFLATE: Node bundles Chromium's zlib, whose match finder hashes with CRC32C when
 * the CPU has SSE4.2 or ARMv8 CRC and with Rabin-Karp otherwise (`contrib/optimizations/insert_string.h`:
 * "the generated compressed output ... will differ from canonical zlib output"), so replicas on different
 * machines would publish different digests for the same files. fflate is pure JavaScript: its output
 * depends only on the input and its version, which the lockfile pins.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Header } from 'tar';
import { deflateSync } from 'fflate';

export interface ArchiveFile {
  /** Relative, `/`-separated path. */
  readonly path: string;
  readonly content: string | Uint8Array;
}

const BLOCK = 512;
const EPOCH = new Date(0);
/** ustar's name field; longer paths would need the prefix field or PAX, which we avoid. */
const MAX_NAME = 100;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Throws unless `path` is a plain relative path we are willing to put in an archive. */
export function checkArchivePath(path: string): void {
  const segments = path.split('/');
  if (path.length === 0 || path.length > MAX_NAME - 1 || segments.some((s) => !SEGMENT.test(s) || s === '.' || s === '..')) {
    throw new Error(`unsafe or too long archive path ${JSON.stringify(path)}`);
  }
}

function header(path: string, type: 'File' | 'Directory', size: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  const h = new Header({ path, mode: type === 'File' ? 0o644 : 0o755, uid: 0, gid: 0, size, mtime: EPOCH, type, uname: '', gname: '' });
  if (h.encode(block, 0)) throw new Error(`archive path ${JSON.stringify(path)} needs a PAX header`);
  return block;
}

/** An uncompressed, deterministic tar of `files` (directories are implied by the paths). */
export function tarFiles(files: readonly ArchiveFile[]): Buffer {
  const entries = new Map<string, Uint8Array | undefined>();
  for (const f of files) {
    checkArchivePath(f.path);
    if (entries.has(f.path)) throw new Error(`duplicate archive path ${JSON.stringify(f.path)}`);
    if (entries.has(`${f.path}/`)) throw new Error(`archive path ${JSON.stringify(f.path)} is both a file and a directory`);
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (entries.has(dir)) throw new Error(`archive path ${JSON.stringify(dir)} is both a file and a directory`);
      entries.set(`${dir}/`, undefined);
    }
    entries.set(f.path, typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : f.content);
  }
  const chunks: Uint8Array[] = [];
  // Byte order, not locale order: the same on every machine.
  for (const path of [...entries.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const data = entries.get(path);
    if (data === undefined) {
      chunks.push(header(path, 'Directory', 0));
      continue;
    }
    chunks.push(header(path, 'File', data.length), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) chunks.push(Buffer.alloc(pad));
  }
  chunks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(chunks);
}

/** gzip framing (RFC 1952) with a fixed header around deterministic DEFLATE data. */
export function gzipDeterministic(data: Uint8Array): Buffer {
  const head = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(crc32(data) >>> 0, 0);
  tail.writeUInt32LE(data.length % 2 ** 32, 4);
  return Buffer.concat([head, deflateSync(data, { level: 9 }), tail]);
}

/** The artifact bytes of `files`: a deterministic tar.gz. */
export function packArtifact(files: readonly ArchiveFile[]): Buffer {
  return gzipDeterministic(tarFiles(files));
}

/** Hex sha256 of bytes. */
export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
