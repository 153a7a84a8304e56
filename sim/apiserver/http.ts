/**
 * The REST surface: URL parsing as the API server's RequestInfoFactory does it, content negotiation for
 * bodies and patches, discovery documents, and streaming watches. Every failure leaves as a `Status`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import {
  ApiError, badRequest, methodNotAllowed, noSuchPath, notFound, tooLarge, unauthorized, unsupportedMediaType,
} from './errors.js';
import { decodeObject, isRecord, type KubeObject } from './objects.js';
import { applyJsonPatch, mergePatch, PATCH_TYPES } from './patch.js';
import { groupVersion, type ResourceType, type ServedVersion } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import {
  parseResourceVersion, type DeleteOptions, type FieldValidation, type PropagationPolicy, type Selectors, type Store,
  type WriteOptions,
} from './store.js';

/** The Kubernetes version the simulator reports (the newest CAPI v1.14 supports as a management cluster). */
export const SIMULATED_VERSION = { major: '1', minor: '33', gitVersion: 'v1.33.0+lattice-sim' } as const;

/** A running watch stream, so the server can end (or cut) it. */
export interface ActiveWatch {
  /** Ends the stream cleanly, as a server-side timeout does. */
  end(): void;
  /** Destroys the connection, as a crashed or restarted API server would. */
  reset(): void;
}

export interface HttpDeps {
  readonly store: Store;
  readonly log: Logger;
  /** SHA-256 of the bearer token every request must carry (except health checks); undefined: no auth. */
  readonly tokenDigest?: Buffer;
  readonly maxBodyBytes: number;
  readonly bookmarkIntervalMs: number;
  readonly watches: Set<ActiveWatch>;
  /** Told of every request as it arrives (see ApiServerOptions.onRequest). */
  readonly onRequest?: (info: RequestInfo) => void;
}

/**
 * A request as authorization sees it (k8s.io/apiserver's RequestInfoFactory): the verb, and for resource
 * requests the group, version, resource, subresource, namespace and name. Derived from the method and URL
 * alone, before the request is served, so a request that fails counts too.
 */
export interface RequestInfo {
  /** get, list, watch, create, update, patch, delete, deletecollection; for other paths the method, lowercased. */
  readonly verb: string;
  /** The path without the query. */
  readonly path: string;
  /** False for discovery, /version, health checks and anything else that names no resource. */
  readonly resourceRequest: boolean;
  readonly group?: string;
  readonly version?: string;
  readonly resource?: string;
  readonly subresource?: string;
  readonly namespace?: string;
  readonly name?: string;
}

/** RequestInfoFactory's rules for the paths clients send (`/api/v1/...`, `/apis/<group>/<version>/...`). */
export function requestInfo(method: string, rawUrl: string): RequestInfo {
  const url = new URL(rawUrl, 'http://sim.invalid');
  const path = url.pathname;
  const plain: RequestInfo = { verb: method.toLowerCase(), path, resourceRequest: false };
  const parts = path.split('/').filter((p) => p !== '');
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) [group, version, rest] = ['', parts[1] ?? '', parts.slice(2)];
  else if (parts[0] === 'apis' && parts.length >= 4) [group, version, rest] = [parts[1] ?? '', parts[2] ?? '', parts.slice(3)];
  else return plain;
  let watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
  if (rest[0] === 'watch') {
    watch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  // namespaces/<ns>/<resource>...; namespaces/<name>[/status|/finalize] is the Namespace itself.
  if (rest[0] === 'namespaces' && rest.length > 2 && rest[2] !== 'status' && rest[2] !== 'finalize') {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  if (resource === undefined) return plain;
  const collection = name === undefined;
  const verb = method === 'GET' ? (collection ? (watch ? 'watch' : 'list') : 'get')
    : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch'
      : method === 'DELETE' ? (collection ? 'deletecollection' : 'delete') : method.toLowerCase();
  return {
    verb, path, resourceRequest: true, group, version, resource,
    ...(subresource !== undefined ? { subresource } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name !== undefined ? { name } : {}),
  };
}

const HEALTH = new Set(['/healthz', '/livez', '/readyz']);
const JSON_TYPE = 'application/json';

export const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time bearer token check over equal-length digests; the token itself is never logged. */
function authorized(req: IncomingMessage, digest: Buffer): boolean {
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m !== null && timingSafeEqual(sha256(m[1] ?? ''), digest);
}

function warningHeader(text: string): string {
  return `299 - ${JSON.stringify(text)}`;
}

function send(res: ServerResponse, code: number, body: unknown, warnings: readonly string[] = []): void {
  const data = JSON.stringify(body);
  if (warnings.length > 0) res.setHeader('Warning', warnings.map(warningHeader));
  res.writeHead(code, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(data), 'Cache-Control': 'no-cache, private' });
  res.end(data);
}

