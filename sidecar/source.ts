/**
 * Where the specs come from. Either way the sidecar renders one exact commit: a snapshot is a directory
 * holding the repository's tree at that commit, with the revision Flux would write for it.
 */

export interface SourceSnapshot {
  /** Directory holding the repository tree at `commit`. */
  readonly dir: string;
  /** The git commit, hex. */
  readonly commit: string;
  /** The named pointer (branch) the commit was found on: the first half of our revisions. */
  readonly branch: string;
  /** Flux-style origin revision, `<branch>@sha1:<commit>` (RFC-0005). */
  readonly revision: string;
}

export interface Source {
  /** Brings the source up to date and returns the snapshot to render (the same one when nothing changed). */
  sync(): Promise<SourceSnapshot>;
  /** What it follows, for logs and conditions: never credentials. */
  readonly description: string;
}

/** `main@sha1:abc…` → its parts; a bare `sha1:abc…` has no branch. */
export function parseRevision(revision: string): { branch?: string; algorithm: string; hex: string } | undefined {
  const at = revision.lastIndexOf('@');
  const pointer = at >= 0 ? revision.slice(0, at) : undefined;
  const digest = at >= 0 ? revision.slice(at + 1) : revision;
  const m = /^(sha1|sha256):([0-9a-f]{40}|[0-9a-f]{64})$/.exec(digest);
  if (!m?.[1] || !m[2]) return undefined;
  return { ...(pointer ? { branch: pointer } : {}), algorithm: m[1], hex: m[2] };
}

/** Removes anything credential-like from a message before it reaches a log or a condition. */
export function redact(message: string): string {
  return message
    .replace(/(\/\/)[^/@\s]*@/g, '$1***@')
    .replace(/(authorization:\s*)(basic|bearer)\s+\S+/gi, '$1$2 ***')
    .replace(/(token|password)=\S+/gi, '$1=***');
}
