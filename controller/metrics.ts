/**
 * The controller's Prometheus metrics, on a registry of its own (never prom-client's global one, so two
 * controllers in one process, as in tests, do not collide). Names follow Prometheus conventions
 * (`_total` counters, `_seconds` histograms); labels have bounded values.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface ControllerMetrics {
  readonly registry: Registry;
  /** result: success, waiting, stalled, error. */
  readonly reconciles: Counter<'result'>;
  readonly reconcileSeconds: Histogram<'result'>;
  /**
   * Reconciles by how they ended: `cached` when the read-only pass over the watches' caches found nothing to
   * do (no request made), `cached-then-live` when it gave way to a pass against the API server.
   */
  readonly reconcilePasses: Counter<'pass'>;
  /** Status subresource writes (the no-churn rule: zero when nothing changed). */
  readonly statusWrites: Counter;
  readonly watchRestarts: Counter<'watch'>;
  readonly watchHealthy: Gauge<'watch'>;
  readonly queueDepth: Gauge;
  readonly leader: Gauge;
  readonly clusters: Gauge<'phase'>;
  /** The cell's API proxy (M9): answers by HTTP code (the cluster is not a label: unbounded over time). */
  readonly proxyRequests: Counter<'code' | 'verb' | 'watch'>;
}

export function createMetrics(): ControllerMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    reconciles: new Counter({ name: 'lattice_controller_reconciles_total', help: 'Reconciles of LatticeClusters by result.', labelNames: ['result'], registers }),
    reconcileSeconds: new Histogram({
      name: 'lattice_controller_reconcile_duration_seconds', help: 'Time spent reconciling one LatticeCluster.', labelNames: ['result'], registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    reconcilePasses: new Counter({ name: 'lattice_controller_reconcile_passes_total', help: 'Reconciles settled from the watches\' caches alone (cached) or that went on to the API server (cached-then-live).', labelNames: ['pass'], registers }),
    statusWrites: new Counter({ name: 'lattice_controller_status_writes_total', help: 'Writes of LatticeCluster status (only when it changed).', registers }),
    watchRestarts: new Counter({ name: 'lattice_controller_watch_restarts_total', help: 'Watches restarted after an error.', labelNames: ['watch'], registers }),
    watchHealthy: new Gauge({ name: 'lattice_controller_watch_healthy', help: '1 when the watch has listed and is not failing.', labelNames: ['watch'], registers }),
    queueDepth: new Gauge({ name: 'lattice_controller_queue_depth', help: 'Clusters waiting for a worker.', registers }),
    leader: new Gauge({ name: 'lattice_controller_leader', help: '1 while this replica holds the leader Lease.', registers }),
    clusters: new Gauge({ name: 'lattice_controller_clusters', help: 'LatticeClusters by phase, as last written.', labelNames: ['phase'], registers }),
    proxyRequests: new Counter({ name: 'lattice_cell_proxy_requests_total', help: 'Requests the cell\'s Kubernetes API proxy answered, by HTTP code, verb and whether a watch.', labelNames: ['code', 'verb', 'watch'], registers }),
  };
}
