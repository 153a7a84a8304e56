import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compact, yamlBlock, yamlValue } from './scalar.js';

describe('yamlValue (the `y` filter)', () => {
  it('emits canonical JSON: sorted keys, no undefined', () => {
    expect(yamlValue({ b: 1, a: [true, null, 'x'], c: undefined })).toBe('{"a":[true,null,"x"],"b":1}');
  });

  it('escapes what YAML 1.1 (libyaml, go-yaml v2) reads as line breaks or forbids, which JSON leaves raw', () => {
    // NEL, LS and PS are line breaks in YAML 1.1 and would be folded inside a double-quoted scalar.
    expect(yamlValue('a\u0085b\u2028c\u2029d')).toBe('"a\\u0085b\\u2028c\\u2029d"');
    // DEL, C1 controls and the BOM are not printable YAML characters.
    expect(yamlValue('\u007f\u0090\ufeff')).toBe('"\\u007f\\u0090\\ufeff"');
    expect(parse(yamlValue('a\u0085b\u2028c'))).toBe('a\u0085b\u2028c');
  });

  it('refuses values JSON cannot carry faithfully', () => {
    expect(() => yamlValue(undefined)).toThrow(/guard optional values/);
    expect(() => yamlValue(Number.NaN)).toThrow(/non-finite/);
    expect(() => yamlValue(() => 1)).toThrow(/cannot render a function/);
  });
});

describe('yamlBlock (the `block(n)` filter)', () => {
  it('emits block YAML that parses back to the same value, quoting keys YAML 1.1 would misread', () => {
    const value = { on: 'yes', 'a b': [{ x: 1, y: ['z'] }, 'w'], plain: { nested: true }, empty: {}, none: [] };
    const text = `root:${yamlBlock(value, 2)}\n`;
    expect(text).toContain('"on": "yes"');
    expect(text).toContain('"y":');
    expect(parse(text, { version: '1.1' })).toEqual({ root: value });
  });

  it('renders a frozen value as its unfrozen copy, at every indent, and never from a stale memo', () => {
    // GIVEN a deeply frozen value and an equal plain one
    const plain = { labels: { a: '1', b: 'x y' }, list: [{ k: 'v' }, 'w'], on: true };
    const frozen = deepFreeze(structuredClone(plain));
    // THEN each indent, asked twice, gives the plain value's text
    for (const indent of [0, 2, 4, 2, 0]) expect(yamlBlock(frozen, indent)).toBe(yamlBlock(plain, indent));
    // GIVEN a frozen map holding a mutable one
    const inner: Record<string, string> = { a: '1' };
    const shallow = Object.freeze({ inner });
    const before = yamlBlock(shallow, 2);
    // WHEN the mutable part changes THEN the text follows it
    inner.b = '2';
    expect(yamlBlock(shallow, 2)).not.toBe(before);
    expect(yamlBlock(shallow, 2)).toBe(yamlBlock({ inner: { a: '1', b: '2' } }, 2));
  });
});

function deepFreeze<T extends object>(value: T): T {
  for (const v of Object.values(value)) if (typeof v === 'object' && v !== null) deepFreeze(v as object);
  return Object.freeze(value);
}

describe('compact', () => {
  it('drops undefined, empty maps and empty lists recursively', () => {
    expect(compact({ a: { b: {}, c: [] }, d: [undefined, { e: undefined }], f: 0, g: '' })).toEqual({ f: 0, g: '' });
    expect(compact({ a: {} })).toBeUndefined();
  });
});

describe('keys in block YAML', () => {
  it('are quoted when a YAML 1.1 reader could take them for a number', () => {
    expect(yamlBlock({ e0: 1, E12: 2, e0x: 3 }, 0)).toBe('\n"E12": 2\n"e0": 1\ne0x: 3');
  });
});
