/**
 * Reads spec inputs from paths: files as given, directories walked recursively in sorted order
 * (YAML files only, dot-directories skipped). Symlinks are followed only while they stay inside the
 * directory being walked; each real directory and file is read once (so link loops end, and a file
 * reached twice is not reported as a duplicate of itself); only regular files are read, and oversized
 * ones are reported without being read. Every file-system failure becomes an issue, never a crash.
 */
import { readFileSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { IssueCode, type Issue } from '../core/spec/issues.js';
import type { SourceFile } from '../core/spec/source.js';

export interface Inputs {
  readonly files: SourceFile[];
  readonly issues: Issue[];
}

const YAML_FILE = /\.ya?ml$/i;

export function readInputs(paths: readonly string[], options: { maxFileBytes: number; cwd?: string }): Inputs {
  const cwd = options.cwd ?? process.cwd();
  const files: SourceFile[] = [];
  const issues: Issue[] = [];
  const seenDirs = new Set<string>();
  const seenFiles = new Set<string>();
  const problem = (file: string, code: IssueCode, message: string, extra: Partial<Issue> = {}) =>
    issues.push({ code, message, file, line: 1, col: 1, path: '', ...extra });
  const attempt = <T>(shown: string, what: () => T): T | undefined => {
    try {
      return what();
    } catch (e) {
      problem(shown, IssueCode.FILE_UNREADABLE, `cannot read: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
      return undefined;
    }
  };

  const readOne = (real: string, st: Stats, shown: string) => {
    if (seenFiles.has(real)) return;
    seenFiles.add(real);
    if (!st.isFile()) {
      problem(shown, IssueCode.FILE_UNREADABLE, 'not a regular file');
      return;
    }
    if (st.size > options.maxFileBytes) {
      problem(shown, IssueCode.FILE_TOO_LARGE, 'file is too large to be a cluster spec', { expected: `at most ${options.maxFileBytes} bytes`, found: `${st.size} bytes` });
      return;
    }
    const bytes = attempt(shown, () => readFileSync(real));
    if (bytes) files.push({ path: shown, bytes });
  };

  const walk = (dirReal: string, dirShown: string, rootReal: string) => {
    if (seenDirs.has(dirReal)) return;
    seenDirs.add(dirReal);
    const entries = attempt(dirShown, () => readdirSync(dirReal, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) ?? [];
    for (const entry of entries) {
      const name = entry.name;
      if (name.startsWith('.')) continue;
      const abs = join(dirReal, name);
      const shown = join(dirShown, name);
      // The directory is already its real path, so only a symbolic link needs resolving (a directory of
      // 10,000 specs would otherwise cost a realpath walk per file).
      const real = entry.isSymbolicLink() ? attempt(shown, () => realpathSync(abs)) : abs;
      if (real === undefined) continue;
      if (real !== rootReal && !real.startsWith(rootReal + sep)) {
        problem(shown, IssueCode.PATH_ESCAPES_ROOT, 'symbolic link points outside the directory being read', { expected: `a target inside ${relative(cwd, rootReal) || '.'}`, found: 'a target outside it' });
        continue;
      }
      const st = attempt(shown, () => statSync(real));
      if (!st) continue;
      if (st.isDirectory()) walk(real, shown, rootReal);
      else if (YAML_FILE.test(name)) readOne(real, st, shown);
    }
  };

  for (const p of paths) {
    const abs = resolve(cwd, p);
    let st: Stats;
    try {
      st = statSync(abs);
    } catch {
      problem(p, IssueCode.FILE_UNREADABLE, 'no such file or directory');
      continue;
    }
    const real = realpathSync(abs);
    if (st.isDirectory()) walk(real, relative(cwd, abs) || '.', real);
    else readOne(real, st, p);
  }
  return { files, issues };
}
