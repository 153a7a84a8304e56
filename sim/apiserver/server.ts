/**
 * `createApiServer(options)`: an in-memory Kubernetes API server for tests, benchmarks and the demo.
 * It builds without listening (`handler` serves supertest); `listen()` opens a real loopback port that
 * `@kubernetes/client-node`, kubectl or any other client can use. Instances share nothing.
 * This module does not load @kubernetes/client-node (see ./client.ts), so serving stays light.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { stringify } from 'yaml';
import { loadCrdFiles } from './crds.js';
import { createRequestListener, sha256, type ActiveWatch, type RequestInfo } from './http.js';
import { decodeObject, type KubeObject } from './objects.js';
import { NAMESPACE_TYPE_ID } from './resources.js';
import { Store } from './store.js';

export interface ApiServerOptions {
  /** CRD files or directories (walked recursively), or CRD objects, installed at start. */
  readonly crds?: readonly (string | KubeObject | Record<string, unknown>)[];
  /** Prune, default and validate custom resources with their schemas; false: the schemas are not consulted. @default true */
  readonly validation?: boolean;
  /** Require `Authorization: Bearer <token>` on every request except /healthz, /livez, /readyz. */
  readonly token?: string;
  /** Serve HTTPS with this certificate and key (PEM); `ca` (PEM) goes into kubeconfigs, else the cert itself. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer; readonly ca?: string | Buffer };
  /** Namespaces that exist from the start. @default default, kube-system, kube-public, kube-node-lease */
  readonly namespaces?: readonly string[];
  /** Watch events kept for resuming watches; older resourceVersions get 410 Expired. @default 1000 */
  readonly historySize?: number;
  /** How often watches with allowWatchBookmarks=true get a BOOKMARK. @default 60000 (the API server sends about one a minute) */
  readonly bookmarkIntervalMs?: number;
  /** Run the garbage collector (ownerReferences, orphan and foreground deletion). @default true */
  readonly garbageCollection?: boolean;
  /** Largest accepted request body. @default 3 MiB, the API server's limit */
  readonly maxBodyBytes?: number;
  /** @default a silent logger */
  readonly logger?: Logger;
  /** The clock for creation and deletion timestamps. @default () => new Date() */
  readonly now?: () => Date;
  /**
   * Called with every request as it arrives, parsed as authorization sees it (verb, resource, namespace,
   * name): benchmarks and tests count what a client asks for. Synchronous; its failures are logged only.
   */
  readonly onRequest?: (info: RequestInfo) => void;
}

export interface KubeconfigOptions {
  /** The context's default namespace. */
  readonly namespace?: string;
  /** Put this token in the kubeconfig instead of the server's (to test rejected credentials). */
  readonly token?: string;
}

/** What client-node's `KubeConfig.loadFromOptions` takes (structurally; this module does not load client-node). */
export interface KubeconfigParts {
  readonly clusters: { name: string; server: string; skipTLSVerify: boolean; caData?: string }[];
  readonly users: { name: string; token?: string }[];
  readonly contexts: { name: string; cluster: string; user: string; namespace?: string }[];
  readonly currentContext: string;
}

export interface ApiServer {
  /** The request listener, usable without listening (e.g. `supertest(server.handler)`). */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** The in-memory state, for in-process simulators that need no HTTP round trip. */
  readonly store: Store;
  /** Starts listening (port 0: any free port) and resolves to the base URL, e.g. `http://127.0.0.1:39145`. */
  listen(port?: number, host?: string): Promise<string>;
  /** The base URL; throws before `listen()`. */
  readonly url: string;
  /** Ends every watch, stops listening, closes every connection. Idempotent. */
  close(): Promise<void>;
  /**
   * Ends every open watch stream, to test client recovery: `close` ends them cleanly (as a server-side
   * timeout does), `reset` destroys the connections (as an API server restart does). Returns how many.
   */
  dropWatches(mode?: 'close' | 'reset'): number;
  /** Forgets the watch history (etcd compaction): any watch resuming from an older resourceVersion gets 410. */
  compact(): void;
  /**
   * The arguments of client-node's `KubeConfig.loadFromOptions` for this server (token and CA included when
   * configured); `simKubeConfig(server)` in ./client.ts builds the KubeConfig.
   */
  kubeconfigOptions(options?: KubeconfigOptions): KubeconfigParts;
  /** The same as kubeconfig YAML, for kubectl or a child process. */
  kubeconfigYaml(options?: KubeconfigOptions): string;
}

