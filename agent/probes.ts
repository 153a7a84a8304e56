/**
 * The agent's probes on port 8080 (templates/agent/deployment.yaml.njk): `/healthz` answers while the
 * process runs its loop (liveness: a wedged process is restarted), `/readyz` only while the stream to
 * the cell is open (readiness: `kubectl get` and Argo CD show whether the child is connected).
 * Bodies carry error codes only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { AgentStatus } from './agent.js';

export function createProbeApp(status: () => AgentStatus): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get('/healthz', (_req, res) => {
    const s = status();
    res.status(s.stopped ? 503 : 200).json({ status: s.stopped ? 'stopping' : 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const s = status();
    res.status(s.connected ? 200 : 503).json({ connected: s.connected, hasIdentity: s.hasIdentity, ...(s.lastError ? { lastError: s.lastError } : {}) });
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'NotFound' });
  });
  return app;
}

export interface ProbeServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startProbeServer(app: express.Express, port: number, host = '0.0.0.0'): Promise<ProbeServer> {
  const server: Server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
