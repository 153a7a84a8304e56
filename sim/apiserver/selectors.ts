/**
 * Label selectors (k8s.io/apimachinery/pkg/labels: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
 * `a`, `!a`, `a>1`, `a<1`) and field selectors (k8s.io/apimachinery/pkg/fields: `f=v`, `f==v`, `f!=v`,
 * with `\` escapes), parsed into data and matched by pure functions.
 */
import { isLabelKey, isLabelValue } from '../../core/spec/syntax.js';

export type LabelOp = 'exists' | '!' | '=' | '!=' | 'in' | 'notin' | 'gt' | 'lt';

export interface LabelRequirement {
  readonly key: string;
  readonly op: LabelOp;
  readonly values: readonly string[];
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

type Token =
  | { kind: 'ident'; text: string }
  | { kind: '!' | '=' | '==' | '!=' | '(' | ')' | ',' | '>' | '<' | 'end' };

function lex(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input.charAt(i);
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = input.slice(i, i + 2);
    if (two === '==' || two === '!=') {
      tokens.push({ kind: two });
      i += 2;
      continue;
    }
    if (c === '!' || c === '=' || c === '(' || c === ')' || c === ',' || c === '>' || c === '<') {
      tokens.push({ kind: c });
      i++;
      continue;
    }
    let j = i;
    while (j < input.length && !/[\s!=(),<>]/.test(input.charAt(j))) j++;
    tokens.push({ kind: 'ident', text: input.slice(i, j) });
    i = j;
  }
  tokens.push({ kind: 'end' });
  return tokens;
}

/** Parses a label selector; the empty selector matches everything. */
export function parseLabelSelector(input: string): ParseResult<LabelRequirement[]> {
  const tokens = lex(input);
  let pos = 0;
  const peek = (): Token => tokens[pos] ?? { kind: 'end' };
  const next = (): Token => tokens[pos++] ?? { kind: 'end' };
  const reqs: LabelRequirement[] = [];
  const fail = (why: string): ParseResult<LabelRequirement[]> => ({ ok: false, error: `unable to parse requirement: ${why}` });

  if (peek().kind === 'end') return { ok: true, value: [] };
  for (;;) {
    let t = next();
    let req: LabelRequirement;
    if (t.kind === '!') {
      t = next();
      if (t.kind !== 'ident') return fail(`found '${t.kind}', expected: identifier after '!'`);
      req = { key: t.text, op: '!', values: [] };
    } else if (t.kind === 'ident') {
      const key = t.text;
      const op = peek();
      if (op.kind === 'end' || op.kind === ',') {
        req = { key, op: 'exists', values: [] };
      } else if (op.kind === '=' || op.kind === '==' || op.kind === '!=') {
        next();
        const v = peek();
        const value = v.kind === 'ident' ? (next(), v.text) : '';
        req = { key, op: op.kind === '!=' ? '!=' : '=', values: [value] };
      } else if (op.kind === '>' || op.kind === '<') {
        next();
        const v = next();
        if (v.kind !== 'ident' || !/^-?\d+$/.test(v.text)) return fail(`for 'gt', 'lt' operators, exactly one integer value is required`);
        req = { key, op: op.kind === '>' ? 'gt' : 'lt', values: [v.text] };
      } else if (op.kind === 'ident' && (op.text === 'in' || op.text === 'notin')) {
        next();
        if (next().kind !== '(') return fail(`found '${peek().kind}', expected: '('`);
        const values: string[] = [];
        for (;;) {
          const v = next();
          if (v.kind === ')') break;
          if (v.kind === ',') {
            values.push('');
            continue;
          }
          if (v.kind !== 'ident') return fail(`found '${v.kind}', expected: ',', ')' or identifier`);
          values.push(v.text);
          const after = next();
          if (after.kind === ')') break;
          if (after.kind !== ',') return fail(`found '${after.kind}', expected: ',' or ')'`);
        }
        if (values.length === 0) return fail(`for 'in', 'notin' operators, values set can't be empty`);
        req = { key, op: op.text, values };
      } else {
        return fail(`found '${op.kind === 'ident' ? op.text : op.kind}', expected: in, notin, =, ==, !=, gt, lt`);
      }
    } else {
      return fail(`found '${t.kind}', expected: !, identifier`);
    }
    if (!isLabelKey(req.key)) return { ok: false, error: `invalid label key "${req.key}"` };
    for (const v of req.values) if (req.op !== 'gt' && req.op !== 'lt' && !isLabelValue(v)) return { ok: false, error: `invalid label value: "${v}"` };
    reqs.push(req);
    const sep = next();
    if (sep.kind === 'end') break;
    if (sep.kind !== ',') return fail(`found '${sep.kind === 'ident' ? sep.text : sep.kind}', expected: ','`);
  }
  return { ok: true, value: reqs };
}

export function matchesLabels(reqs: readonly LabelRequirement[], labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'exists':
        return has;
      case '!':
        return !has;
      case '=':
        return has && v === r.values[0];
      case '!=':
        return !has || v !== r.values[0];
      case 'in':
        return has && r.values.includes(v ?? '');
      case 'notin':
        return !has || !r.values.includes(v ?? '');
      case 'gt':
      case 'lt': {
        if (!has || !/^-?\d+$/.test(v ?? '')) return false;
        const n = Number(v);
        const limit = Number(r.values[0]);
        return r.op === 'gt' ? n > limit : n < limit;
      }
    }
  });
}

export interface FieldRequirement {
  readonly field: string;
  readonly op: '=' | '!=';
  readonly value: string;
}

/** Splits on unescaped `sep`, keeping escapes for the next step. */
function splitUnescaped(s: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charAt(i);
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s.charAt(i + 1);
      i++;
    } else if (c === sep) {
      parts.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  return parts;
}

const unescape = (s: string): string => s.replace(/\\(.)/g, '$1');

/** Parses a field selector; the empty selector matches everything. */
export function parseFieldSelector(input: string): ParseResult<FieldRequirement[]> {
  if (input.trim() === '') return { ok: true, value: [] };
  const reqs: FieldRequirement[] = [];
  for (const part of splitUnescaped(input, ',')) {
    const m = /^(.*?)(!=|==|=)(.*)$/s.exec(part);
    if (!m || !m[1]) return { ok: false, error: `invalid selector: '${input}'; can't understand '${part}'` };
    reqs.push({ field: m[1].trim(), op: m[2] === '!=' ? '!=' : '=', value: unescape(m[3] ?? '') });
  }
  return { ok: true, value: reqs };
}

export function matchesFields(reqs: readonly FieldRequirement[], get: (field: string) => string): boolean {
  return reqs.every((r) => (get(r.field) === r.value) === (r.op === '='));
}
