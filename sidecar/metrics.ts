/** The sidecar's Prometheus metrics, in a registry of its own (nothing global, so tests can build many). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface SidecarMetrics {
  readonly registry: Registry;
  readonly renderDuration: Histogram<'result'>;
  readonly artifacts: Gauge;
  readonly lastSuccess: Gauge;
  readonly errors: Counter<'code'>;
  readonly statusWrites: Counter;
}

export function createSidecarMetrics(options: { processMetrics?: boolean } = {}): SidecarMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  return {
    registry,
    renderDuration: new Histogram({
      name: 'lattice_sidecar_render_duration_seconds', help: 'Time to validate, render and pack one commit, by result (success, invalid).',
      labelNames: ['result'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry],
    }),
    artifacts: new Gauge({ name: 'lattice_sidecar_artifacts', help: 'Artifacts in the current set (the index plus one per cluster).', registers: [registry] }),
    lastSuccess: new Gauge({ name: 'lattice_sidecar_last_success_timestamp_seconds', help: 'When a commit was last rendered successfully (Unix time).', registers: [registry] }),
    errors: new Counter({ name: 'lattice_sidecar_errors_total', help: 'Failures by code (FetchFailed, InvalidSpec, PublishFailed, ...).', labelNames: ['code'], registers: [registry] }),
    statusWrites: new Counter({ name: 'lattice_sidecar_status_writes_total', help: 'ExternalArtifact objects and status subresources written.', registers: [registry] }),
  };
}
