/**
 * sim/health/lua.ts runs health customizations the way Argo CD does (argo-cd util/lua/lua.go,
 * util/settings/settings.go, gitops-engine pkg/health). These tests pin each mirrored rule with tiny scripts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHealthChecks, overrideKeyOf, parseHealthCustomizations, type HealthChecks } from '../sim/health/lua.js';

const opened: HealthChecks[] = [];
async function checksFor(data: Record<string, string>, timeoutMs?: number): Promise<HealthChecks> {
  const checks = await createHealthChecks(timeoutMs === undefined ? { data } : { data, timeoutMs });
  opened.push(checks);
  return checks;
}
afterEach(() => {
  for (const c of opened.splice(0)) c.close();
});

const pod = (extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default' }, ...extra });
const HEALTH_POD = 'resource.customizations.health.Pod';

describe('sim/health/lua.ts', () => {
  it('loads the shipped argocd-cm patch by default', async () => {
    // GIVEN no data option WHEN the checks are created THEN the six shipped customizations are loaded
    const checks = await createHealthChecks();
    opened.push(checks);
    expect(checks.kinds).toEqual([
      'argoproj.io/Application',
      'cluster.x-k8s.io/Cluster',
      'cluster.x-k8s.io/MachineHealthCheck',
      'controlplane.cluster.x-k8s.io/KubeadmControlPlane',
      'controlplane.cluster.x-k8s.io/RKE2ControlPlane',
      'lattice.dev/LatticeCluster',
    ]);
  });

  it('returns undefined for a kind without a customization, as Argo CD falls back to its own checks', async () => {
    // GIVEN a check for Pods only
    const checks = await checksFor({ [HEALTH_POD]: 'return { status = "Healthy" }' });
    // WHEN a Service and a Deployment are assessed THEN there is no result, while a Pod has one
    expect(checks.health({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } })).toBeUndefined();
    expect(checks.health({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' } })).toBeUndefined();
    expect(checks.health(pod())).toEqual({ status: 'Healthy', message: '' });
  });

  it('converts the object like Argo CD: 1-based sequences, nulls dropped, integers printed without a fraction', async () => {
    // GIVEN a script that describes what it sees
    const script = `
      local seen = {}
      for i, v in ipairs(obj.spec.list) do seen[#seen + 1] = tostring(i) .. "=" .. v end
      return { status = "Healthy", message = tostring(#obj.spec.list) .. " " .. table.concat(seen, ",") .. " "
        .. tostring(obj.spec.gone) .. " " .. tostring(obj.metadata.generation) .. " " .. tostring(obj.spec.ratio)
        .. " " .. tostring(obj.spec.flag) .. " " .. tostring(#obj.spec.empty) }`;
    const checks = await checksFor({ [HEALTH_POD]: script });
    // WHEN the object has a list with a null, a null field, an integer, a float, a boolean and an empty list
    const result = checks.health(pod({ metadata: { name: 'p', generation: 3 }, spec: { list: ['a', null, 'b'], gone: null, ratio: 1.5, flag: false, empty: [] } }));
    // THEN gopher-lua's view comes out: the null item is skipped (LTable.Append ignores nil), 3 prints as 3
    expect(result).toEqual({ status: 'Healthy', message: '2 1=a,2=b nil 3 1.5 false 0' });
  });

  it('opens only the base, table and package libraries (and a safe os via require) without useOpenLibs', async () => {
    // GIVEN a script probing the libraries
    const probe = `
      local os2 = require("os")
      return { status = "Healthy", message = type(string) .. " " .. type(math) .. " " .. type(io) .. " " .. type(os) .. " "
        .. type(table) .. " " .. type(pairs) .. " " .. type(os2.time) .. " " .. type(os2.date) .. " " .. type(os2.execute) }`;
    const checks = await checksFor({ [HEALTH_POD]: probe });
    // WHEN it runs THEN string, math, io and the global os are absent; require("os") has time and date only
    expect(checks.health(pod())).toEqual({ status: 'Healthy', message: 'nil nil nil nil table function function function nil' });
  });

  it('opens every standard library when resource.customizations.useOpenLibs.<key> parses as true (Go ParseBool)', async () => {
    // GIVEN the same call to string.format, once without and once with useOpenLibs
    const script = 'return { status = string.format("%s", "Healthy"), message = type(math) }';
    const closed = await checksFor({ [HEALTH_POD]: script });
    const open = await checksFor({ [HEALTH_POD]: script, 'resource.customizations.useOpenLibs.Pod': 'True' });
    // WHEN both run THEN only the one with open libraries can call string.format
    expect(closed.health(pod())?.status).toBe('Unknown');
    expect(closed.health(pod())?.message).toMatch(/string/);
    expect(open.health(pod())).toEqual({ status: 'Healthy', message: 'table' });
  });

  it('reports a status outside the six health codes as Unknown "Lua returned an invalid health status"', async () => {
    // GIVEN scripts returning an unknown code, no code, and a valid one
    for (const [script, expected] of [
      ['return { status = "Fine", message = "all good" }', { status: 'Unknown', message: 'Lua returned an invalid health status' }],
      ['return { message = "no status" }', { status: 'Unknown', message: 'Lua returned an invalid health status' }],
      ['return { status = "Missing" }', { status: 'Missing', message: '' }],
    ] as const) {
      const checks = await checksFor({ [HEALTH_POD]: script });
      // WHEN run THEN isValidHealthStatusCode decides
      expect(checks.health(pod()), script).toEqual(expected);
    }
  });

  it('reports script errors and results that are not a status table as Unknown with the error', async () => {
    const cases: [string, RegExp][] = [
      ['error("boom")', /boom/],
      ['return "Healthy"', /^expect table output from Lua script, not string$/],
      ['local x = 1', /^expect table output from Lua script, not nil$/],
      ['return {}', /cannot unmarshal array/],
      ['return { status = "Healthy", message = 42 }', /cannot unmarshal number/],
    ];
    for (const [script, message] of cases) {
      // GIVEN a broken script WHEN run THEN Argo CD shows Unknown with the reason
      const result = (await checksFor({ [HEALTH_POD]: script })).health(pod());
      expect(result?.status, script).toBe('Unknown');
      expect(result?.message, script).toMatch(message);
    }
  });

  it('takes the last returned value, the top of the Lua stack Argo CD reads', async () => {
    const checks = await checksFor({ [HEALTH_POD]: 'return { status = "Degraded" }, { status = "Healthy", message = "last" }' });
    expect(checks.health(pod())).toEqual({ status: 'Healthy', message: 'last' });
  });

  it('runs every evaluation in a fresh Lua state', async () => {
    // GIVEN a script that counts its runs in a global
    const checks = await checksFor({ [HEALTH_POD]: 'runs = (runs or 0) + 1; return { status = "Healthy", message = tostring(runs) }' });
    // WHEN run twice THEN the global did not survive
    expect(checks.health(pod())?.message).toBe('1');
    expect(checks.health(pod())?.message).toBe('1');
  });

  it('stops a runaway script after the time budget (Argo CD: 1 s)', async () => {
    const checks = await checksFor({ [HEALTH_POD]: 'while true do end' }, 50);
    const result = checks.health(pod());
    expect(result?.status).toBe('Unknown');
    expect(result?.message).toMatch(/timeout/);
  });

  it('reports a deleting object as Progressing "Pending deletion" without running the script, except hooks', async () => {
    // GIVEN a script that fails whenever it runs
    const checks = await checksFor({ [HEALTH_POD]: 'error("the script ran")' });
    const deleting = { name: 'p', deletionTimestamp: '2026-11-24T16:02:11Z', finalizers: ['example.com/cleanup'] };
    // WHEN a deleting Pod is assessed THEN gitops-engine's rule answers first
    expect(checks.health(pod({ metadata: deleting }))).toEqual({ status: 'Progressing', message: 'Pending deletion' });
    // AND a hook held by Argo CD's hook finalizer still runs its check
    const hook = { ...deleting, finalizers: ['argocd.argoproj.io/hook-finalizer'] };
    expect(checks.health(pod({ metadata: hook }))?.message).toMatch(/the script ran/);
  });

  it('throws on an object that is not JSON data, a caller bug rather than an Unknown health', async () => {
    const checks = await checksFor({ [HEALTH_POD]: 'return { status = "Healthy" }' });
    expect(() => checks.health(pod({ spec: { started: new Date(0) } }))).toThrow(/obj\.spec\.started/);
    expect(() => checks.health(pod({ spec: { ratio: Number.NaN } }))).toThrow(/not a JSON number/);
  });

  it('refuses to run after close', async () => {
    const checks = await checksFor({ [HEALTH_POD]: 'return { status = "Healthy" }' });
    checks.close();
    expect(() => checks.health(pod())).toThrow(/closed/);
  });
});

describe('argocd-cm keys', () => {
  it('maps <group>_<Kind> and <Kind> keys to Argo CD override keys, ignoring other settings and empty scripts', () => {
    const parsed = parseHealthCustomizations({
      'resource.customizations.health.cert-manager.io_Certificate': 'return {}',
      'resource.customizations.useOpenLibs.cert-manager.io_Certificate': 'true',
      'resource.customizations.health.ConfigMap': 'return {}',
      'resource.customizations.health.apps_Deployment': '',
      'resource.customizations.ignoreDifferences.apps_Deployment': 'jsonPointers: [/spec/replicas]',
      'url': 'https://argocd.example.com',
    });
    expect([...parsed]).toEqual([
      ['ConfigMap', { script: 'return {}', useOpenLibs: false }],
      ['cert-manager.io/Certificate', { script: 'return {}', useOpenLibs: true }],
    ]);
  });

  it('rejects what Argo CD rejects: a key with two underscores, a useOpenLibs value that is not a Go bool', () => {
    expect(() => parseHealthCustomizations({ 'resource.customizations.health.a_b_C': 'return {}' })).toThrow(/group kind/);
    expect(() => parseHealthCustomizations({ 'resource.customizations.useOpenLibs.Pod': 'yes' })).toThrow(/ParseBool/);
  });

  it('derives the override key of an object from its apiVersion group and kind', () => {
    expect(overrideKeyOf({ apiVersion: 'v1', kind: 'Pod' })).toBe('Pod');
    expect(overrideKeyOf({ apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster' })).toBe('cluster.x-k8s.io/Cluster');
    expect(overrideKeyOf({ kind: 'Cluster' })).toBeUndefined();
  });
});
