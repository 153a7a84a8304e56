/**
 * The controller's HTTP server, built without listening (CONVENTIONS "Servers are factories"): the kubelet's
 * probes and Prometheus. `/healthz` answers while the process serves; `/readyz` is 503 while this replica
 * leads but a required watch has not listed or is failing (a standby is ready: it must not block rollouts);
 * `/metrics` is the controller's own registry.
 */
import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import type { ControllerHealth } from './controller.js';

export interface ControllerAppDeps {
  readonly health: () => ControllerHealth;
  readonly registry: Registry;
  /** Refreshes read-on-scrape gauges before `/metrics` renders. */
  readonly beforeScrape?: () => void;
}

export function createControllerApp(deps: ControllerAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const h = deps.health();
    res.status(h.ready ? 200 : 503).json({ ready: h.ready, leader: h.leader, watches: h.watches });
  });
  app.get('/metrics', async (_req, res) => {
    deps.beforeScrape?.();
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  return app;
}
