import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { tidy } from './render.js';

/** The definition tidy must keep: every line that is not blank (as `trim` sees it), each ending in '\n'. */
const reference = (text: string): string => text.split('\n').filter((l) => l.trim() !== '').map((l) => `${l}\n`).join('');

describe('tidy', () => {
  it('drops exactly the blank lines, whatever whitespace they hold', () => {
    // GIVEN lines made of spaces, tabs, CR, unicode spaces and text, with or without a final newline
    const piece = fc.constantFrom(' ', '  ', '\t', '\r', '\u00a0', '\u3000', '\ufeff', 'a', 'key: "v"', '-', '\n', '\n', '\n');
    fc.assert(fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
      const text = pieces.join('');
      // WHEN tidied THEN it equals the line-by-line definition
      expect(tidy(text)).toBe(reference(text));
    }), { numRuns: 2000 });
  });

  it('keeps text that has no blank line, adding only the final newline', () => {
    expect(tidy('a: 1\nb: 2\n')).toBe('a: 1\nb: 2\n');
    expect(tidy('a: 1\nb: 2')).toBe('a: 1\nb: 2\n');
    expect(tidy('')).toBe('');
    expect(tidy('\n  \n')).toBe('');
  });
});
