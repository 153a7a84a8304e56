/**
 * Safe extraction of a source tarball (a Flux GitRepository artifact) into an empty directory, with
 * Flux's own rules (fluxcd/pkg/tar, research/flux.md §2.3) and then some:
 *  - gzip only, decompressed with a size cap (a small bomb cannot fill the disk or the heap);
 *  - entry names relative, `/`-separated, without `..`, backslashes, NUL or a leading `/`;
 *  - regular files and directories only; symlinks are skipped, as Flux skips them, so nothing can point
 *    out of the tree; hard links, devices and FIFOs fail the extraction;
 *  - caps on the number of entries and the total size;
 *  - files written with fixed modes (0644, directories 0755), never following anything on disk: the target
 *    is a fresh directory and every path is checked to stay inside it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { stalling } from '../core/errors.js';

export interface UntarLimits {
  /** Largest decompressed tar stream and sum of file sizes. */
  readonly maxBytes: number;
  /** Most entries. @default 100000 */
  readonly maxEntries?: number;
}

export interface UntarResult {
  readonly files: number;
  readonly bytes: number;
  readonly skippedSymlinks: number;
}

const fail = (message: string) => stalling('UnsafeArchive', message);

/** Checks one entry name; returns its segments. */
export function checkEntryName(name: string): string[] {
  if (name === '' || name.includes('\\') || name.includes('\0') || name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw fail(`archive entry ${JSON.stringify(name)} is not a relative path`);
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.some((s) => s === '..')) throw fail(`archive entry ${JSON.stringify(name)} leaves the archive root`);
  return segments;
}

/** Extracts a gzip tarball into `dir` (created; must not exist or be empty). */
export function untarGz(bytes: Uint8Array, dir: string, limits: UntarLimits): UntarResult {
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes, { maxOutputLength: limits.maxBytes + 1024 });
  } catch (e) {
    throw fail(`the archive is not gzip within ${limits.maxBytes} bytes: ${(e as Error).message}`);
  }
  const root = resolve(dir);
  mkdirSync(root, { recursive: true });
  const maxEntries = limits.maxEntries ?? 100_000;
  let entries = 0;
  let total = 0;
  let files = 0;
  let skippedSymlinks = 0;
  let problem: Error | undefined;

  const inside = (segments: string[]): string => {
    const target = resolve(root, ...segments);
    if (target !== root && !target.startsWith(root + sep)) throw fail('archive entry escapes the target directory');
    return target;
  };
  const onEntry = (entry: ReadEntry) => {
    try {
      if (problem) throw problem;
      if (++entries > maxEntries) throw fail(`the archive has more than ${maxEntries} entries`);
      const segments = checkEntryName(entry.path);
      switch (entry.type) {
        case 'Directory':
          if (segments.length > 0) mkdirSync(inside(segments), { recursive: true, mode: 0o755 });
          entry.resume();
          return;
        case 'SymbolicLink':
          skippedSymlinks++;
          entry.resume();
          return;
        case 'File':
        case 'OldFile':
        case 'ContiguousFile': {
          if (segments.length === 0) throw fail('archive file entry has no name');
          total += entry.size;
          if (total > limits.maxBytes) throw fail(`the archive unpacks to more than ${limits.maxBytes} bytes`);
          const target = inside(segments);
          mkdirSync(join(target, '..'), { recursive: true, mode: 0o755 });
          const chunks: Buffer[] = [];
          entry.on('data', (c: Buffer) => chunks.push(c));
          entry.on('end', () => {
            if (problem) return;
            try {
              // `wx`: never overwrite, never follow a link planted by an earlier entry.
              writeFileSync(target, Buffer.concat(chunks), { flag: 'wx', mode: 0o644 });
              files++;
            } catch (e) {
              problem ??= fail(`cannot write archive entry ${JSON.stringify(entry.path)}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
            }
          });
          return;
        }
        default:
          throw fail(`archive entry ${JSON.stringify(entry.path)} has unsupported type ${entry.type}`);
      }
    } catch (e) {
      problem ??= e as Error;
      entry.resume();
    }
  };
  const parser = new Parser({ strict: true, onReadEntry: onEntry });
  parser.on('error', (e: Error) => (problem ??= fail(`the archive is not a valid tar: ${e.message}`)));
  parser.end(tar);
  if (problem) throw problem;
  return { files, bytes: total, skippedSymlinks };
}
