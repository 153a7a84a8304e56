/**
 * The first pass against the full pass it stands in for: on every input where the first pass answers,
 * the documents (indexes and data) must be the full pass's, and positions come from the full pass.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { firstPass } from './first-pass.js';
import { parseSourceFile, type SourceFile } from './source.js';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples', 'clusters');
const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort().map((f) => readFileSync(join(EXAMPLES, f), 'utf8'));
const file = (text: string): SourceFile => ({ path: 'f.yaml', bytes: new TextEncoder().encode(text) });

/** Whether the first pass declined the text, or gave exactly what the full pass gives. */
function agreement(text: string): 'declined' | 'same' | 'different' {
  const first = firstPass(file(text))?.documents;
  if (!first) return 'declined';
  const full = parseSourceFile(file(text));
  if (!full.ok || full.value.length !== first.length) return 'different';
  return full.value.every((d, i) => d.index === first[i]?.index && isDeepStrictEqual(d.data, first[i]?.data)) ? 'same' : 'different';
}

/** YAML 1.1 and go-yaml scalar forms the two parsers could read differently. */
const SCALARS = [
  'yes', 'Yes', 'YES', 'no', 'on', 'Off', 'y', 'n', 'Y', 'N', 'true', 'False', '~', 'null', 'Null', 'NULL', '',
  '0777', '0o17', '0x1F', '0b101', '1_000', '-0', '+12', '1e3', '1.5e-3', 'e0', '.5', '5.', '.inf', '-.Inf', '.NaN',
  '190:20:30', '1:20', '2001-12-14', '2001-12-14t21:59:43.10-05:00', '12345678901234567890', '-1_0.5', '0x', '0b',
  '-', '1.2.3', '10.0.0.0/16', 'a:b', 'a #b', "it's", '@x', '?x', '=', 'inf', 'NaN', '00', '08', '09.5', '1__2', '_1',
  '+.5', '-.5e3', '3e', 'é',
];
const PLACES = (v: string) => [`a: ${v}\n`, `- ${v}\n`, `a: [${v}]\n`, `a: {b: ${v}}\n`, `a: '${v.replace(/'/g, "''")}'\n`, `a: "${v}"\n`, `${v}: a\n`];

/** Block, folded, quoted, multi-line and structural forms. */
const STRUCTURES = [
  'a: |\n  x\n  y\n', 'a: |-\n  x\n\n', 'a: |+\n  x\n\n\n', 'a: >\n  x\n  y\n\n  z\n', 'a: >-\n  folded\n   more\n  back\n', 'a: |2\n    indented\n',
  'a: "multi\n  line \\t \\u263A \\x41 \\\n  cont"\n', "a: 'multi\n\n  line'\n", 'a: plain\n  multi\n  line\n', 'a: b # comment\n# c\nc: d\n',
  '__proto__: {x: 1}\nb: 2\n', 'a:\n  __proto__: 1\n', 'a: {}\nb: []\nc:\nd: ""\n', 'a:\n- 1\n- - 2\n  - 3\n', '? a\n: b\n', '"a\\nb": 1\n',
  'a: 1\n---\n---\nb: 2\n...\n', '--- a\n', '---\n- x\n', 'a: &x 1\nb: 2\n', 'a: "\\U0001F600 \\N\\_\\L\\P \\e\\a\\b\\v\\0\\ "\n', 'k: v\t\n', 'k:\tv\n',
  'a: [1, 2, ]\n', 'a: {b, c: d}\n', 'a:\n  b\n  c: d\n', 'a: "x"y\n', 'a: [b\n', 'a: - b\n', 'a: b: c\n', '- - - x\n', 'key with spaces: v\n', '\n\n  a: 1\n', '# c\n---\na: 1\n',
];

