import { describe, expect, it } from 'vitest';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selectors.js';

const labels = (s: string) => {
  const r = parseLabelSelector(s);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

describe('label selectors', () => {
  it.each([
    ['a=b', { a: 'b' }, true],
    ['a=b', { a: 'c' }, false],
    ['a!=b', {}, true],
    ['a in (x, y)', { a: 'y' }, true],
    ['a notin (x)', { a: 'x' }, false],
    ['a', { a: '' }, true],
    ['!a', { a: '' }, false],
    ['a=', { a: '' }, true],
    ['n>3', { n: '4' }, true],
    ['n<3', { n: 'x' }, false],
    ['example.com/role=db, tier', { 'example.com/role': 'db', tier: 'x' }, true],
  ])('%s against %j is %s', (selector, set, expected) => {
    expect(matchesLabels(labels(selector), set)).toBe(expected);
  });

  it.each(['a in x', 'a in ()', '=b', 'a=b,', 'bad key!=x', 'a==b==c', 'a=bad value'])('rejects %j', (s) => {
    expect(parseLabelSelector(s).ok).toBe(false);
  });
});

describe('field selectors', () => {
  it('parses =, == and != with backslash escapes', () => {
    const r = parseFieldSelector('metadata.name=a\\,b,metadata.namespace!=x');
    expect(r).toEqual({ ok: true, value: [{ field: 'metadata.name', op: '=', value: 'a,b' }, { field: 'metadata.namespace', op: '!=', value: 'x' }] });
    if (!r.ok) return;
    const get = (f: string) => ({ 'metadata.name': 'a,b', 'metadata.namespace': 'y' })[f] ?? '';
    expect(matchesFields(r.value, get)).toBe(true);
  });

  it('rejects a term without an operator', () => {
    expect(parseFieldSelector('metadata.name').ok).toBe(false);
  });
});
