/**
 * How the simulated GitOps engines reach a destination cluster and "install" a chart there. Charts cannot be
 * fetched or run in a sim, so an installed release is a record in the destination namespace (a ConfigMap
 * `sim-release-<release>` with the chart, version and a digest of the values), written with the credentials
 * the engine was given: an Argo CD cluster Secret (server + config JSON, research/argocd-cmp.md §7.1) or the
 * kubeconfig in a Flux `kubeConfig.secretRef` Secret. What matters for the tests and the demo is that the
 * engine keeps reaching the child with whatever the registration says: the child's API server before the
 * pivot, the cell's API proxy after it.
 */
import { createHash } from 'node:crypto';
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';

export const RELEASE_PREFIX = 'sim-release-';

/** A chart release as an engine would install it. */
export interface Release {
  readonly name: string;
  readonly namespace: string;
  readonly chart: string;
  readonly version: string;
  readonly values: unknown;
}

/** A destination: a client, and a digest of the credentials it was built from (a changed registration is a new destination). */
export interface Destination {
  readonly api: KubernetesObjectApi;
  readonly digest: string;
}

const digestOf = (...parts: unknown[]): string => createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16);

const decode = (v: string | undefined): string | undefined => (v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8'));

/** A client from an Argo CD cluster Secret's `server` and `config` (bearerToken, tlsClientConfig); undefined when it has none. */
export function argoCdDestination(secret: { data?: Record<string, string> }): Destination | undefined {
  const server = decode(secret.data?.server);
  if (!server) return undefined;
  const config = JSON.parse(decode(secret.data?.config) ?? '{}') as {
    bearerToken?: string;
    tlsClientConfig?: { caData?: string; certData?: string; keyData?: string; insecure?: boolean; serverName?: string };
  };
  const tls = config.tlsClientConfig ?? {};
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'destination', server, ...(tls.caData ? { caData: tls.caData } : {}), skipTLSVerify: tls.insecure === true, ...(tls.serverName ? { tlsServerName: tls.serverName } : {}) }],
    users: [{ name: 'argocd', ...(config.bearerToken ? { token: config.bearerToken } : {}), ...(tls.certData ? { certData: tls.certData } : {}), ...(tls.keyData ? { keyData: tls.keyData } : {}) }],
    contexts: [{ name: 'destination', cluster: 'destination', user: 'argocd' }],
    currentContext: 'destination',
  });
  return { api: KubernetesObjectApi.makeApiClient(kc), digest: digestOf(server, config) };
}

/** A client from a kubeconfig (a Flux `kubeConfig.secretRef` value). */
export function kubeconfigDestination(text: string): Destination {
  const kc = new KubeConfig();
  kc.loadFromString(text);
  return { api: KubernetesObjectApi.makeApiClient(kc), digest: digestOf(text) };
}

const recordOf = (r: Release): KubernetesObject & { data: Record<string, string> } => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: `${RELEASE_PREFIX}${r.name}`, namespace: r.namespace, labels: { 'app.kubernetes.io/managed-by': 'Helm', 'lattice.dev/sim-release': r.name } },
  data: { chart: r.chart, version: r.version, values: digestOf(r.values) },
});

const statusCode = (e: unknown): number | undefined => (typeof e === 'object' && e !== null && 'code' in e ? Number((e as { code: unknown }).code) : undefined);

/**
 * Installs (or upgrades) a release in the destination unless its record already says so: the namespace is
 * created when missing (Argo CD's CreateNamespace=true, Flux's install.createNamespace), then the record
 * applied server-side. Resolves to whether anything was written.
 */
export async function ensureRelease(destination: Destination, release: Release, fieldManager: string): Promise<boolean> {
  const desired = recordOf(release);
  try {
    const live = (await destination.api.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: desired.metadata?.name ?? '', namespace: release.namespace } })) as { data?: Record<string, string> };
    if (JSON.stringify(live.data ?? {}) === JSON.stringify(desired.data)) return false;
  } catch (e) {
    if (statusCode(e) !== 404) throw e;
  }
  await destination.api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: release.namespace } }).catch((e: unknown) => {
    if (statusCode(e) !== 409) throw e;
  });
  await destination.api.patch(desired, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply);
  return true;
}
