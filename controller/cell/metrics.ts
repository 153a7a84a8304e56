/**
 * The cell's Prometheus series, registered on the registry the caller passes (the controller's own, never
 * prom-client's global one). Heartbeats are the cell's steady load (one per agent per interval), so their
 * handling time is what an operator watches when a parent serves many children.
 */
import { Histogram, type Registry } from 'prom-client';
import type { CellObserver } from './server.js';

export interface CellMetrics extends CellObserver {
  /** Seconds from a heartbeat's bytes reaching the decoder to the registry updated; `_count` counts heartbeats. */
  readonly heartbeatSeconds: Histogram;
}

/** Registers the cell's series on `registry` and returns the observer `startCell({ observer })` takes. */
export function cellMetrics(registry: Registry): CellMetrics {
  const heartbeatSeconds = new Histogram({
    name: 'lattice_cell_heartbeat_handling_seconds',
    help: 'Time from a heartbeat arriving at the cell (before decoding) to the agent registry updated.',
    registers: [registry],
    // Handling is well under a millisecond on an idle cell; the upper buckets show a saturated event loop.
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  });
  return {
    heartbeatSeconds,
    heartbeatHandled: (seconds) => heartbeatSeconds.observe(seconds),
  };
}
