/**
 * Invalid-spec fixtures: YAML files whose header comments state what must be reported.
 *   # expect: CODE PATH LINE      core's finding ('-' for a file-level path)
 *   # cel: PATH LINE              the CEL rule's coarser path, when CEL cannot point as precisely
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Expectation {
  readonly code: string;
  readonly path: string;
  readonly line: number;
}

export interface Fixture {
  readonly name: string;
  readonly file: string;
  readonly bytes: Uint8Array;
  readonly expect: readonly Expectation[];
  readonly cel?: { readonly path: string; readonly line: number };
}

export function loadFixtures(dir: string): Fixture[] {
  return readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((name) => {
    const file = join(dir, name);
    const bytes = readFileSync(file);
    const header = bytes.toString('utf8').split('\n').filter((l) => l.startsWith('# '));
    const expect = header.filter((l) => l.startsWith('# expect: ')).map((l) => {
      const m = /^# expect: (\S+) (.+) (\d+)$/.exec(l);
      if (!m?.[1] || !m[2] || !m[3]) throw new Error(`${name}: bad "# expect:" header`);
      return { code: m[1], path: m[2] === '-' ? '' : m[2], line: Number(m[3]) };
    });
    const celLine = header.find((l) => l.startsWith('# cel: '));
    const fixture: Fixture = { name, file, bytes, expect };
    if (!celLine) return fixture;
    const m = /^# cel: (.+) (\d+)$/.exec(celLine);
    if (!m?.[1] || !m[2]) throw new Error(`${name}: bad "# cel:" header`);
    return { ...fixture, cel: { path: m[1], line: Number(m[2]) } };
  });
}