function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  send(res, err.code, err.toStatus());
}

/** The object as served at the requested version: no conversion, only apiVersion rewritten. */
function present(type: ResourceType, version: ServedVersion, obj: KubeObject): KubeObject {
  // Key order as the API server writes it: apiVersion, kind, metadata, then the rest.
  const { apiVersion: _stored, kind: _kind, metadata, ...rest } = obj;
  return { apiVersion: groupVersion(type.group, version.name), kind: type.kind, metadata, ...rest };
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is drained unread, so the 413 Status still reaches the client.
      if (size > limit) reject(tooLarge(limit));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const mediaType = (req: IncomingMessage): string => (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
  }
}

function parseYamlBody(text: string): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 100 }) as unknown;
  } catch (e) {
    throw badRequest(`error converting YAML to JSON: ${(e as Error).message}`);
  }
}

/** A create/update body: JSON (the clients' format) or YAML. */
async function objectBody(req: IncomingMessage, deps: HttpDeps): Promise<KubeObject> {
  const type = mediaType(req);
  const text = (await readBody(req, deps.maxBodyBytes)).toString('utf8');
  if (type === '' || type === JSON_TYPE || type === '*/*') return decodeObject(parseJson(text));
  if (type === 'application/yaml') return decodeObject(parseYamlBody(text));
  throw unsupportedMediaType(type, [JSON_TYPE, 'application/yaml']);
}

function bool(v: string | null): boolean {
  return v === 'true' || v === '1';
}

function writeOptions(q: URLSearchParams, warnings: string[]): WriteOptions {
  const dryRun = q.getAll('dryRun');
  for (const v of dryRun) if (v !== 'All') throw badRequest(`dryRun: Unsupported value: ${JSON.stringify(v)}: supported values: "All"`);
  const fv = q.get('fieldValidation') ?? '';
  if (fv !== '' && fv !== 'Strict' && fv !== 'Warn' && fv !== 'Ignore') {
    throw badRequest(`fieldValidation: Unsupported value: ${JSON.stringify(fv)}: supported values: "Ignore", "Strict", "Warn"`);
  }
  return { dryRun: dryRun.length > 0, ...(fv ? { fieldValidation: fv as FieldValidation } : {}), warnings };
}

function selectors(store: Store, type: ResourceType, namespace: string | undefined, q: URLSearchParams): Selectors {
  const labels = parseLabelSelector(q.get('labelSelector') ?? '');
  if (!labels.ok) throw badRequest(labels.error);
  const fields = parseFieldSelector(q.get('fieldSelector') ?? '');
  if (!fields.ok) throw badRequest(fields.error);
  for (const r of fields.value) {
    if (!store.fieldSupported(type, r.field)) {
      const known = ['metadata.name', ...(type.namespaced ? ['metadata.namespace'] : []), ...Object.keys(type.fieldLabels)];
      throw badRequest(`field label not supported: ${r.field} (supported: ${known.map((k) => JSON.stringify(k)).join(', ')})`);
    }
  }
  return {
    ...(namespace !== undefined ? { namespace } : {}),
    ...(labels.value.length > 0 ? { labelSelector: labels.value } : {}),
    ...(fields.value.length > 0 ? { fieldSelector: fields.value } : {}),
  };
}

