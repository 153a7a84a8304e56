/**
 * The git source: a repository cloned and fetched with simple-git into the cache directory, the branch's
 * tip checked out detached and cleaned, so the tree on disk is exactly one commit.
 *
 * Credentials come from mounted files, read at every fetch (so they can rotate) and handed to git through
 * the environment, never the command line (`ps`) or the URL (logs, error messages): HTTP basic auth as an
 * `http.<origin>.extraHeader` scoped to the repository's origin, SSH through `GIT_SSH_COMMAND` with strict
 * host key checking. simple-git guards both (GIT_CONFIG_COUNT, GIT_SSH_COMMAND); we allow exactly these,
 * whose values we build ourselves.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { simpleGit, type SimpleGit } from 'simple-git';
import { transient } from '../core/errors.js';
import type { GitCredentials } from './config.js';
import { redact, type Source, type SourceSnapshot } from './source.js';

export interface GitSourceOptions {
  readonly url: string;
  readonly branch: string;
  readonly credentials: GitCredentials;
  readonly cacheDir: string;
  readonly log: Logger;
  /** Kill git when it prints nothing for this long. @default 60000 */
  readonly timeoutMs?: number;
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The origin `scheme://host[:port]/` of an http(s) URL, the scope of the auth header. */
function origin(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:' ? `${u.protocol}//${u.host}/` : undefined;
  } catch {
    return undefined;
  }
}

export class GitSource implements Source {
  readonly description: string;
  private readonly dir: string;
  private readonly home: string;

  constructor(private readonly options: GitSourceOptions) {
    this.dir = join(options.cacheDir, 'git');
    this.home = join(options.cacheDir, 'home');
    this.description = `git ${options.url} branch ${options.branch}`;
  }

  /** Environment for git: no prompts, no user or system config, credentials if any. */
  private environment(): Record<string, string> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.home,
      LANG: 'C',
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
    };
    const c = this.options.credentials;
    if (c.kind === 'basic') {
      const scope = origin(this.options.url);
      if (!scope) throw transient('CredentialsUnusable', 'HTTP credentials need an http:// or https:// repository URL');
      const user = c.usernameFile ? readFileSync(c.usernameFile, 'utf8').trim() : 'git';
      const password = readFileSync(c.passwordFile, 'utf8').trim();
      Object.assign(env, {
        GIT_CONFIG_COUNT: '1',
        GIT_CONFIG_KEY_0: `http.${scope}.extraHeader`,
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
      });
    } else if (c.kind === 'ssh') {
      env.GIT_SSH_COMMAND = `ssh -F /dev/null -i ${shellQuote(c.keyFile)} -o IdentitiesOnly=yes -o UserKnownHostsFile=${shellQuote(c.knownHostsFile)} -o StrictHostKeyChecking=yes -o BatchMode=yes`;
    }
    return env;
  }

  private git(cwd: string): SimpleGit {
    return simpleGit({
      baseDir: cwd,
      timeout: { block: this.options.timeoutMs ?? 60_000 },
      allowEnvironment: ['GIT_TERMINAL_PROMPT', 'GIT_CONFIG_NOSYSTEM', 'GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0', 'GIT_SSH_COMMAND'],
      unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeSshCommand: true },
    }).env(this.environment());
  }

  async sync(): Promise<SourceSnapshot> {
    const { url, branch } = this.options;
    try {
      mkdirSync(this.home, { recursive: true });
      if (!existsSync(join(this.dir, '.git'))) {
        // init + fetch rather than clone: a failed first fetch leaves a repository the next one reuses.
        mkdirSync(this.dir, { recursive: true });
        await this.git(this.dir).init();
      }
      const git = this.git(this.dir);
      // Fetched by URL, not through a configured remote: a changed --git-url needs no repair of the cache.
      // Shallow: rendering needs the tip's tree, not history.
      await git.fetch(['--no-tags', '--depth=1', url, `+refs/heads/${branch}:refs/remotes/origin/${branch}`]);
      const commit = (await git.revparse([`refs/remotes/origin/${branch}^{commit}`])).trim();
      if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) throw new Error(`unexpected commit id ${JSON.stringify(commit)}`);
      await git.checkout(['--force', '--detach', commit]);
      await git.clean('f', ['-d', '-x']);
      return { dir: this.dir, commit, branch, revision: `${branch}@sha1:${commit}` };
    } catch (e) {
      // git's stderr names the repository and what failed; credentials never reach it, and redact() is
      // a second guard. Only the first line: the rest is hints.
      const first = redact((e as Error).message).split('\n').find((l) => l.trim() !== '') ?? 'unknown error';
      throw transient('FetchFailed', `cannot fetch branch ${branch} of the git repository: ${first.trim()}`, e);
    }
  }
}
