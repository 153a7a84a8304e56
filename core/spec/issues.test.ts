import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../test/support/repo.js';
import { IssueCode, formatIssue, sortIssues } from './issues.js';

describe('issue codes', () => {
  it('equal their keys, are unique and are each documented in docs/errors.md', () => {
    const doc = readFileSync(join(REPO, 'docs/errors.md'), 'utf8');
    for (const [key, value] of Object.entries(IssueCode)) {
      expect(value).toBe(key);
      expect(doc).toContain(`| \`${value}\` |`);
    }
    expect(new Set(Object.values(IssueCode)).size).toBe(Object.keys(IssueCode).length);
  });
});

describe('formatIssue', () => {
  it('prints file:line:col, code, path, message, expected and found', () => {
    expect(formatIssue({ code: 'WRONG_TYPE', message: 'replicas must be an integer', file: 'a.yaml', line: 3, col: 7, path: 'spec.x', expected: 'integer', found: 'string "x"' }))
      .toBe('a.yaml:3:7: error WRONG_TYPE spec.x: replicas must be an integer (expected integer, found string "x")');
  });

  it('sorts by file and position', () => {
    const at = (file: string, line: number) => ({ code: IssueCode.WRONG_TYPE, message: 'm', file, line, col: 1, path: '' });
    expect(sortIssues([at('b', 1), at('a', 9), at('a', 2)]).map((i) => `${i.file}${i.line}`)).toEqual(['a2', 'a9', 'b1']);
  });
});