const POLICIES = new Set(['Background', 'Foreground', 'Orphan']);

/** DeleteOptions from the body (if any) and the query; the body wins, as in the API server's decoding. */
async function deleteOptions(req: IncomingMessage, q: URLSearchParams, deps: HttpDeps, warnings: string[]): Promise<DeleteOptions> {
  const text = (await readBody(req, deps.maxBodyBytes)).toString('utf8').trim();
  const body = text === '' ? {} : parseJson(text);
  if (!isRecord(body)) throw badRequest('DeleteOptions must be a JSON object');
  const base = writeOptions(q, warnings);
  const policy = typeof body.propagationPolicy === 'string' ? body.propagationPolicy : q.get('propagationPolicy') ?? undefined;
  const orphanRaw = typeof body.orphanDependents === 'boolean' ? body.orphanDependents : q.has('orphanDependents') ? bool(q.get('orphanDependents')) : undefined;
  if (policy !== undefined && !POLICIES.has(policy)) {
    throw badRequest(`propagationPolicy: Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan"`);
  }
  if (policy !== undefined && orphanRaw !== undefined) throw badRequest('orphanDependents and propagationPolicy cannot be both set');
  const effective = policy ?? (orphanRaw === undefined ? undefined : orphanRaw ? 'Orphan' : 'Background');
  const dryRun = base.dryRun === true || (Array.isArray(body.dryRun) && body.dryRun.includes('All'));
  const pre = isRecord(body.preconditions) ? body.preconditions : {};
  return {
    ...base,
    dryRun,
    ...(effective ? { propagationPolicy: effective as PropagationPolicy } : {}),
    preconditions: {
      ...(typeof pre.uid === 'string' ? { uid: pre.uid } : {}),
      ...(typeof pre.resourceVersion === 'string' ? { resourceVersion: pre.resourceVersion } : {}),
    },
  };
}

interface Target {
  readonly type: ResourceType;
  readonly version: ServedVersion;
  readonly namespace?: string;
  readonly name?: string;
  readonly subresource?: 'status';
}

/** RequestInfoFactory's path rules: `namespaces/<ns>/<resource>/<name>/<subresource>`, with status/finalize of namespaces. */
function resolveTarget(store: Store, method: string, group: string, version: string, parts: string[]): Target {
  let rest = parts;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length > 2 && rest[2] !== 'status' && rest[2] !== 'finalize') {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, sub] = rest;
  if (!resource || rest.length > 3) throw noSuchPath();
  const resolved = store.registry.resolve(group, version, resource);
  if (!resolved) throw noSuchPath();
  const { type } = resolved;
  if (namespace !== undefined && !type.namespaced) throw noSuchPath();
  // Only list and watch may span all namespaces.
  if (type.namespaced && namespace === undefined && (name !== undefined || method !== 'GET')) throw noSuchPath();
  if (sub !== undefined && (sub !== 'status' || !resolved.version.status || name === undefined)) {
    throw notFound({ group: type.group, resource: type.plural }, name ?? '');
  }
  return { ...resolved, ...(namespace !== undefined ? { namespace } : {}), ...(name !== undefined ? { name } : {}), ...(sub ? { subresource: 'status' as const } : {}) };
}

function listBody(t: Target, items: KubeObject[], metadata: Record<string, unknown>): Record<string, unknown> {
  // Typed lists of built-ins carry no apiVersion/kind on their items (client-go's informers see the same).
  const strip = t.type.crd === undefined;
  return {
    kind: t.type.listKind,
    apiVersion: groupVersion(t.type.group, t.version.name),
    metadata,
    items: items.map((o) => {
      const shown = present(t.type, t.version, o);
      if (!strip) return shown;
      const { apiVersion: _a, kind: _k, ...rest } = shown;
      return rest;
    }),
  };
}

