/**
 * Least privilege, checked (test/controller-rbac.test.ts, test/pivot-rbac.test.ts): a recording proxy in
 * front of the sim API server, requests turned into what RBAC sees (k8s.io/apiserver's RequestInfo), and
 * deploy/'s Roles and ClusterRoles to check them against, both ways: nothing denied, nothing granted unused.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KubeConfig } from '@kubernetes/client-node';
import { isRecord } from '../../core/data.js';
import { REPO } from './repo.js';

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});

/** One API request as RBAC sees it (k8s.io/apiserver's RequestInfo). */
export interface Call {
  readonly verb: string;
  readonly group: string;
  /** `resource` or `resource/subresource`. */
  readonly resource: string;
  /** '' for cluster-scoped requests. */
  readonly namespace: string;
  readonly raw: string;
}

/** RequestInfo for the request paths client-node sends (no non-resource URLs expected). */
function requestInfo(method: string, url: string): Omit<Call, 'raw'> | { nonResource: string } {
  const u = new URL(url, 'http://x');
  const parts = u.pathname.split('/').filter((p) => p !== '');
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 2) [group, rest] = ['', parts.slice(2)];
  else if (parts[0] === 'apis' && parts.length >= 3) [group, rest] = [parts[1] ?? '', parts.slice(3)];
  else return { nonResource: u.pathname };
  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1] ?? '';
    rest = rest.slice(2);
  }
  const [resource = '', name, subresource] = rest;
  const collection = name === undefined;
  const verb = method === 'GET' ? (collection ? (u.searchParams.get('watch') === 'true' ? 'watch' : 'list') : 'get')
    : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch'
      : method === 'DELETE' ? (collection ? 'deletecollection' : 'delete') : method.toLowerCase();
  // GET /api/v1/namespaces/<name> is a get of the namespace itself.
  if (resource === 'namespaces' && rest.length === 2 && namespace === '') return { verb, group, resource, namespace: '' };
  return { verb, group, resource: subresource ? `${resource}/${subresource}` : resource, namespace };
}

/**
 * The resource requests among the recorded ones, and the paths of any non-resource request. Discovery
 * (`/api`, `/apis`, `/apis/<group>/<version>` without a resource) is allowed to every authenticated user by
 * the default `system:discovery` ClusterRole, so it is listed apart.
 */
export function resourceCalls(recorded: readonly { method: string; url: string }[]): { calls: Call[]; nonResource: string[]; discovery: string[] } {
  const calls: Call[] = [];
  const nonResource: string[] = [];
  const discovery: string[] = [];
  for (const c of recorded) {
    const raw = `${c.method} ${c.url.split('?')[0] ?? ''}`;
    const info = requestInfo(c.method, c.url);
    if ('nonResource' in info) {
      if (/^\/(api|apis)(\/[^/]+){0,2}\/?$/.test(info.nonResource) && c.method === 'GET') discovery.push(raw);
      else nonResource.push(raw);
      continue;
    }
    if (info.resource === '' && c.method === 'GET') {
      discovery.push(raw);
      continue;
    }
    calls.push({ ...info, raw });
  }
  return { calls, nonResource, discovery };
}

export interface Rule {
  readonly scope: string;
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/** The rules of deploy/'s Roles and ClusterRoles; a Role's rules apply in its namespace only. */
export function deployRules(...files: string[]): Rule[] {
  return files.flatMap((f) => parseAllDocuments(readFileSync(join(REPO, 'deploy', f), 'utf8')).map((d) => rec(d.toJS())))
    .filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')
    .flatMap((o) => (o.rules as Rule[]).map((r) => ({ ...r, scope: o.kind === 'Role' ? String(rec(o.metadata).namespace) : '*' })));
}

/** RBAC's match: `*` in resources matches any resource (not subresources, as RBAC's `*` is written for them). */
const matchesResource = (rule: Rule, resource: string) => rule.resources.includes(resource) || (rule.resources.includes('*') && !resource.includes('/'));

const allows = (rule: Rule, c: Call) => (rule.scope === '*' || rule.scope === c.namespace)
  && (rule.apiGroups.includes(c.group) || rule.apiGroups.includes('*')) && matchesResource(rule, c.resource) && rule.verbs.includes(c.verb);

/** The requests no rule allows, described. */
export function deniedCalls(rules: readonly Rule[], calls: readonly Call[]): string[] {
  return [...new Set(calls.filter((c) => !rules.some((r) => allows(r, c))).map((c) => `${c.verb} ${c.group}/${c.resource} in "${c.namespace}" (${c.raw})`))];
}

/** The granted (verb, resource) pairs no request used. */
export function unusedGrants(rules: readonly Rule[], calls: readonly Call[]): string[] {
  return rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((verb) => ({ verb, res, r }))))
    .filter(({ verb, res, r }) => !calls.some((c) => c.verb === verb && (res === '*' ? !c.resource.includes('/') : c.resource === res) && r.apiGroups.includes(c.group) && (r.scope === '*' || r.scope === c.namespace)))
    .map(({ verb, res, r }) => `${verb} ${res} (${r.scope}, ${r.apiGroups.join(',') || 'core'})`);
}

export interface RecordingProxy {
  readonly server: Server;
  readonly url: string;
  /** Every request, with the user it impersonated (the API proxy's agent impersonates its ServiceAccount). */
  readonly calls: { method: string; url: string; impersonate?: string }[];
  /** A kubeconfig that reaches the API server only through the proxy. */
  readonly kubeConfig: KubeConfig;
  close(): Promise<void>;
}

/** A plain HTTP proxy that records every request (watches stream through). */
export async function recordingProxy(target: string, options: { token?: string } = {}): Promise<RecordingProxy> {
  const calls: { method: string; url: string; impersonate?: string }[] = [];
  const server = createServer((req, res) => {
    const impersonate = req.headers['impersonate-user'];
    calls.push({ method: req.method ?? '', url: req.url ?? '', ...(typeof impersonate === 'string' ? { impersonate } : {}) });
    const upstream = request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      // A watch may send nothing for a while: pass its headers on at once, as the API server sends them.
      res.flushHeaders();
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({ clusters: [{ name: 'proxy', server: url, skipTLSVerify: true }], users: [{ name: 'controller', ...(options.token ? { token: options.token } : {}) }], contexts: [{ name: 'proxy', cluster: 'proxy', user: 'controller' }], currentContext: 'proxy' });
  return {
    server, url, calls, kubeConfig,
    async close() {
      await new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
    },
  };
}
