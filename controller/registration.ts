/**
 * Registering a child with the GitOps engine (DESIGN §5), as data: the kubeconfig CAPI wrote (research/capi.md
 * B.8) becomes an Argo CD cluster Secret (research/argocd-cmp.md §7.1) or the kubeconfig Secret the Flux
 * HelmReleases reference. Pure: no I/O; the reconcile step reads and writes the Secrets. Nothing here ever
 * puts credential bytes in an error message.
 */
import { parse, stringify } from 'yaml';
import { isRecord } from '../core/data.js';
import { ANNOTATION, CONTROLLER_MANAGER, KUBECONFIG_KEY, LABEL, type Resource } from './resources.js';
import type { SecretObject } from './kube.js';

/** What Argo CD needs to reach a cluster, taken from a kubeconfig (base64 PEM values as the kubeconfig has them). */
export interface ClusterCredentials {
  readonly server: string;
  readonly caData?: string;
  readonly certData?: string;
  readonly keyData?: string;
  readonly bearerToken?: string;
  readonly insecure?: boolean;
  readonly serverName?: string;
}

export type KubeconfigResult = { ok: true; value: ClusterCredentials } | { ok: false; code: string; message: string };

const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const named = (list: unknown, name: unknown): Record<string, unknown> | undefined =>
  (Array.isArray(list) ? list.map(rec).find((e) => e.name === name) : undefined);
const first = (list: unknown): Record<string, unknown> | undefined => (Array.isArray(list) && list.length > 0 ? rec(list[0]) : undefined);

/**
 * The current context's cluster and user of a kubeconfig (the first ones when there is no current context).
 * Only self-contained kubeconfigs are accepted, as CAPI writes them: inline certificate data or a token;
 * file paths, exec plugins and auth providers cannot work inside Argo CD and are refused.
 */
export function readKubeconfig(text: string): KubeconfigResult {
  const invalid = (message: string): KubeconfigResult => ({ ok: false, code: 'KubeconfigInvalid', message });
  let doc: unknown;
  try {
    // Bounded aliases: the Secret is written by CAPI, but parsing must never blow up on bad input.
    doc = parse(text, { maxAliasCount: 50 });
  } catch {
    return invalid('it is not valid YAML');
  }
  if (!isRecord(doc)) return invalid('it is not a kubeconfig (a YAML mapping with clusters, users and contexts)');
  const context = rec(rec(named(doc.contexts, doc['current-context']) ?? first(doc.contexts)).context);
  const clusterEntry = named(doc.clusters, context.cluster) ?? first(doc.clusters);
  const userEntry = named(doc.users, context.user) ?? first(doc.users);
  const cluster = rec(clusterEntry?.cluster);
  const user = rec(userEntry?.user);
  const server = str(cluster.server);
  if (!server || !/^https?:\/\/[^\s]+$/.test(server)) return invalid('its cluster has no http(s) server URL');
  if (cluster['certificate-authority'] !== undefined || user['client-certificate'] !== undefined || user['client-key'] !== undefined || user.tokenFile !== undefined) {
    return { ok: false, code: 'KubeconfigUnsupported', message: 'it references files; only inline data (as Cluster API writes) can be registered' };
  }
  if (user.exec !== undefined || user['auth-provider'] !== undefined) {
    return { ok: false, code: 'KubeconfigUnsupported', message: 'it uses an exec plugin or auth provider; only certificates or a token can be registered' };
  }
  const certData = str(user['client-certificate-data']);
  const keyData = str(user['client-key-data']);
  const bearerToken = str(user.token);
  if (!bearerToken && !(certData && keyData)) return invalid('its user has neither a client certificate and key nor a token');
  const caData = str(cluster['certificate-authority-data']);
  return {
    ok: true,
    value: {
      server,
      ...(caData ? { caData } : {}),
      ...(certData && keyData ? { certData, keyData } : {}),
      ...(bearerToken ? { bearerToken } : {}),
      ...(cluster['insecure-skip-tls-verify'] === true ? { insecure: true } : {}),
      ...(str(cluster['tls-server-name']) ? { serverName: str(cluster['tls-server-name']) } : {}),
    },
  };
}

/** Argo CD's `config` JSON (argocd-cmp.md §7.1): tlsClientConfig and, for token users, bearerToken. */
export function argocdConfig(c: ClusterCredentials): string {
  const tls: Record<string, unknown> = { insecure: c.insecure ?? false };
  if (c.caData) tls.caData = c.caData;
  if (c.certData) tls.certData = c.certData;
  if (c.keyData) tls.keyData = c.keyData;
  if (c.serverName) tls.serverName = c.serverName;
  return JSON.stringify({ ...(c.bearerToken ? { bearerToken: c.bearerToken } : {}), tlsClientConfig: tls });
}

/** Label keys a cluster's own labels may not override on its registration Secret. */
const RESERVED = [LABEL.argocdSecretType, LABEL.managedBy, LABEL.cluster];

