/**
 * The GitRepository source: follow a Flux GitRepository's artifact instead of cloning (what source-watcher
 * does, research/flux.md §3): read `status.artifact`, and when its revision changes download the tarball
 * source-controller serves, verify its digest, unpack it safely and render that tree. Git credentials and
 * verification stay with Flux.
 *
 * The sidecar must be able to reach source-controller: Flux's default NetworkPolicies only admit pods from
 * flux-system, which is why the sidecar runs there (docs/flux.md).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { stalling, transient, waiting } from '../core/errors.js';
import { parseRevision, redact, type Source, type SourceSnapshot } from './source.js';
import { untarGz } from './untar.js';

export interface GitRepositorySourceOptions {
  readonly namespace: string;
  readonly name: string;
  readonly kubeConfig: KubeConfig;
  readonly cacheDir: string;
  /** Largest download, and largest unpacked size. */
  readonly maxBytes: number;
  readonly log: Logger;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** @default 60000 */
  readonly timeoutMs?: number;
}

interface Artifact {
  readonly url?: string;
  readonly digest?: string;
  readonly revision?: string;
}

const ALGORITHMS: Record<string, string> = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };

export class GitRepositorySource implements Source {
  readonly description: string;
  private readonly api: CustomObjectsApi;
  private last?: { digest: string; snapshot: SourceSnapshot };

  constructor(private readonly options: GitRepositorySourceOptions) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.description = `GitRepository ${options.namespace}/${options.name}`;
  }

  async sync(): Promise<SourceSnapshot> {
    const { namespace, name } = this.options;
    let obj: { status?: { artifact?: Artifact } };
    try {
      obj = (await this.api.getNamespacedCustomObject({ group: 'source.toolkit.fluxcd.io', version: 'v1', namespace, plural: 'gitrepositories', name })) as typeof obj;
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === 404) throw waiting('SourceNotFound', `GitRepository ${namespace}/${name} does not exist`, e);
      throw transient('FetchFailed', `cannot read GitRepository ${namespace}/${name}`, e);
    }
    const artifact = obj.status?.artifact;
    if (!artifact?.url || !artifact.digest || !artifact.revision) throw waiting('ArtifactNotReady', `GitRepository ${namespace}/${name} has no artifact yet`);
    if (this.last && this.last.digest === artifact.digest) return this.last.snapshot;

    const revision = parseRevision(artifact.revision);
    if (!revision || (revision.algorithm !== 'sha1' && revision.algorithm !== 'sha256')) throw stalling('UnsupportedRevision', `GitRepository ${namespace}/${name} has revision ${JSON.stringify(artifact.revision)}, expected <branch>@sha1:<commit>`);
    const [algorithm, expected] = artifact.digest.includes(':') ? artifact.digest.split(':', 2) : ['sha256', artifact.digest];
    const hashName = ALGORITHMS[algorithm ?? ''];
    if (!hashName || !expected) throw stalling('UnsupportedDigest', `GitRepository ${namespace}/${name} artifact digest ${JSON.stringify(artifact.digest)} uses an unsupported algorithm`);

    const bytes = await this.download(artifact.url);
    const actual = createHash(hashName).update(bytes).digest('hex');
    if (actual !== expected) throw transient('VerificationFailed', `the artifact of GitRepository ${namespace}/${name} does not match its digest ${artifact.digest} (got ${algorithm}:${actual})`);

    // A fresh directory per artifact: never extract over a previous tree.
    const dir = join(this.options.cacheDir, 'gitrepository', expected.slice(0, 32));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try {
      const result = untarGz(bytes, dir, { maxBytes: this.options.maxBytes });
      this.options.log.info({ source: this.description, revision: artifact.revision, files: result.files, skippedSymlinks: result.skippedSymlinks }, 'source artifact unpacked');
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    const snapshot: SourceSnapshot = { dir, commit: revision.hex, branch: revision.branch ?? 'HEAD', revision: artifact.revision };
    if (this.last && this.last.snapshot.dir !== dir) rmSync(this.last.snapshot.dir, { recursive: true, force: true });
    this.last = { digest: artifact.digest, snapshot };
    return snapshot;
  }

  /** GET with a time limit and a size cap, read as a stream so a huge body is cut off early. */
  private async download(url: string): Promise<Buffer> {
    const doFetch = this.options.fetch ?? fetch;
    const shown = redact(url);
    let res: Response;
    try {
      res = await doFetch(url, { signal: AbortSignal.timeout(this.options.timeoutMs ?? 60_000), redirect: 'error' });
    } catch (e) {
      throw transient('FetchFailed', `cannot download ${shown}: ${redact((e as Error).message)}`, e);
    }
    // 404: source-controller garbage-collected it; the next sync re-reads the status (research/flux.md §3).
    if (res.status !== 200 || !res.body) throw transient('FetchFailed', `cannot download ${shown}: HTTP ${res.status}`);
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > this.options.maxBytes) throw stalling('ArtifactTooLarge', `the artifact at ${shown} is ${declared} bytes, more than ${this.options.maxBytes}`);
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > this.options.maxBytes) {
        await reader.cancel();
        throw stalling('ArtifactTooLarge', `the artifact at ${shown} is larger than ${this.options.maxBytes} bytes`);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks);
  }
}
