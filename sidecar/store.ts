/**
 * The artifact store: tarballs on disk by digest (`<dir>/<name>/<hex>.tar.gz`), the current set, and
 * garbage collection of superseded ones after a grace period. The bytes are also kept in memory and served
 * from there (artifacts are small: 1,000 clusters make about 5 MB), so a GET costs no file system call; the
 * files let a restarted replica keep serving what it served before. Consumers may be mid-fetch of the previous
 * revision when a new one is published (source-controller keeps the last 2 for a minute:
 * research/flux.md §3); a URL that vanishes makes kustomize-controller wait 30 s before it re-reads.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { sha256Hex } from './archive.js';

/** Artifact names: Kubernetes object names (DNS subdomains without dots), as our ExternalArtifacts are named. */
export const ARTIFACT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,251}[a-z0-9])?$/;
export const HEX_DIGEST = /^[0-9a-f]{64}$/;

export interface StoredArtifact {
  readonly name: string;
  /** sha256 of the bytes, hex. */
  readonly hex: string;
  readonly size: number;
  /** Relative path in the store: `<name>/<hex>.tar.gz`. */
  readonly path: string;
}

interface Entry extends StoredArtifact {
  /** When it stopped being current (ms); undefined while current. */
  retiredAt?: number;
}

export interface ArtifactStoreOptions {
  readonly dir: string;
  /** How long a superseded artifact stays served. */
  readonly graceMs: number;
  readonly now: () => number;
  readonly log: Logger;
}

const key = (name: string, hex: string) => `${name}/${hex}`;

export class ArtifactStore {
  private readonly entries = new Map<string, Entry>();
  /** The bytes of every entry, by the same key. */
  private readonly bodies = new Map<string, Buffer>();

  constructor(private readonly options: ArtifactStoreOptions) {}

  /**
   * Creates the directory and adopts what a previous run left: files whose bytes match their digest
   * are served for a grace period (a consumer may still be fetching them); anything else is removed.
   */
  async init(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true });
    for (const name of await readdir(this.options.dir)) {
      const dir = join(this.options.dir, name);
      if (!ARTIFACT_NAME.test(name) || !(await stat(dir)).isDirectory()) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      for (const file of await readdir(dir)) {
        const hex = file.endsWith('.tar.gz') ? file.slice(0, -'.tar.gz'.length) : '';
        const bytes = HEX_DIGEST.test(hex) ? await readFile(join(dir, file)) : undefined;
        if (!bytes || sha256Hex(bytes) !== hex) {
          this.options.log.warn({ artifact: name, file }, 'removing unexpected file from artifact storage');
          await rm(join(dir, file), { force: true });
          continue;
        }
        this.entries.set(key(name, hex), { name, hex, size: bytes.length, path: `${name}/${hex}.tar.gz`, retiredAt: this.options.now() });
        this.bodies.set(key(name, hex), bytes);
      }
    }
  }

  /** Stores bytes under their digest (a no-op when present); written to a temporary name, then renamed. */
  async put(name: string, bytes: Uint8Array): Promise<StoredArtifact> {
    if (!ARTIFACT_NAME.test(name)) throw new Error(`invalid artifact name ${JSON.stringify(name)}`);
    const hex = sha256Hex(bytes);
    const existing = this.entries.get(key(name, hex));
    if (existing) return existing;
    const dir = join(this.options.dir, name);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${hex}.tar.gz`);
    await writeFile(`${file}.tmp`, bytes);
    await rename(`${file}.tmp`, file);
    const entry: Entry = { name, hex, size: bytes.length, path: `${name}/${hex}.tar.gz`, retiredAt: this.options.now() };
    this.entries.set(key(name, hex), entry);
    // A copy: the caller's buffer is not ours to keep, and what is served must never change.
    this.bodies.set(key(name, hex), Buffer.from(bytes));
    return entry;
  }

  /** Makes exactly these artifacts current; the others start their grace period now. */
  setCurrent(current: readonly StoredArtifact[]): void {
    const keep = new Set(current.map((a) => key(a.name, a.hex)));
    const now = this.options.now();
    for (const [k, e] of this.entries) {
      if (keep.has(k)) delete e.retiredAt;
      else e.retiredAt ??= now;
    }
  }

  /** Deletes artifacts superseded for longer than the grace period; returns how many. */
  async collect(): Promise<number> {
    const now = this.options.now();
    let removed = 0;
    for (const [k, e] of this.entries) {
      if (e.retiredAt === undefined || now - e.retiredAt < this.options.graceMs) continue;
      this.entries.delete(k);
      this.bodies.delete(k);
      await rm(join(this.options.dir, e.name, `${e.hex}.tar.gz`), { force: true });
      removed++;
    }
    return removed;
  }

  /** The artifact, if stored (current or within its grace period). Name and digest must be validated. */
  get(name: string, hex: string): StoredArtifact | undefined {
    return this.entries.get(key(name, hex));
  }

  /** The bytes of a stored artifact (what its file holds). */
  body(artifact: StoredArtifact): Buffer | undefined {
    return this.bodies.get(key(artifact.name, artifact.hex));
  }

  /** The file of a stored artifact: built from a stored entry, never from request input. */
  file(artifact: StoredArtifact): string {
    return join(this.options.dir, artifact.name, `${artifact.hex}.tar.gz`);
  }

  /** How many artifacts are stored. */
  get size(): number {
    return this.entries.size;
  }
}