const DEFAULT_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
const NAME = 'lattice-sim';

class SimApiServer implements ApiServer {
  readonly store: Store;
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  private readonly server: Server;
  private readonly watches = new Set<ActiveWatch>();
  private readonly log: Logger;
  private baseUrl: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ApiServerOptions) {
    this.log = options.logger ?? pino({ level: 'silent' });
    this.store = new Store({
      validation: options.validation ?? true,
      historySize: options.historySize ?? 1000,
      garbageCollection: options.garbageCollection ?? true,
      now: options.now ?? (() => new Date()),
      log: this.log,
    });
    const nsType = this.store.registry.get(NAMESPACE_TYPE_ID);
    const nsVersion = nsType?.versions[0];
    if (nsType && nsVersion) {
      for (const name of options.namespaces ?? DEFAULT_NAMESPACES) this.store.create(nsType, nsVersion, undefined, { metadata: { name } });
    }
    const crds = (options.crds ?? []).flatMap((c) => (typeof c === 'string' ? loadCrdFiles([c]) : [decodeObject(c)]));
    this.store.installCrds(crds);
    this.handler = createRequestListener({
      store: this.store,
      log: this.log,
      ...(options.token !== undefined ? { tokenDigest: sha256(options.token) } : {}),
      maxBodyBytes: options.maxBodyBytes ?? 3 * 1024 * 1024,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      watches: this.watches,
      ...(options.onRequest ? { onRequest: options.onRequest } : {}),
    });
    this.server = options.tls
      ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, this.handler)
      : createHttpServer(this.handler);
  }

  get url(): string {
    if (!this.baseUrl) throw new Error('the simulated API server is not listening: call listen() first');
    return this.baseUrl;
  }

  listen(port = 0, host = '127.0.0.1'): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const address = this.server.address() as AddressInfo;
        const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        this.baseUrl = `${this.options.tls ? 'https' : 'http'}://${shownHost}:${address.port}`;
        this.log.info({ url: this.baseUrl, tls: this.options.tls !== undefined, auth: this.options.token !== undefined }, 'api server listening');
        resolve(this.baseUrl);
      });
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.dropWatches('close');
      this.store.close();
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      // Keep-alive connections (client-node opens one agent per request) would hold close() open.
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  dropWatches(mode: 'close' | 'reset' = 'close'): number {
    const all = [...this.watches];
    for (const w of all) {
      if (mode === 'close') w.end();
      else w.reset();
    }
    if (all.length > 0) this.log.info({ count: all.length, mode }, 'watches dropped');
    return all.length;
  }

  compact(): void {
    this.store.compact();
  }

  kubeconfigOptions(options: KubeconfigOptions = {}): KubeconfigParts {
    const token = options.token ?? this.options.token;
    const ca = this.caData();
    return {
      // client-node refuses plain http unless skipTLSVerify is set.
      clusters: [{ name: NAME, server: this.url, skipTLSVerify: !this.options.tls, ...(ca ? { caData: ca } : {}) }],
      users: [{ name: NAME, ...(token !== undefined ? { token } : {}) }],
      contexts: [{ name: NAME, cluster: NAME, user: NAME, ...(options.namespace ? { namespace: options.namespace } : {}) }],
      currentContext: NAME,
    };
  }

  kubeconfigYaml(options: KubeconfigOptions = {}): string {
    const token = options.token ?? this.options.token;
    const ca = this.caData();
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: NAME, cluster: { server: this.url, ...(ca ? { 'certificate-authority-data': ca } : { 'insecure-skip-tls-verify': true }) } }],
      users: [{ name: NAME, user: token !== undefined ? { token } : {} }],
      contexts: [{ name: NAME, context: { cluster: NAME, user: NAME, ...(options.namespace ? { namespace: options.namespace } : {}) } }],
      'current-context': NAME,
    });
  }

  private caData(): string | undefined {
    const tls = this.options.tls;
    return tls ? Buffer.from(tls.ca ?? tls.cert).toString('base64') : undefined;
  }
}

/** Builds a simulated API server (not listening yet). Throws if a CRD file cannot be read or a CRD is invalid. */
export function createApiServer(options: ApiServerOptions = {}): ApiServer {
  return new SimApiServer(options);
}
