/**
 * The CRD's CEL rules (what the API server enforces) and core's rules (what `lattice validate` enforces)
 * must never disagree: both run here against the same fixtures and examples.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readInputs } from '../../cli/inputs.js';
import { evaluateCel, collectRules } from '../../test/support/cel.js';
import { loadFixtures } from '../../test/support/fixtures.js';
import { REPO, crdSchema } from '../../test/support/repo.js';
import { IssueCode } from './issues.js';
import { compileStructuralSchema, createKubernetesAjv } from './openapi.js';
import { parseSourceFile, type SourceDocument } from './source.js';
import * as syntax from './syntax.js';

const KINDS = ['LatticeCluster', 'InfraProvider'] as const;
const ajv = createKubernetesAjv();
// The API server prunes unknown fields and defaults before it runs CEL; do the same.
const defaulters = Object.fromEntries(KINDS.map((k) => [k, compileStructuralSchema(ajv, crdSchema(k), { rejectUnknownFields: false })]));
const celCodes = new Set(KINDS.flatMap((k) => collectRules(crdSchema(k)).map((r) => r.code)));

/** CEL findings for one parsed document of ours, with the line each one points at. */
function celFindings(doc: SourceDocument) {
  const data = structuredClone(doc.data) as { kind?: string };
  const kind = KINDS.find((k) => k === data.kind);
  if (!kind) return [];
  defaulters[kind]?.(data);
  return evaluateCel(crdSchema(kind), data).map((v) => ({ code: v.code, path: v.printedPath, line: doc.locate(v.path).line }));
}

function documentsOf(path: string, bytes: Uint8Array): SourceDocument[] {
  const parsed = parseSourceFile({ path, bytes });
  return parsed.ok ? parsed.value : [];
}

describe('CEL rules in crds/', () => {
  it('carry a code that core also uses, in every message', () => {
    expect(celCodes.size).toBeGreaterThanOrEqual(14);
    for (const code of celCodes) expect(Object.values(IssueCode)).toContain(code);
  });

  it('accept every bundled example', () => {
    const inputs = readInputs([join(REPO, 'examples/clusters')], { maxFileBytes: 1 << 20 });
    const findings = inputs.files.flatMap((f) => documentsOf(f.path, f.bytes).flatMap(celFindings));
    expect(findings).toEqual([]);
  });

  it('use the same regular expressions as core', () => {
    const crdText = readFileSync(join(REPO, 'crds/lattice.dev_latticeclusters.yaml'), 'utf8');
    for (const re of [syntax.DNS_LABEL, syntax.LABEL_KEY, syntax.LABEL_KEY_PREFIX_LENGTH, syntax.LABEL_VALUE]) expect(crdText).toContain(`'${re}'`);
  });

  const fixtures = loadFixtures(join(REPO, 'core/spec/testdata/invalid')).filter((fx) => fx.expect.some((e) => celCodes.has(e.code)));

  it('are each exercised by an invalid fixture', () => {
    const covered = new Set(fixtures.flatMap((fx) => fx.expect.map((e) => e.code)));
    for (const code of celCodes) expect(covered).toContain(code);
  });

  for (const fx of fixtures) {
    const want = fx.expect.find((e) => celCodes.has(e.code));
    if (!want) continue;
    const where = fx.cel ?? { path: want.path, line: want.line };
    it(`${fx.name}: CEL reports ${want.code} at ${where.path}:${where.line}`, () => {
      // GIVEN the fixture core rejects WHEN the CRD's CEL rules run on it THEN they reject it for the same reason
      const findings = documentsOf(fx.file, fx.bytes).flatMap(celFindings);
      expect(findings).toContainEqual({ code: want.code, path: where.path, line: where.line });
      expect(findings.map((f) => f.code)).not.toContain('CEL_EVALUATION_ERROR');
      // and where CEL can only point at a parent, core's path lies below it
      expect(want.path.startsWith(where.path)).toBe(true);
    });
  }
});