function successStatus(t: Target, obj: KubeObject): Record<string, unknown> {
  return {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success',
    details: { name: obj.metadata.name, ...(t.type.group ? { group: t.type.group } : {}), kind: t.type.plural, uid: obj.metadata.uid },
  };
}

async function patchObject(req: IncomingMessage, q: URLSearchParams, deps: HttpDeps, t: Target, name: string, res: ServerResponse): Promise<void> {
  const warnings: string[] = [];
  const opts = writeOptions(q, warnings);
  const media = mediaType(req);
  const accepted = [PATCH_TYPES.json, PATCH_TYPES.merge, ...(t.type.crd ? [] : [PATCH_TYPES.strategic]), PATCH_TYPES.apply];
  if (!accepted.includes(media as (typeof accepted)[number])) throw unsupportedMediaType(media, accepted);
  const text = (await readBody(req, deps.maxBodyBytes)).toString('utf8');
  const store = deps.store;
  const sub = t.subresource ? { subresource: t.subresource } : {};

  if (media === PATCH_TYPES.apply) {
    // Server-side apply, simplified: a merge of the applied configuration; no field ownership.
    if (!q.get('fieldManager')) throw badRequest('PATCH request with apply content type requires fieldManager');
    const applied = decodeObject(parseYamlBody(text));
    if (!applied.apiVersion || !applied.kind) throw badRequest('invalid object type: apply requires apiVersion and kind');
    if (applied.metadata.name && applied.metadata.name !== name) {
      throw badRequest(`the name of the object (${applied.metadata.name}) does not match the name on the URL (${name})`);
    }
    let existing: KubeObject | undefined;
    try {
      existing = store.get(t.type, t.namespace, name);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404) || t.subresource) throw e;
    }
    if (!existing) {
      const created = store.create(t.type, t.version, t.namespace, { ...applied, metadata: { ...applied.metadata, name } }, opts);
      send(res, 201, present(t.type, t.version, created), warnings);
      return;
    }
    const merged = decodeObject(mergePatch(present(t.type, t.version, existing), applied));
    const { object } = store.update(t.type, t.version, t.namespace, name, merged, { ...opts, ...sub, patch: true });
    send(res, 200, present(t.type, t.version, object), warnings);
    return;
  }

  const existing = store.get(t.type, t.namespace, name);
  const current = present(t.type, t.version, existing);
  const patch = parseJson(text);
  // Strategic merge patch for built-ins is approximated by a JSON merge patch (lists replace, no $patch directives).
  const patched = media === PATCH_TYPES.json ? applyJsonPatch(current, patch) : mergePatch(current, patch);
  const { object } = store.update(t.type, t.version, t.namespace, name, decodeObject(patched), { ...opts, ...sub, patch: true });
  send(res, 200, present(t.type, t.version, object), warnings);
}

