/**
 * The Argo CD health checks of argocd/health, run through sim/health/lua.ts (which reads them from the shipped
 * argocd-cm patch) against every fixture listed in each check's health_test.yaml, the way argo-cd's
 * util/lua/health_test.go runs resource_customizations: status and message must be equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { HEALTH_STATUSES, createHealthChecks, type HealthChecks, type HealthStatus } from '../sim/health/lua.js';
import { healthDir, healthScripts } from '../sim/health/patch.js';
import { REPO } from './support/repo.js';
import { loadUpstreamSchemas } from './support/upstream-schemas.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

interface FixtureTest {
  readonly inputPath: string;
  readonly status: HealthStatus;
  readonly message: string;
}

function readYaml(file: string): unknown {
  const doc = parseDocument(readFileSync(file, 'utf8'), { uniqueKeys: true });
  if (doc.errors[0]) throw new Error(`${file}: ${doc.errors[0].message}`);
  return doc.toJS();
}

/** health_test.yaml in argo-cd's format: `tests: [{healthStatus: {status, message}, inputPath}]`. */
function readSuite(dir: string): FixtureTest[] {
  const file = join(dir, 'health_test.yaml');
  const suite = readYaml(file);
  if (!isObj(suite) || !Array.isArray(suite.tests)) throw new Error(`${file}: expected tests: [...]`);
  return suite.tests.map((t: unknown, i) => {
    if (!isObj(t) || typeof t.inputPath !== 'string' || !isObj(t.healthStatus)) throw new Error(`${file}: tests[${i}] malformed`);
    const { status, message } = t.healthStatus;
    if (typeof status !== 'string' || !(HEALTH_STATUSES as readonly string[]).includes(status)) throw new Error(`${file}: tests[${i}] bad status`);
    if (typeof message !== 'string') throw new Error(`${file}: tests[${i}] needs a message (use "" for none)`);
    return { inputPath: t.inputPath, status: status as HealthStatus, message };
  });
}

const scripts = healthScripts();
const suites = scripts.map((s) => ({ ...s, dir: join(healthDir(), s.groupKind), tests: readSuite(join(healthDir(), s.groupKind)) }));
const upstream = loadUpstreamSchemas();
const ours = loadUpstreamSchemas(join(REPO, 'crds'));

let checks: HealthChecks;
beforeAll(async () => {
  checks = await createHealthChecks();
});
afterAll(() => checks.close());

describe('Argo CD health checks shipped in argocd/', () => {
  it('cover exactly the kinds the bootstrap waves wait on (DESIGN 4.1)', () => {
    // GIVEN the check directories WHEN listed THEN they are the six kinds, each with a test suite
    expect(suites.map((s) => s.groupKind)).toEqual([
      'argoproj.io_Application',
      'cluster.x-k8s.io_Cluster',
      'cluster.x-k8s.io_MachineHealthCheck',
      'controlplane.cluster.x-k8s.io_KubeadmControlPlane',
      'controlplane.cluster.x-k8s.io_RKE2ControlPlane',
      'lattice.dev_LatticeCluster',
    ]);
    for (const s of suites) expect(s.tests.length, s.groupKind).toBeGreaterThan(0);
  });
});

