/**
 * The cell's HTTPS listeners (bootstrap endpoint, API proxy) with its serving certificate: one way to bind,
 * time out slow clients and close gracefully.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface HttpsListener {
  readonly port: number;
  /** Stops accepting, ends idle connections, waits for requests in flight (at most `graceMs`, default 5000), then cuts the rest. */
  close(options?: { graceMs?: number }): Promise<void>;
}

export interface HttpsListenOptions {
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly tls: { readonly certificate: string; readonly privateKey: string };
  readonly port: number;
  /** @default 0.0.0.0 */
  readonly host?: string;
  /** How long a client may take to send its headers, and its whole request (not the response). */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** @default 5000 */
  readonly keepAliveTimeoutMs?: number;
}

export async function listenHttps(options: HttpsListenOptions): Promise<HttpsListener> {
  const server: Server = createServer({ cert: options.tls.certificate, key: options.tls.privateKey, minVersion: 'TLSv1.2' }, options.handler);
  // Slow clients must not hold sockets open.
  server.headersTimeout = options.headersTimeoutMs;
  server.requestTimeout = options.requestTimeoutMs;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    close(closeOptions = {}) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), closeOptions.graceMs ?? 5000);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