function serveWatch(deps: HttpDeps, req: IncomingMessage, res: ServerResponse, t: Target, q: URLSearchParams): void {
  const sel = selectors(deps.store, t.type, t.namespace, q);
  const rv = q.get('resourceVersion') ?? '';
  if (rv !== '' && rv !== '0') parseResourceVersion(rv);
  const timeoutRaw = q.get('timeoutSeconds');
  const timeoutSeconds = timeoutRaw === null ? undefined : Number(timeoutRaw);
  if (timeoutSeconds !== undefined && !(Number.isInteger(timeoutSeconds) && timeoutSeconds >= 0)) throw badRequest(`timeoutSeconds: invalid value ${JSON.stringify(timeoutRaw)}`);

  res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  const write = (type: string, object: unknown) => {
    if (!res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
  };

  let handle: { stop(): void } | undefined;
  const timers: NodeJS.Timeout[] = [];
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    handle?.stop();
    for (const timer of timers) clearTimeout(timer);
    deps.watches.delete(active);
  };
  const active: ActiveWatch = {
    end: () => {
      cleanup();
      res.end();
    },
    reset: () => {
      cleanup();
      res.destroy();
    },
  };
  res.on('close', cleanup);
  deps.watches.add(active);

  try {
    handle = deps.store.watch(t.type, { ...sel, ...(rv ? { resourceVersion: rv } : {}) }, {
      event: (type, object) => write(type, present(t.type, t.version, object)),
      close: () => active.end(),
    });
  } catch (e) {
    // The watch cache reports errors (410 Expired above all) as an ERROR event on an open stream.
    const status = e instanceof ApiError ? e.toStatus() : new ApiError(500, 'InternalError', 'watch failed').toStatus();
    write('ERROR', status);
    active.end();
    return;
  }
  if (done) return;
  if (bool(q.get('allowWatchBookmarks'))) {
    timers.push(setInterval(() => {
      write('BOOKMARK', { kind: t.type.kind, apiVersion: groupVersion(t.type.group, t.version.name), metadata: { resourceVersion: deps.store.resourceVersion } });
    }, deps.bookmarkIntervalMs));
  }
  if (timeoutSeconds !== undefined && timeoutSeconds > 0) timers.push(setTimeout(() => active.end(), timeoutSeconds * 1000));
  deps.log.debug({ kind: t.type.kind, namespace: t.namespace, resourceVersion: rv }, 'watch started');
}

async function resourceRequest(deps: HttpDeps, req: IncomingMessage, res: ServerResponse, q: URLSearchParams, group: string, version: string, parts: string[]): Promise<void> {
  const method = req.method ?? 'GET';
  const legacyWatch = parts[0] === 'watch';
  const t = resolveTarget(deps.store, method, group, version, legacyWatch ? parts.slice(1) : parts);
  const store = deps.store;
  const { type, name } = t;
  const show = (o: KubeObject) => present(type, t.version, o);

  if (method === 'GET') {
    if (name === undefined) {
      if (legacyWatch || bool(q.get('watch'))) return serveWatch(deps, req, res, t, q);
      const limit = q.get('limit');
      const result = store.list(type, { ...selectors(store, type, t.namespace, q), ...(limit ? { limit: Number(limit) } : {}), ...(q.get('continue') ? { continue: q.get('continue') ?? '' } : {}) });
      send(res, 200, listBody(t, result.items, {
        resourceVersion: result.resourceVersion,
        ...(result.continue ? { continue: result.continue, remainingItemCount: result.remainingItemCount } : {}),
      }));
      return;
    }
    send(res, 200, show(store.get(type, t.namespace, name)));
    return;
  }
  if (method === 'POST') {
    if (name !== undefined) throw methodNotAllowed();
    const warnings: string[] = [];
    const opts = writeOptions(q, warnings);
    const created = store.create(type, t.version, t.namespace, await objectBody(req, deps), opts);
    send(res, 201, show(created), warnings);
    return;
  }
  if (method === 'PUT') {
    if (name === undefined) throw methodNotAllowed();
    const warnings: string[] = [];
    const opts = writeOptions(q, warnings);
    const { object, created } = store.update(type, t.version, t.namespace, name, await objectBody(req, deps), { ...opts, ...(t.subresource ? { subresource: t.subresource } : {}) });
    send(res, created ? 201 : 200, show(object), warnings);
    return;
  }
  if (method === 'PATCH') {
    if (name === undefined) throw methodNotAllowed();
    await patchObject(req, q, deps, t, name, res);
    return;
  }
  if (method === 'DELETE') {
    if (t.subresource) throw methodNotAllowed();
    const warnings: string[] = [];
    const opts = await deleteOptions(req, q, deps, warnings);
    if (name === undefined) {
      const deleted = store.deleteCollection(type, selectors(store, type, t.namespace, q), opts);
      send(res, 200, listBody(t, deleted, { resourceVersion: store.resourceVersion }), warnings);
      return;
    }
    const { object, deleted } = store.delete(type, t.namespace, name, opts);
    send(res, 200, deleted && !type.returnDeletedObject ? successStatus(t, object) : show(object), warnings);
    return;
  }
  throw methodNotAllowed();
}

