import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readInputs } from '../../cli/inputs.js';
import { loadFixtures } from '../../test/support/fixtures.js';
import { REPO, repoValidator } from '../../test/support/repo.js';
import { DEFAULT_SOURCE_LIMITS, type SourceFile } from './source.js';
import type { Issue } from './issues.js';

const enc = (s: string) => new TextEncoder().encode(s);
const file = (path: string, text: string): SourceFile => ({ path, bytes: enc(text) });
const issuesOf = (files: SourceFile[]): readonly Issue[] => {
  const r = repoValidator().validate(files);
  return r.ok ? [] : r.issues;
};

const MINIMAL = `apiVersion: lattice.dev/v1alpha1
kind: LatticeCluster
metadata:
  name: minimal
spec:
  providerRef: docker
  provider:
    kubernetes: {version: v1.34.1}
    config:
      docker: {}
  nodes:
    controlPlane:
      replicas: 1
`;

describe('bundled examples', () => {
  it('are all valid, with every cluster and InfraProvider found', () => {
    // GIVEN the examples directory
    const inputs = readInputs([join(REPO, 'examples/clusters')], { maxFileBytes: DEFAULT_SOURCE_LIMITS.maxFileBytes });
    // WHEN validated together
    const result = repoValidator().validate(inputs.files);
    // THEN nothing is wrong and every kind is classified
    expect(inputs.issues).toEqual([]);
    expect(result.ok ? [] : result.issues).toEqual([]);
    if (!result.ok) return;
    expect(result.value.clusters.map((c) => c.object.metadata.name)).toEqual(['dev', 'edge-dc1', 'lab', 'mgmt', 'ml-inference', 'prod-eu', 'secure']);
    expect(result.value.infraProviders).toHaveLength(4);
  });
});

describe('invalid fixtures', () => {
  const fixtures = loadFixtures(join(REPO, 'core/spec/testdata/invalid'));

  it('cover at least 25 cases', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(25);
  });

  for (const fx of fixtures) {
    it(`${fx.name}: ${fx.expect.map((e) => `${e.code} at ${e.path || '(file)'}:${e.line}`).join(', ')}`, () => {
      // GIVEN a fixture that breaks one rule
      expect(fx.expect.length).toBeGreaterThan(0);
      // WHEN it is validated
      const result = repoValidator().validate([{ path: fx.file, bytes: fx.bytes }]);
      // THEN no value comes back, and the expected issue is reported with its code, path and line
      expect(result.ok).toBe(false);
      const issues = result.ok ? [] : result.issues;
      for (const want of fx.expect) {
        expect(issues.map((i) => ({ code: i.code, path: i.path, line: i.line }))).toContainEqual(want);
      }
      for (const i of issues) {
        expect(i.file).toBe(fx.file);
        expect(i.col).toBeGreaterThan(0);
        expect(i.message.length).toBeGreaterThan(0);
      }
    });
  }
});