describe('first pass', () => {
  it('reads every bundled example, with the full pass\'s documents', () => {
    for (const text of examples) expect(agreement(text)).toBe('same');
  });

  it('resolves every YAML 1.1 scalar form as the full pass does, wherever it stands, or declines', () => {
    // GIVEN each scalar as a block value, sequence item, flow item, quoted value and key
    const results = SCALARS.flatMap(PLACES).map((text) => ({ text, agreement: agreement(text) }));
    // THEN none differs, and the first pass is not simply declining everything
    expect(results.filter((r) => r.agreement === 'different')).toEqual([]);
    expect(results.filter((r) => r.agreement === 'same').length).toBeGreaterThan(results.length * 0.8);
  });

  it('reads block, folded, quoted and flow forms as the full pass does, or declines', () => {
    const results = STRUCTURES.map((text) => ({ text, agreement: agreement(text) }));
    expect(results.filter((r) => r.agreement === 'different')).toEqual([]);
    expect(results.filter((r) => r.agreement === 'same').length).toBeGreaterThan(STRUCTURES.length * 0.6);
  });

  it.each([
    ['an explicit tag', 'a: !!str 1\n'],
    ['an alias', 'a: &x 1\nb: *x\n'],
    ['a merge key', 'base: &b {x: 1}\nc:\n  <<: {y: 2}\n'],
    ['a directive', '%YAML 1.1\n---\na: 1\n'],
    ['a duplicate key', 'a: 1\na: 2\n'],
    ['a null key', '~: 1\n'],
    ['a number as key', '80: http\n'],
    ['a boolean as key', 'on: push\n'],
    ['a collection as key', '[a, b]: c\n'],
    ['a syntax error', 'a: "open\n'],
    ['a NUL byte', 'a: \u0000\n'],
    // Found by review: each is read differently by the two parsers.
    ['a CR without LF (a line break to js-yaml only)', 'a: b # x\rc: d\n'],
    ['a document end line (the full pass counts an empty document before it)', '...\na: 1\n'],
    ['a key over 1,024 characters (the full pass refuses it)', `${'k'.repeat(1100)}: v\n`],
    ['a tab in the indentation of a blank line inside a block scalar', 'a:\n  s: |\n    x\n  \t\n  t: 1\n'],
    ['a BOM past the start of the file', '# c\n\uFEFFa: 1\n'],
    ['a \\U escape', 'a: "\\U0001F600"\n'],
    ['an anchor', 'metadata: &m name: x\n'],
    ['a block scalar with an indentation indicator', 'a: |2\n    \nb: 1\n'],
    ['a last line of blanks without a newline', 'k:\n  a: |+\n  '],
  ])('leaves %s to the full pass', (_what, text) => {
    expect(firstPass(file(text))?.documents).toBeUndefined();
  });

  it('asks the full pass for positions, only when one is wanted', () => {
    // GIVEN a two-document file read by the first pass
    const text = 'apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n';
    const first = firstPass(file(text))?.documents;
    const full = parseSourceFile(file(text));
    if (!first || !full.ok) throw new Error('both passes should read this file');
    // THEN every position is the full pass's, for keys and values and paths that do not exist
    for (const [path, atKey] of [[['metadata', 'name'], false], [['metadata', 'name'], true], [['kind'], false], [['spec', 'x'], false], [[], false]] as const) {
      expect(first[1]?.locate(path, { atKey })).toEqual(full.value[1]?.locate(path, { atKey }));
    }
    expect(first[1]?.locate(['metadata', 'name'])).toEqual({ line: 7, col: 9 });
  });

  it('agrees with the full pass on thousands of mutated examples', () => {
    // GIVEN the examples with 1-6 random edits each (deleted, inserted and replaced YAML-significant
    // characters, duplicated lines), from a fixed seed so a failure reproduces
    let seed = 20261207;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const CHARS = [
      ' ', ':', '-', '#', "'", '"', '\n', '{', '}', '[', ']', ',', '|', '>', '?', '&', '\t', 'x', '0', '.', '\\', '@', '~',
      // What the review found read differently, so that the screen is exercised, not only its table.
      '\r', '\r\n', '\uFEFF', '\n...\n', '\n---\n', '\n\t\n', '|2', '\\U', 'k'.repeat(1030), '*', '!', '<<: ',
    ];
    const outcomes = { declined: 0, same: 0, different: [] as string[] };
    for (let i = 0; i < 4000; i++) {
      let text = examples[random(examples.length)] ?? '';
      for (let edits = 1 + random(6); edits > 0; edits--) {
        const at = random(text.length);
        const op = random(4);
        if (op === 0) text = text.slice(0, at) + text.slice(at + 1);
        else if (op === 1) text = text.slice(0, at) + (CHARS[random(CHARS.length)] ?? '') + text.slice(at);
        else if (op === 2) text = text.slice(0, at) + (CHARS[random(CHARS.length)] ?? '') + text.slice(at + 1);
        else {
          const lines = text.split('\n');
          lines.splice(random(lines.length), 0, lines[random(lines.length)] ?? '');
          text = lines.join('\n');
        }
      }
      const a = agreement(text);
      if (a === 'different') outcomes.different.push(text);
      else outcomes[a]++;
    }
    // THEN whenever the first pass answers, it answers as the full pass (and it answers most of the time)
    expect(outcomes.different).toEqual([]);
    expect(outcomes.same).toBeGreaterThan(1500);
  });
});