for (const suite of suites) {
  describe(`${suite.groupKind} health check`, () => {
    for (const t of suite.tests) {
      it(`${t.inputPath} is ${t.status}`, () => {
        // GIVEN the fixture object
        const obj = readYaml(join(suite.dir, t.inputPath));
        if (!isObj(obj)) throw new Error(`${t.inputPath}: not an object`);
        // WHEN Argo CD assesses its health with our customization
        const health = checks.health(obj);
        // THEN status and message are the expected ones
        expect(health).toEqual({ status: t.status, message: t.message });
      });
    }

    it('lists every fixture under testdata/ exactly once', () => {
      // GIVEN the fixture files and the suite's input paths
      const files = readdirSync(join(suite.dir, 'testdata')).map((f) => `testdata/${f}`).sort();
      const listed = suite.tests.map((t) => t.inputPath);
      // THEN there is no orphan fixture, no missing file and no duplicate entry
      expect([...listed].sort()).toEqual(files);
      expect(new Set(listed).size).toBe(listed.length);
    });

    it('names every fixture by its expected outcome', () => {
      for (const t of suite.tests) {
        const name = t.inputPath.slice('testdata/'.length);
        const prefix = t.status.toLowerCase();
        expect(name === `${prefix}.yaml` || name.startsWith(`${prefix}-`), `${name} should start with ${prefix}`).toBe(true);
      }
    });

    it('has one fixture per expected outcome', () => {
      // Two fixtures may share a status, but not status, message and API version all at once.
      const seen = new Map<string, string>();
      for (const t of suite.tests) {
        const version = /-(v1beta[12])\.yaml$/.exec(t.inputPath)?.[1] ?? '';
        const key = JSON.stringify([t.status, t.message, version]);
        expect(seen.get(key), `${t.inputPath} repeats the outcome of ${seen.get(key)}`).toBeUndefined();
        seen.set(key, t.inputPath);
      }
    });

    it('uses realistic fixtures: every one validates against the CRD schema of its apiVersion and kind', () => {
      for (const t of suite.tests) {
        // GIVEN a fixture (a full object, status included)
        const obj = readYaml(join(suite.dir, t.inputPath));
        // WHEN validated as the API server would (upstream CRDs, or ours for lattice.dev)
        const schemas = isObj(obj) && typeof obj.apiVersion === 'string' && obj.apiVersion.startsWith('lattice.dev/') ? ours : upstream;
        // THEN it is accepted
        expect(schemas.validate(obj), t.inputPath).toEqual({ ok: true });
      }
    });
  });
}

describe('Cluster API checks cover both status shapes', () => {
  // Argo CD reads the served preferred version, v1beta2 from CAPI 1.11; older management clusters serve
  // v1beta1 (../shared/research/argocd-cmp.md 6.1). Each outcome that both shapes can express has fixtures of both.
  // CAPRKE2's v1beta2 status has no failure fields (no status.deprecated block), so it cannot be Degraded there.
  const required: Record<string, Record<string, readonly HealthStatus[]>> = {
    'cluster.x-k8s.io_Cluster': { v1beta1: ['Healthy', 'Progressing', 'Degraded', 'Suspended'], v1beta2: ['Healthy', 'Progressing', 'Degraded', 'Suspended'] },
    'cluster.x-k8s.io_MachineHealthCheck': { v1beta1: ['Healthy', 'Progressing', 'Degraded'], v1beta2: ['Healthy', 'Progressing', 'Degraded'] },
    'controlplane.cluster.x-k8s.io_KubeadmControlPlane': { v1beta1: ['Healthy', 'Progressing', 'Degraded', 'Suspended'], v1beta2: ['Healthy', 'Progressing', 'Degraded', 'Suspended'] },
    'controlplane.cluster.x-k8s.io_RKE2ControlPlane': { v1beta1: ['Healthy', 'Progressing', 'Degraded', 'Suspended'], v1beta2: ['Healthy', 'Progressing', 'Suspended'] },
  };
  for (const [groupKind, byVersion] of Object.entries(required)) {
    it(`${groupKind}: every fixture is one API version, and each outcome has fixtures of both`, () => {
      const suite = suites.find((s) => s.groupKind === groupKind);
      if (!suite) throw new Error(`no suite ${groupKind}`);
      const group = groupKind.slice(0, groupKind.indexOf('_'));
      const covered: Record<string, Set<string>> = { v1beta1: new Set(), v1beta2: new Set() };
      for (const t of suite.tests) {
        // GIVEN a fixture named ...-v1beta1.yaml or ...-v1beta2.yaml
        const version = /-(v1beta[12])\.yaml$/.exec(t.inputPath)?.[1];
        expect(version, `${t.inputPath} must end in -v1beta1.yaml or -v1beta2.yaml`).toBeDefined();
        if (!version) continue;
        // THEN its object is served at that version
        const obj = readYaml(join(suite.dir, t.inputPath));
        expect(isObj(obj) && obj.apiVersion, t.inputPath).toBe(`${group}/${version}`);
        covered[version]?.add(t.status);
      }
      for (const [version, statuses] of Object.entries(byVersion)) {
        for (const status of statuses) expect(covered[version]?.has(status), `${groupKind} ${version} ${status}`).toBe(true);
      }
    });
  }
});

