/**
 * Test helpers for the sidecar (never used by production code paths): real git repositories of specs,
 * and a consumer that fetches an ExternalArtifact the way kustomize-controller does.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import pino, { type Logger } from 'pino';
import { simpleGit, type SimpleGit } from 'simple-git';
import { Parser, type ReadEntry } from 'tar';
import { parseAllDocuments } from 'yaml';

/** A logger that writes nothing (tests must not print). */
export const silentLogger = (): Logger => pino({ level: 'silent' });

/** A logger that keeps its JSON lines in memory, for tests that check what is (and is not) logged. */
export function memoryLogger(): { log: Logger; lines: string[]; entries: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { log, lines, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** A TCP port free on 127.0.0.1 right now (for servers whose URL must be known before they start). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface SpecRepo {
  readonly dir: string;
  readonly url: string;
  readonly git: SimpleGit;
  /** Writes (or, with null, deletes) files and commits them on main; returns the commit. */
  commit(files: Readonly<Record<string, string | null>>, message?: string): Promise<string>;
}

/** A real repository (branch main) at `dir`, served to the sidecar as a file:// URL. */
export async function createSpecRepo(dir: string): Promise<SpecRepo> {
  mkdirSync(dir, { recursive: true });
  const git = simpleGit({ baseDir: dir });
  await git.init(['--initial-branch=main']);
  await git.addConfig('user.email', 'platform@example.com');
  await git.addConfig('user.name', 'Platform Team');
  await git.addConfig('commit.gpgsign', 'false');
  return {
    dir, url: `file://${dir}`, git,
    async commit(files, message = 'update clusters') {
      for (const [path, content] of Object.entries(files)) {
        const file = join(dir, path);
        if (content === null) rmSync(file, { force: true });
        else {
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, content);
        }
      }
      await git.add(['-A']);
      await git.commit(message);
      return (await git.revparse(['HEAD'])).trim();
    },
  };
}

export interface ArtifactStatus {
  readonly url: string;
  readonly digest: string;
  readonly revision: string;
}

/**
 * Fetches an artifact as kustomize-controller does (research/flux.md §2): one GET, 200 only, sha256 of the
 * exact bytes checked against `digest`, gzip required, entries relative without `..` or backslashes,
 * symlinks dropped, anything but files and directories refused. Returns the files by path.
 */
export async function fetchLikeFlux(artifact: ArtifactStatus): Promise<Map<string, string>> {
  const res = await fetch(artifact.url);
  if (res.status !== 200) throw new Error(`GET ${artifact.url}: HTTP ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  const [algorithm, expected] = artifact.digest.split(':', 2);
  const actual = createHash(algorithm ?? 'sha256').update(bytes).digest('hex');
  if (actual !== expected) throw new Error(`failed to verify archive: computed digest doesn't match provided '${artifact.digest}'`);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw new Error('requires gzip-compressed body');
  const files = new Map<string, string>();
  const problems: string[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      const name = entry.path;
      if (name === '' || name.includes('\\') || name.startsWith('/') || name.split('/').includes('..')) problems.push(`invalid entry ${name}`);
      if (entry.type === 'File') {
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => files.set(name, Buffer.concat(chunks).toString('utf8')));
        return;
      }
      if (entry.type !== 'Directory' && entry.type !== 'SymbolicLink') problems.push(`unsupported entry type ${entry.type}`);
      entry.resume();
    },
  });
  parser.end(gunzipSync(bytes));
  if (problems.length > 0) throw new Error(problems.join('; '));
  return files;
}

/**
 * What a Kustomization with `path` applies from an unpacked artifact when the directory has no
 * kustomization.yaml: every object of every YAML file below it (kustomizations.md "Generating a
 * kustomization.yaml"), in file order.
 */
export function objectsUnder(files: ReadonlyMap<string, string>, path: string): unknown[] {
  const prefix = path.replace(/^\.\//, '').replace(/\/?$/, '/');
  return [...files.keys()].filter((f) => (prefix === '/' || f.startsWith(prefix)) && /\.ya?ml$/.test(f)).sort()
    .flatMap((f) => parseAllDocuments(files.get(f) ?? '').map((d) => d.toJS() as unknown).filter((o) => o !== null));
}

/** Every YAML file under a directory, by relative path (for reading a rendered tree back). */
export function readTree(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? readTree(dir, join(prefix, e.name)) : [join(prefix, e.name)])).sort();
}
