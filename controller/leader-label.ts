/**
 * The cell runs on the leader replica only, but a Service cannot see leadership: with two replicas, half of
 * the agents' connections and of the GitOps engine's proxied requests would land on a standby that does not
 * listen. So the leader labels its own Pod `lattice.dev/cell-leader: "true"` while it leads, and the cell's
 * Services select that label. A replica clears the label when it stops leading, and at start-up (a container
 * restarted in the same Pod must not keep the label of a term it no longer holds).
 */
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export const CELL_LEADER_LABEL = 'lattice.dev/cell-leader';

export interface LeaderPodLabel {
  /** Labels the Pod; retried in the background until it holds or `stop` is called. */
  start(): Promise<void>;
  /** Clears the label (best effort: a Pod that is gone has no label). */
  stop(): Promise<void>;
}

export interface LeaderPodLabelOptions {
  readonly core: CoreV1Api;
  /** @default lattice-controller */
  readonly fieldManager?: string;
  readonly namespace: string;
  readonly pod: string;
  readonly log: Logger;
  /** Delay between attempts to label. @default 2000 */
  readonly retryMs?: number;
}

export function leaderPodLabel(options: LeaderPodLabelOptions): LeaderPodLabel {
  let leading = false;
  let attempt: Promise<void> | undefined;
  const set = (value: 'true' | null) => options.core.patchNamespacedPod(
    { name: options.pod, namespace: options.namespace, body: { metadata: { labels: { [CELL_LEADER_LABEL]: value } } }, fieldManager: options.fieldManager ?? 'lattice-controller' },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  const label = async (): Promise<void> => {
    while (leading) {
      try {
        await set('true');
        options.log.info({ pod: options.pod }, 'cell leader label set');
        return;
      } catch (e) {
        // Without the label nothing reaches the cell: keep trying while this replica leads.
        options.log.warn({ pod: options.pod, code: (e as { code?: unknown }).code ?? 'error' }, 'cell leader label not set; retrying');
        await new Promise((r) => setTimeout(r, options.retryMs ?? 2000).unref());
      }
    }
  };
  return {
    start() {
      leading = true;
      attempt = label();
      return Promise.resolve();
    },
    async stop() {
      leading = false;
      await attempt;
      await set(null).then(
        () => options.log.info({ pod: options.pod }, 'cell leader label cleared'),
        (e: unknown) => options.log.warn({ pod: options.pod, code: (e as { code?: unknown }).code ?? 'error' }, 'cell leader label not cleared'),
      );
    },
  };
}

/** Services started and stopped together (start in order, stop in reverse). */
export function together(...services: readonly { start(): Promise<void>; stop(): Promise<void> }[]): { start(): Promise<void>; stop(): Promise<void> } {
  return {
    async start() {
      for (const s of services) await s.start();
    },
    async stop() {
      for (const s of [...services].reverse()) await s.stop();
    },
  };
}