/**
 * The Lua the scripts may use. Argo CD runs argocd-cm scripts in gopher-lua (Lua 5.1) with only the base,
 * table and package libraries (and `require("os")` for time/date) unless useOpenLibs is set, which we do not
 * set (argo-cd util/lua/lua.go). The runner executes Lua 5.4, so syntax and library calls that differ between
 * the two must not appear at all.
 */
function codeOnly(lua: string): string {
  let out = '';
  let i = 0;
  const longBracket = (at: number) => /^\[(=*)\[/.exec(lua.slice(at));
  while (i < lua.length) {
    const rest = lua.slice(i);
    if (rest.startsWith('--')) {
      const long = longBracket(i + 2);
      if (long) {
        const end = lua.indexOf(`]${long[1] ?? ''}]`, i + 2 + long[0].length);
        i = end < 0 ? lua.length : end + long[0].length;
      } else {
        const end = lua.indexOf('\n', i);
        i = end < 0 ? lua.length : end;
      }
      continue;
    }
    const long = longBracket(i);
    if (long) {
      const end = lua.indexOf(`]${long[1] ?? ''}]`, i + long[0].length);
      out += '""';
      i = end < 0 ? lua.length : end + long[0].length;
      continue;
    }
    const ch = lua[i] ?? '';
    if (ch === '"' || ch === "'") {
      let j = i + 1;
      while (j < lua.length && lua[j] !== ch) j += lua[j] === '\\' ? 2 : 1;
      out += '""';
      i = j + 1;
      continue;
    }
    out += ch;
    i++;
  }
  return out;
}

describe('Lua dialect of the shipped checks', () => {
  const forbidden: [RegExp, string][] = [
    [/\bgoto\b|::/, 'goto and labels are Lua 5.2+'],
    [/\/\//, 'integer division is Lua 5.3+'],
    [/[&|]|~(?!=)|<<|>>/, 'bitwise operators are Lua 5.3+'],
    [/<\s*(const|close)\s*>/, 'attributes are Lua 5.4'],
    [/\b(string|math|io|os|utf8|debug|coroutine)\s*\./, 'standard library tables need useOpenLibs (os only through require)'],
    [/\b(unpack|loadstring|setfenv|getfenv|load|require|print|dofile|loadfile)\s*\(/, 'functions that differ between Lua 5.1 and 5.4, or that a health check must not call'],
    [/\btable\s*\.\s*(unpack|pack|move)\b/, 'table functions added after Lua 5.1'],
    [/[\w)\]]\s*:\s*[A-Za-z_]\w*\s*[("{]/, 'method calls on strings need the string library'],
  ];
  for (const { groupKind, script } of scripts) {
    it(`${groupKind} keeps to Lua 5.1 with the base library only`, () => {
      // GIVEN the script without comments and string literals
      const code = codeOnly(script);
      // THEN none of the constructs that break under gopher-lua without open libs appear
      for (const [pattern, why] of forbidden) expect(pattern.exec(code)?.[0], `${groupKind}: ${why}`).toBeUndefined();
    });
  }

  it('the dialect check can fail', () => {
    // GIVEN a script using each forbidden construct
    const bad = ['goto done', 'x = 7 // 2', 'x = a & b', 'local y <const> = 1', 'string.format("%d", 1)', 'unpack(t)', 'table.unpack(t)', 's:sub(1, 2)'];
    // THEN every line trips at least one pattern, while comments and strings do not
    for (const line of bad) expect(forbidden.some(([p]) => p.test(codeOnly(line))), line).toBe(true);
    expect(forbidden.some(([p]) => p.test(codeOnly('-- string.format and a // b\nlocal s = "x:y(z) & string.len"\n')))).toBe(false);
  });
});