function discovery(deps: HttpDeps, req: IncomingMessage, res: ServerResponse, segs: string[]): boolean {
  const registry = deps.store.registry;
  const [root, a, b] = segs;
  let body: unknown;
  if (root === 'version' && segs.length === 1) {
    body = { ...SIMULATED_VERSION, gitCommit: '', gitTreeState: 'clean', buildDate: '1970-01-01T00:00:00Z', goVersion: '', compiler: 'gc', platform: `${process.platform}/${process.arch}` };
  } else if (root === 'api' && segs.length === 1) {
    body = { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: req.headers.host ?? '' }] };
  } else if (root === 'api' && a === 'v1' && segs.length === 2) {
    body = registry.resourceList('', 'v1');
  } else if (root === 'apis' && segs.length === 1) {
    body = {
      kind: 'APIGroupList', apiVersion: 'v1',
      groups: registry.groups().map((g) => groupDoc(g.name, g.versions)),
    };
  } else if (root === 'apis' && segs.length === 2) {
    const g = registry.groups().find((x) => x.name === a);
    body = g && { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(g.name, g.versions) };
  } else if (root === 'apis' && segs.length === 3 && a !== undefined && b !== undefined) {
    body = registry.resourceList(a, b);
  } else if (root === 'openapi' && a === 'v2' && segs.length === 2) {
    // Present so that clients probing for OpenAPI get a valid, empty document rather than an error.
    body = { swagger: '2.0', info: { title: 'Kubernetes', version: SIMULATED_VERSION.gitVersion }, paths: {}, definitions: {} };
  } else if (root === 'openapi' && a === 'v3' && segs.length === 2) {
    body = { paths: {} };
  } else {
    return false;
  }
  if (body === undefined) throw noSuchPath();
  if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed();
  send(res, 200, body);
  return true;
}

function groupDoc(name: string, versions: readonly string[]): Record<string, unknown> {
  const gvs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: gvs, preferredVersion: gvs[0] };
}

async function handle(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://sim.invalid');
  const path = url.pathname;
  if (HEALTH.has(path)) {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('ok');
    return;
  }
  if (deps.tokenDigest && !authorized(req, deps.tokenDigest)) throw unauthorized();
  let segs: string[];
  try {
    segs = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  } catch {
    throw badRequest('malformed URL path');
  }
  if (discovery(deps, req, res, segs)) return;
  if (segs[0] === 'api' && segs[1] === 'v1') return resourceRequest(deps, req, res, url.searchParams, '', 'v1', segs.slice(2));
  if (segs[0] === 'apis' && segs.length > 3 && segs[1] !== undefined && segs[2] !== undefined) {
    return resourceRequest(deps, req, res, url.searchParams, segs[1], segs[2], segs.slice(3));
  }
  throw noSuchPath();
}

/** The request listener: usable with `http.createServer`, `https.createServer` or supertest. */
export function createRequestListener(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = performance.now();
    if (deps.onRequest) {
      try {
        deps.onRequest(requestInfo(req.method ?? 'GET', req.url ?? '/'));
      } catch (e) {
        // An observer's bug must not fail the request it observes.
        deps.log.warn({ err: e }, 'request observer failed');
      }
    }
    res.on('finish', () => {
      // The path only: query strings may carry selectors with user data, and headers carry the token.
      deps.log.debug({ method: req.method, path: (req.url ?? '').split('?')[0], status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request served');
    });
    handle(deps, req, res).catch((e: unknown) => {
      if (e instanceof ApiError) {
        sendError(res, e);
        return;
      }
      deps.log.error({ err: e, method: req.method, path: (req.url ?? '').split('?')[0] }, 'request failed');
      sendError(res, new ApiError(500, 'InternalError', 'an error on the server has prevented the request from succeeding'));
    });
  };
}