/**
 * The LatticeCluster's labels as they go onto the Argo CD cluster Secret: unchanged, so an ApplicationSet
 * cluster generator selects clusters with the same selector that selects LatticeClusters, except the keys
 * the Secret needs for itself.
 */
export function copiedLabels(labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => !RESERVED.includes(k as (typeof RESERVED)[number]) && !k.startsWith('argocd.argoproj.io/')));
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export interface ArgoCdSecretInput {
  readonly cluster: string;
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>> | undefined;
  readonly credentials: ClusterCredentials;
  /** `capi-X/X-kubeconfig`: shown in an annotation for people, never secret. */
  readonly source: string;
}

/** The Argo CD cluster Secret for a cluster (declarative setup, argocd-cmp.md §7.1). */
export function argocdClusterSecret(i: ArgoCdSecretInput): SecretObject {
  return {
    metadata: {
      name: i.name,
      namespace: i.namespace,
      labels: { ...copiedLabels(i.labels), [LABEL.argocdSecretType]: 'cluster', [LABEL.managedBy]: CONTROLLER_MANAGER, [LABEL.cluster]: i.cluster },
      annotations: { [ANNOTATION.kubeconfigSource]: i.source },
    },
    type: 'Opaque',
    data: { name: b64(i.cluster), server: b64(i.credentials.server), config: b64(argocdConfig(i.credentials)) },
  };
}

/**
 * The cluster in which the controller runs (`--self`), registered the way Argo CD registers its own cluster:
 * the in-cluster API address and no credentials (Argo CD then uses its own service account).
 */
export function argocdInClusterSecret(i: Omit<ArgoCdSecretInput, 'credentials' | 'source'>): SecretObject {
  return argocdClusterSecret({ ...i, credentials: { server: 'https://kubernetes.default.svc' }, source: 'in-cluster' });
}

export interface FluxSecretInput {
  readonly cluster: string;
  readonly name: string;
  readonly namespace: string;
  /** The kubeconfig as CAPI stored it (base64 of the YAML), copied byte for byte. */
  readonly kubeconfigBase64: string;
  readonly source: string;
}

/** The kubeconfig Secret Flux's `kubeConfig.secretRef` reads (key `value`, research/flux.md). */
export function fluxKubeconfigSecret(i: FluxSecretInput): SecretObject {
  return {
    metadata: {
      name: i.name,
      namespace: i.namespace,
      labels: { [LABEL.managedBy]: CONTROLLER_MANAGER, [LABEL.cluster]: i.cluster },
      annotations: { [ANNOTATION.kubeconfigSource]: i.source },
    },
    type: 'Opaque',
    data: { [KUBECONFIG_KEY]: i.kubeconfigBase64 },
  };
}

/** Where a pivoted cluster is reached (M9): the cell's API proxy for it, the cell CA and the cluster's proxy token. */
export interface ProxyEndpoint {
  /** `https://<proxy host>:<port>/clusters/<name>`. */
  readonly server: string;
  /** PEM bundle that signs the proxy's serving certificate. */
  readonly caBundle: string;
  readonly token: string;
}

/** The proxy endpoint as registration credentials (Argo CD's config, or a kubeconfig for Flux). */
export function proxyCredentials(p: ProxyEndpoint): ClusterCredentials {
  return { server: p.server, caData: b64(p.caBundle), bearerToken: p.token };
}

/** A kubeconfig for the proxy endpoint, as Flux's `kubeConfig.secretRef` reads it. Deterministic: rewritten only when it changes. */
export function proxyKubeconfig(cluster: string, p: ProxyEndpoint): string {
  const name = `${cluster}-lattice-proxy`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: p.server, 'certificate-authority-data': b64(p.caBundle) } }],
    users: [{ name, user: { token: p.token } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    'current-context': name,
  });
}

/** Whether a live Secret already matches the desired one (labels, annotations, type, data): then nothing is written. */
export function secretMatches(live: SecretObject, desired: SecretObject): boolean {
  const same = (a: unknown, b: unknown) => JSON.stringify(sortKeys(a ?? {})) === JSON.stringify(sortKeys(b ?? {}));
  return same(live.metadata.labels, desired.metadata.labels)
    && same(live.metadata.annotations, desired.metadata.annotations)
    && (live.type ?? 'Opaque') === (desired.type ?? 'Opaque')
    && same(live.data, desired.data);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isRecord(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
}

/** True when a Secret was created by this controller (safe to update or delete). */
export const isOurs = (s: SecretObject | undefined): boolean => s?.metadata.labels?.[LABEL.managedBy] === CONTROLLER_MANAGER;

/** Resource-independent description for messages: `Secret argocd/cluster-dev`. */
export const secretId = (r: Resource, namespace: string, name: string) => `${r.kind} ${namespace}/${name}`;
