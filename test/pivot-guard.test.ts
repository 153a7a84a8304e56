/**
 * deploy/base/pivot-guard.yaml: the ValidatingAdmissionPolicy that keeps a pivoted cluster's shadows inert in
 * the parent. The sim API server does not run admission, so its CEL is evaluated here with a CEL interpreter
 * (@bufbuild/cel, cel-spec conformant) on the variables the API server binds (`object`, `request`).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '@bufbuild/cel';
import { parseAllDocuments } from 'yaml';
import { isRecord } from '../core/data.js';
import { REPO } from './support/repo.js';
import { toCel } from './support/cel.js';

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const docs = parseAllDocuments(readFileSync(join(REPO, 'deploy/base/pivot-guard.yaml'), 'utf8')).map((d) => rec(d.toJS()));
const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy');
const spec = rec(policy?.spec);

/** What the API server decides: allowed, or the denial message. */
function admit(object: Record<string, unknown>, username = 'system:serviceaccount:argocd:argocd-application-controller'): string {
  const vars = { object: toCel(object), request: toCel({ userInfo: { username } }) } as never;
  const conditions = (spec.matchConditions as { expression: string }[]);
  if (!conditions.every((c) => run(c.expression, vars) === true)) return 'allowed';
  for (const v of spec.validations as { expression: string; messageExpression: string }[]) {
    if (run(v.expression, vars) !== true) return String(run(v.messageExpression, vars));
  }
  return 'allowed';
}

const cluster = (paused?: boolean) => ({ apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster', metadata: { name: 'dev', namespace: 'capi-dev' }, spec: { ...(paused === undefined ? {} : { paused }), topology: {} } });
const md = (annotations?: Record<string, string>) => ({ apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'MachineDeployment', metadata: { name: 'dev-md', namespace: 'capi-dev', ...(annotations ? { annotations } : {}) }, spec: { replicas: 2 } });

describe('deploy/base/pivot-guard.yaml', () => {
  it('matches writes of Cluster API objects in namespaces labelled lattice.dev/pivoted-to, never their status', () => {
    expect(rec(rec(spec.matchConstraints).namespaceSelector)).toEqual({ matchExpressions: [{ key: 'lattice.dev/pivoted-to', operator: 'Exists' }] });
    const rules = rec(spec.matchConstraints).resourceRules as { apiGroups: string[]; resources: string[]; operations: string[] }[];
    expect(rules.every((r) => r.resources.every((x) => !x.includes('/')) && r.apiGroups.every((g) => g.endsWith('cluster.x-k8s.io')))).toBe(true);
    expect(rules.flatMap((r) => r.operations).sort()).toEqual(['CREATE', 'UPDATE']);
    expect(rec(docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding')?.spec)).toEqual({ policyName: 'lattice-pivoted-shadows', validationActions: ['Deny'] });
  });

  it('lets a GitOps engine re-apply paused shadows, and refuses anything that would be live', () => {
    expect(admit(cluster(true))).toBe('allowed');
    expect(admit(md({ 'cluster.x-k8s.io/paused': '' }))).toBe('allowed');
    // A shadow deleted and re-applied from git comes back without the pause: refused, with why
    expect(admit(cluster())).toBe('Cluster dev must stay paused: the cluster manages its own Cluster API objects (namespace labelled lattice.dev/pivoted-to); the parent keeps inert shadows only');
    expect(admit(cluster(false))).toMatch(/^Cluster dev must stay paused/);
    expect(admit(md())).toMatch(/^MachineDeployment dev-md must stay paused/);
    expect(admit(md({ other: 'x' }))).toMatch(/must stay paused/);
  });

  it('never stands in the controller\'s way: it unpauses what it imports when it unpivots', () => {
    expect(admit(cluster(), 'system:serviceaccount:lattice-system:lattice-controller')).toBe('allowed');
  });
});
