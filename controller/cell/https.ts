/**
 * The cell's HTTPS listeners (bootstrap endpoint, API proxy) with its serving certificate: one way to bind,
 * time out slow clients and close gracefully.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface HttpsListener {
  readonly port: number;
  /** Stops accepting, ends idle connections, waits for requests in flight (at most `graceMs`, default 5000), then cuts the rest. */
  close(options?: { graceMs?: number }): Promise<void>;
}

export interface HttpsListenOptions {
  /** An HTTP/1.1 handler (express apps), unless `h2Handler` is given. */
  readonly handler?: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * Serve HTTP/2 too (ALPN h2, HTTP/1.1 still accepted), with `h2Handler`, node's HTTP/2 compatibility API
   * handler. Go clients (Argo CD, Flux) then multiplex every request and watch to one host on one connection.
   */
  readonly h2Handler?: (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;
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
  if (options.h2Handler) return listenHttp2(options, options.h2Handler);
  if (!options.handler) throw new Error('listenHttps needs a handler');
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

async function listenHttp2(options: HttpsListenOptions, handler: NonNullable<HttpsListenOptions['h2Handler']>): Promise<HttpsListener> {
  const server = createSecureServer({ cert: options.tls.certificate, key: options.tls.privateKey, minVersion: 'TLSv1.2', allowHTTP1: true }, handler);
  // An HTTP/2 server has no closeAllConnections: the sockets are tracked to end them after the grace period.
  const sockets = new Set<Socket>();
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
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
        const timer = setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, closeOptions.graceMs ?? 5000);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}
