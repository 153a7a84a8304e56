import { describe, expect, it } from 'vitest';
import { cellProtocol, COMMAND_KINDS, commandKindOf, type AgentMessage, type CellMessage, type CommandBody } from './protocol.js';

const connect = () => {
  const method = cellProtocol().service.Connect;
  if (!method) throw new Error('no Connect');
  return method;
};

// Encodes with the .proto and decodes again: a TypeScript field the .proto does not have is dropped on
// the wire, so the round trip fails for any drift between protocol.ts and agent.proto.
const agentRoundTrip = (m: AgentMessage): unknown => connect().requestDeserialize(connect().requestSerialize(m));
const cellRoundTrip = (m: CellMessage): unknown => connect().responseDeserialize(connect().responseSerialize(m));

describe('protocol', () => {
  it('round-trips a Hello and a full Heartbeat with camelCase fields and numeric longs', () => {
    // GIVEN a heartbeat with every health field set
    const health = {
      nodes: { ready: 3, total: 4 }, controlPlane: { ready: 1, total: 1 },
      pools: [{ name: 'general', ready: 2, total: 3 }],
      addons: [{ namespace: 'cilium', ready: 1, total: 2, notReady: [{ kind: 'DaemonSet', name: 'cilium', ready: 3, desired: 4 }] }],
      providers: [{ name: 'cluster-api', namespace: 'capi-system', ready: 1, total: 1 }],
      errors: ['statefulsets: 403'],
    };
    // WHEN it is encoded and decoded
    const selfManagement = { pivotComplete: true, moveId: 'm-1', appliedGeneration: 4 };
    const hb = agentRoundTrip({ heartbeat: { sentAtUnixMs: 1_760_000_000_123, sequence: 7, health, selfManagement } });
    const hello = agentRoundTrip({ hello: { cluster: 'dev', agentVersion: '0.1.0', protocolVersion: 1, capabilities: ['specSync'], kubernetesVersion: 'v1.34.1' } });
    // THEN every field survives, int64 as a number, and the oneof names its member
    expect(hb).toEqual({ payload: 'heartbeat', heartbeat: { sentAtUnixMs: 1_760_000_000_123, sequence: 7, health, selfManagement } });
    // An older agent sends none: it decodes as null, never as a made-up record.
    expect(agentRoundTrip({ heartbeat: { sentAtUnixMs: 1, sequence: 1, health } })).toMatchObject({ heartbeat: { selfManagement: null } });
    expect(hello).toEqual({ payload: 'hello', hello: { cluster: 'dev', agentVersion: '0.1.0', protocolVersion: 1, capabilities: ['specSync'], kubernetesVersion: 'v1.34.1' } });
  });

  it('round-trips Acks with results, unpivot batches and proxy responses', () => {
    const manifest = Buffer.from('{"kind":"Cluster"}');
    const ack = { commandId: 'c1', ok: false, errorCode: 'Failed', error: 'x', retryable: true, moveBatch: { mappings: [{ sourceUid: 'a', targetUid: 'b' }], errors: [{ sourceUid: 'c', message: 'm', retryable: false }] } };
    expect(agentRoundTrip({ ack })).toEqual({ payload: 'ack', ack: { ...ack, result: 'moveBatch' } });
    const batch = { commandId: 'u1', batchIndex: 0, totalBatches: 2, namespace: 'capi-dev', objects: [{ sourceUid: 'a', manifest, owners: [{ sourceUid: 'o', apiVersion: 'v1', kind: 'K', name: 'n', controller: true, blockOwnerDeletion: false }] }] };
    expect(agentRoundTrip({ unpivotBatch: batch })).toEqual({ payload: 'unpivotBatch', unpivotBatch: batch });
    const proxy = { requestId: 'p', statusCode: 200, headers: [{ name: 'content-type', value: 'application/json' }], body: Buffer.from('{}'), sequence: 0, end: true, error: '' };
    expect(agentRoundTrip({ proxyResponse: proxy })).toEqual({ payload: 'proxyResponse', proxyResponse: proxy });
  });

  it('round-trips every command kind and Settings', () => {
    const bodies: CommandBody[] = [
      { moveBatch: { moveId: 'm', batchIndex: 1, totalBatches: 3, targetNamespace: 'capi-dev', objects: [] } },
      { moveComplete: { moveId: 'm', targetNamespace: 'capi-dev', manifests: [Buffer.from('{}')] } },
      { specSync: { cluster: Buffer.from('{"kind":"LatticeCluster"}'), generation: 12 } },
      { unpivotRequest: { namespace: 'capi-dev' } },
      { proxyRequest: { verb: 'GET', path: '/api/v1/nodes', query: 'limit=1', headers: [], body: Buffer.alloc(0), timeoutMs: 5000 } },
      { proxyCancel: { requestId: 'p' } },
      { releaseCopies: { namespace: 'capi-dev' } },
    ];
    // Every kind is covered once.
    expect(bodies.map(commandKindOf)).toEqual([...COMMAND_KINDS]);
    for (const body of bodies) {
      const kind = commandKindOf(body);
      expect(cellRoundTrip({ command: { id: `id-${kind}`, ...body } })).toEqual({ payload: 'command', command: { id: `id-${kind}`, body: kind, ...body } });
    }
    expect(cellRoundTrip({ settings: { heartbeatIntervalMs: 250, protocolVersion: 1, trustBundle: 'pem' } })).toEqual({ payload: 'settings', settings: { heartbeatIntervalMs: 250, protocolVersion: 1, trustBundle: 'pem' } });
    const renew = { requestId: 'r', certificate: 'c', caBundle: 'b', error: '' };
    expect(cellRoundTrip({ renewResponse: renew })).toEqual({ payload: 'renewResponse', renewResponse: renew });
    expect(agentRoundTrip({ renewRequest: { requestId: 'r', csr: 'pem' } })).toEqual({ payload: 'renewRequest', renewRequest: { requestId: 'r', csr: 'pem' } });
  });

  it('decodes a command of a kind this build does not know as a command without body', () => {
    // GIVEN a command whose only field is an id (what an unknown oneof member decodes to)
    const decoded = cellRoundTrip({ command: { id: 'x' } as never });
    // THEN it still has its id, so the agent can answer Unsupported for it
    expect(decoded).toEqual({ payload: 'command', command: { id: 'x' } });
  });
});
