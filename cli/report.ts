/** The CLI's one translator from validation results to output and exit codes. */
import { formatIssue, sortIssues, type Issue } from '../core/spec/issues.js';

export const ExitCode = { OK: 0, INVALID: 1, USAGE: 2 } as const;

export type OutputFormat = 'human' | 'json';

export interface Streams {
  /** Text, or bytes already encoded as UTF-8 (`cmp generate` holds its output as bytes). */
  readonly stdout: { write(s: string | Uint8Array): unknown };
  readonly stderr: { write(s: string): unknown };
}

/** Writes every issue (humans: stderr; machines: one JSON document on stdout) and returns the exit code. */
export function reportIssues(issues: readonly Issue[], format: OutputFormat, io: Streams): number {
  const sorted = sortIssues(issues);
  if (format === 'json') {
    io.stdout.write(`${JSON.stringify({ valid: false, issues: sorted }, null, 2)}\n`);
  } else {
    for (const issue of sorted) io.stderr.write(`${formatIssue(issue)}\n`);
    const files = new Set(sorted.map((i) => i.file)).size;
    io.stderr.write(`${sorted.length} error${sorted.length === 1 ? '' : 's'} in ${files} file${files === 1 ? '' : 's'}; no output was produced\n`);
  }
  return ExitCode.INVALID;
}
