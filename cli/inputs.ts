/**
 * Reads spec inputs from paths: files as given, directories walked recursively in sorted order
 * (YAML files only, dot-directories skipped). Symlinks are followed only while they stay inside the
 * directory being walked; oversized files are reported without being read.
 */
import { lstatSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
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
  const problem = (file: string, code: IssueCode, message: string, extra: Partial<Issue> = {}) =>
    issues.push({ code, message, file, line: 1, col: 1, path: '', ...extra });

  const readOne = (abs: string, shown: string) => {
    const size = statSync(abs).size;
    if (size > options.maxFileBytes) {
      problem(shown, IssueCode.FILE_TOO_LARGE, 'file is too large to be a cluster spec', { expected: `at most ${options.maxFileBytes} bytes`, found: `${size} bytes` });
      return;
    }
    files.push({ path: shown, bytes: readFileSync(abs) });
  };

  const walk = (dir: string, rootReal: string) => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      const abs = join(dir, name);
      const shown = relative(cwd, abs) || abs;
      const link = lstatSync(abs).isSymbolicLink();
      let real: string;
      try {
        real = realpathSync(abs);
      } catch {
        problem(shown, IssueCode.FILE_UNREADABLE, 'broken symbolic link');
        continue;
      }
      if (link && real !== rootReal && !real.startsWith(rootReal + sep)) {
        problem(shown, IssueCode.PATH_ESCAPES_ROOT, 'symbolic link points outside the directory being read', { expected: `a target inside ${relative(cwd, rootReal) || '.'}`, found: 'a target outside it' });
        continue;
      }
      const st = statSync(real);
      if (st.isDirectory()) walk(abs, rootReal);
      else if (st.isFile() && YAML_FILE.test(name)) readOne(real, shown);
    }
  };

  for (const p of paths) {
    const abs = resolve(cwd, p);
    let st;
    try {
      st = statSync(abs);
    } catch {
      problem(p, IssueCode.FILE_UNREADABLE, 'no such file or directory');
      continue;
    }
    if (st.isDirectory()) walk(abs, realpathSync(abs));
    else readOne(abs, p);
  }
  return { files, issues };
}
