/**
 * The child's own record of its pivot (agent.proto SelfManagement), kept in the Secret
 * `<agent namespace>/lattice-agent-state` so it survives agent restarts: whether the child holds its live
 * Cluster API objects (pivot complete, for which move) and the LatticeCluster generation last applied.
 * Heartbeats report it, so the parent's status follows the child even after a crash on either side; a
 * re-sent MoveComplete is answered from it without unpausing again.
 *
 * Keys (string values): `pivot-complete` ("true" or "false"), `move-id`, `applied-generation` (decimal).
 * Nothing in it is secret; it is a Secret because the agent's RBAC already covers its own Secrets by name.
 */
import { ApiException, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LatticeError, transient } from '../core/errors.js';
import { AGENT } from '../core/flavor/agent.js';
import type { SelfManagement } from '../controller/cell/protocol.js';

export const STATE_KEYS = { pivotComplete: 'pivot-complete', moveId: 'move-id', appliedGeneration: 'applied-generation' } as const;

export interface SelfManagementStore {
  /** The record in memory: undefined until loaded (heartbeats then leave it out). */
  current(): SelfManagement | undefined;
  /** Reads the record once (again after a failure); a missing Secret is the initial record. Throws a transient LatticeError. */
  load(): Promise<SelfManagement>;
  /** Writes the record, then keeps it in memory. Throws a transient LatticeError (memory unchanged). */
  save(next: SelfManagement): Promise<void>;
}

export interface StateStoreDeps {
  readonly core: CoreV1Api;
  readonly namespace: string;
  /** @default AGENT.stateSecret */
  readonly name?: string;
  readonly log: Logger;
}

export const initialSelfManagement = (): SelfManagement => ({ pivotComplete: false, moveId: '', appliedGeneration: 0 });

const httpCode = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);
const text = (secret: V1Secret, key: string): string | undefined => {
  const value = secret.data?.[key];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
};

/** The record in a Secret's data (lenient: an unreadable generation counts as 0, nothing else is guessed). */
export function parseSelfManagement(secret: V1Secret): SelfManagement {
  const generation = Number(text(secret, STATE_KEYS.appliedGeneration) ?? '0');
  return {
    pivotComplete: text(secret, STATE_KEYS.pivotComplete) === 'true',
    moveId: text(secret, STATE_KEYS.moveId) ?? '',
    appliedGeneration: Number.isSafeInteger(generation) && generation >= 0 ? generation : 0,
  };
}

function stateSecret(record: SelfManagement, name: string, namespace: string): V1Secret {
  const data = {
    [STATE_KEYS.pivotComplete]: String(record.pivotComplete),
    [STATE_KEYS.moveId]: record.moveId,
    [STATE_KEYS.appliedGeneration]: String(record.appliedGeneration),
  };
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/name': AGENT.name, 'app.kubernetes.io/managed-by': 'lattice' } },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}

/** The store in the agent's namespace of the child. */
export function secretSelfManagementStore(deps: StateStoreDeps): SelfManagementStore {
  const name = deps.name ?? AGENT.stateSecret;
  const where = `${deps.namespace}/${name}`;
  let record: SelfManagement | undefined;

  const read = async (): Promise<V1Secret | undefined> => {
    try {
      return await deps.core.readNamespacedSecret({ namespace: deps.namespace, name });
    } catch (e) {
      if (httpCode(e) === 404) return undefined;
      throw transient('AgentStateUnreadable', `cannot read Secret ${where} (HTTP ${httpCode(e) ?? 'error'})`);
    }
  };

  return {
    current: () => (record ? { ...record } : undefined),

    async load() {
      if (record) return { ...record };
      const secret = await read();
      record = secret ? parseSelfManagement(secret) : initialSelfManagement();
      deps.log.info({ ...record }, 'agent state loaded');
      return { ...record };
    },

    async save(next) {
      const body = stateSecret(next, name, deps.namespace);
      // Create, or replace on the resourceVersion read just before; a lost race reads again.
      for (let attempt = 1; ; attempt++) {
        try {
          const existing = await read();
          if (existing) {
            await deps.core.replaceNamespacedSecret({ namespace: deps.namespace, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } } });
          } else {
            await deps.core.createNamespacedSecret({ namespace: deps.namespace, body });
          }
          record = { ...next };
          deps.log.info({ ...next }, 'agent state saved');
          return;
        } catch (e) {
          if (e instanceof LatticeError) throw e;
          if (httpCode(e) === 409 && attempt < 3) continue;
          throw transient('AgentStateUnwritable', `cannot write Secret ${where} (HTTP ${httpCode(e) ?? 'error'})`);
        }
      }
    },
  };
}
