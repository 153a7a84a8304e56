/**
 * The two Secrets the controller and the agent agree on, in the child's lattice-system namespace (names
 * from core/flavor/agent.ts `AGENT`). One module so the writer (controller) and the reader (agent)
 * cannot drift apart.
 *
 * `lattice-agent-bootstrap` (written by the controller into the child before the agent stage):
 * - `token`: the one-time bootstrap token (base64url, 256 bits)
 * - `bootstrapUrl`: `https://<parent host>:<bootstrapPort>`; the agent POSTs to `<bootstrapUrl>/v1/bootstrap`
 * - `cellEndpoint`: `<parent host>:<grpcPort>`
 * - `ca.crt`: the cell CA trust bundle (PEM), which verifies both parent endpoints
 *
 * `lattice-agent-identity` (written by the agent):
 * - `tls.key`: the agent's private key (PKCS#8 PEM); made in the child, never sent anywhere
 * - `tls.crt`: its certificate from the cell (PEM, CN = cluster, clientAuth)
 * - `ca.crt`: the cell CA trust bundle the bootstrap answer carried (PEM)
 * The Secret is of type kubernetes.io/tls, so the usual tooling shows its expiry.
 */
import type { V1Secret } from '@kubernetes/client-node';
import { AGENT } from '../../core/flavor/agent.js';

export const BOOTSTRAP_KEYS = { token: 'token', bootstrapUrl: 'bootstrapUrl', cellEndpoint: 'cellEndpoint', ca: 'ca.crt' } as const;
export const IDENTITY_KEYS = { key: 'tls.key', certificate: 'tls.crt', ca: 'ca.crt' } as const;

export interface BootstrapSecretContent {
  readonly token: string;
  readonly bootstrapUrl: string;
  readonly cellEndpoint: string;
  /** PEM bundle. */
  readonly caBundle: string;
}

const labels = { 'app.kubernetes.io/managed-by': 'lattice', 'app.kubernetes.io/name': AGENT.name };

/**
 * The bootstrap Secret the controller writes into the child (create, or replace when re-minting a token).
 * `stringData` keeps the token out of any base64 handling in our code; the API server stores it as data.
 */
export function bootstrapSecret(content: BootstrapSecretContent, name: string = AGENT.bootstrapSecret, namespace: string = AGENT.namespace): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels },
    type: 'Opaque',
    stringData: {
      [BOOTSTRAP_KEYS.token]: content.token,
      [BOOTSTRAP_KEYS.bootstrapUrl]: content.bootstrapUrl,
      [BOOTSTRAP_KEYS.cellEndpoint]: content.cellEndpoint,
      [BOOTSTRAP_KEYS.ca]: content.caBundle,
    },
  };
}

/** The parent's endpoints as the bootstrap Secret names them, from spec.parentConfig. */
export function parentEndpoints(host: string, ports: { readonly grpcPort: number; readonly bootstrapPort: number }): { bootstrapUrl: string; cellEndpoint: string } {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return { bootstrapUrl: `https://${h}:${ports.bootstrapPort}`, cellEndpoint: `${h}:${ports.grpcPort}` };
}

export interface AgentIdentityContent {
  readonly privateKey: string;
  readonly certificate: string;
  readonly caBundle: string;
}

export function identitySecret(content: AgentIdentityContent, name: string = AGENT.identitySecret, namespace: string = AGENT.namespace): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels },
    type: 'kubernetes.io/tls',
    data: {
      [IDENTITY_KEYS.key]: Buffer.from(content.privateKey).toString('base64'),
      [IDENTITY_KEYS.certificate]: Buffer.from(content.certificate).toString('base64'),
      [IDENTITY_KEYS.ca]: Buffer.from(content.caBundle).toString('base64'),
    },
  };
}

/** A Secret's value as text (data is base64); undefined when absent or empty. */
export function secretValue(secret: V1Secret | undefined, key: string): string | undefined {
  const raw = secret?.data?.[key];
  if (raw === undefined || raw === '') return undefined;
  const text = Buffer.from(raw, 'base64').toString('utf8');
  return text === '' ? undefined : text;
}