describe('hostile and malformed input', () => {
  it('rejects a 6 MiB file without parsing it', () => {
    const big = new Uint8Array(6 * 1024 * 1024).fill(0x61);
    const issues = issuesOf([{ path: 'big.yaml', bytes: big }]);
    expect(issues).toMatchObject([{ code: 'FILE_TOO_LARGE', line: 1, found: `${6 * 1024 * 1024} bytes` }]);
  });

  it('rejects a binary file', () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]);
    expect(issuesOf([{ path: 'logo.yaml', bytes: png }])).toMatchObject([{ code: 'FILE_BINARY', line: 3 }]);
  });

  it('rejects non-UTF-8 text and says where', () => {
    const latin1 = new Uint8Array([...enc('apiVersion: v1\nkind: ConfigMap\ndata: {city: "M'), 0xfc, ...enc('nchen"}\n')]);
    expect(issuesOf([{ path: 'latin1.yaml', bytes: latin1 }])).toMatchObject([{ code: 'FILE_NOT_UTF8', line: 3 }]);
  });

  it('rejects a document that is not a mapping', () => {
    expect(issuesOf([file('list.yaml', '- a\n- b\n')])).toMatchObject([{ code: 'DOCUMENT_NOT_OBJECT', line: 1 }]);
  });

  it('reports every error of every file at once', () => {
    const broken = MINIMAL.replace('replicas: 1', 'replicas: 2').replace('v1.34.1', 'latest');
    const issues = issuesOf([file('a.yaml', broken), file('b.yaml', 'kind: Thing\n'), file('c.yaml', MINIMAL.replace('minimal', 'other'))]);
    expect(issues.map((i) => `${i.file}:${i.code}`)).toEqual(['a.yaml:PATTERN_MISMATCH', 'a.yaml:CONTROL_PLANE_REPLICAS_NOT_ODD', 'b.yaml:MISSING_API_VERSION_OR_KIND']);
  });

  it('suggests the field a typo meant', () => {
    const issues = issuesOf([file('typo.yaml', MINIMAL.replace('providerRef', 'providerref'))]);
    expect(issues.find((i) => i.code === 'UNKNOWN_FIELD')?.message).toBe('unknown field "providerref"; did you mean "providerRef"?');
  });

  it('explains that monitoring is a boolean when given the book-style object', () => {
    const issues = issuesOf([file('book.yaml', `${MINIMAL}  monitoring:\n    enabled: false\n`)]);
    expect(issues).toMatchObject([{ code: 'WRONG_TYPE', path: 'spec.monitoring', expected: 'boolean' }]);
    expect(issues[0]?.message).toContain('is a boolean: write "monitoring: false"');
  });

  it('reads YAML 1.1 booleans as Kubernetes does', () => {
    const r = repoValidator().validate([file('yes.yaml', `${MINIMAL}  gpu: yes\n`)]);
    expect(r.ok && r.value.clusters[0]?.object.spec.gpu).toBe(true);
  });
});

describe('defaults and classification', () => {
  it('applies the schema defaults of DESIGN §3', () => {
    // GIVEN a minimal spec and a parent without ports
    const r = repoValidator().validate([file('min.yaml', `${MINIMAL}  parentConfig: {}\n`)]);
    // THEN the model carries every default
    expect(r.ok).toBe(true);
    const spec = r.ok ? r.value.clusters[0]?.object.spec : undefined;
    expect(spec).toMatchObject({
      services: true, gpu: false, monitoring: true, backups: true,
      provider: { kubernetes: { bootstrap: 'kubeadm' } },
      networking: { podCidrBlocks: ['192.168.0.0/16'], serviceCidrBlocks: ['10.128.0.0/12'] },
      parentConfig: { grpcPort: 50051, bootstrapPort: 8443, proxyPort: 8081, service: { type: 'ClusterIP' } },
    });
  });

  it('passes other Kubernetes objects through untouched and skips empty documents', () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: y}\ndata: {anything: goes, unknownField: 1}\n';
    const r = repoValidator().validate([file('mixed.yaml', `${MINIMAL}---\n---\n${cm}`)]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.others).toMatchObject([{ origin: { file: 'mixed.yaml', document: 2 }, object: { kind: 'ConfigMap', data: { anything: 'goes', unknownField: 1 } } }]);
  });

  it('returns the same result for the same input', () => {
    const a = repoValidator().validate([file('x.yaml', MINIMAL)]);
    const b = repoValidator().validate([file('x.yaml', MINIMAL)]);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});

describe('YAML 1.1 scalars as go-yaml v2 resolves them', () => {
  it('keeps keys such as e0 strings, and still reads real numbers as numbers', () => {
    const spec = MINIMAL.replace('      replicas: 1\n', '      replicas: 1\n    workerPools:\n      e0: {replicas: 1}\n      e1x: {replicas: 1.0e0}\n');
    const r = repoValidator().validate([file('keys.yaml', spec)]);
    expect(r.ok ? Object.keys(r.value.clusters[0]?.object.spec.nodes.workerPools ?? {}) : r.issues).toEqual(['e0', 'e1x']);
    expect(r.ok && r.value.clusters[0]?.object.spec.nodes.workerPools?.e1x?.replicas).toBe(1);
  });
});

describe('positions in files with multi-byte characters', () => {
  it('reports a NUL byte at its character column', () => {
    const bytes = new Uint8Array([...enc('# üüüü\napiVersion: v1\nkind: Con'), 0, ...enc('figMap\n')]);
    expect(issuesOf([{ path: 'nul.yaml', bytes }])).toMatchObject([{ code: 'FILE_BINARY', line: 3, col: 10 }]);
  });
});
