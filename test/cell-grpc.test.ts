/**
 * The cell's gRPC server over real mutual TLS on loopback: who is admitted, one stream per cluster,
 * staleness, and commands with their Acks. Raw protocol clients play misbehaving agents; the agent's own
 * session code plays the well-behaved one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { pino } from 'pino';
import { LatticeError } from '../core/errors.js';
import { createCa, issueServingCertificate, loadSigningCa } from '../controller/cell/pki.js';
import { emptyHealth, type Health } from '../controller/cell/protocol.js';
import { createCellServer, type AgentEvent, type CellServer, type CellServerOptions } from '../controller/cell/server.js';
import { issueTestIdentity, RawAgent, recordingLogger } from '../controller/cell/testing.js';
import { CommandDispatcher } from '../agent/dispatch.js';
import { runSession } from '../agent/stream.js';
import { eventually } from '../sim/apiserver/testing.js';

const now0 = new Date();
const caPair = await createCa({ now: now0 });
const ca = await loadSigningCa(caPair);
const serving = await issueServingCertificate({ ca, hosts: ['127.0.0.1'], now: now0 });
const devIdentity = await issueTestIdentity(ca, 'dev');
const silent = pino({ level: 'silent' });

const cells: CellServer[] = [];
const raws: RawAgent[] = [];
const sessions: AbortController[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.abort();
  for (const r of raws.splice(0)) r.close();
  await Promise.all(cells.splice(0).map((c) => c.close({ graceMs: 100 })));
});

async function startCell(options: Partial<CellServerOptions> = {}): Promise<{ cell: CellServer; endpoint: string; events: AgentEvent[] }> {
  const cell = createCellServer({ tls: { ...serving, clientCaBundle: caPair.certificate }, log: silent, ...options });
  cells.push(cell);
  const events: AgentEvent[] = [];
  cell.subscribe((e) => events.push(e));
  const port = await cell.listen(0, '127.0.0.1');
  return { cell, endpoint: `127.0.0.1:${port}`, events };
}

function raw(endpoint: string, identity = devIdentity): RawAgent {
  const r = new RawAgent(endpoint, { caBundle: caPair.certificate, ...identity });
  raws.push(r);
  return r;
}

const health = (ready: number): Health => ({ ...emptyHealth(), nodes: { ready, total: 3 } });

describe('cell gRPC server', () => {
  it('admits an agent whose certificate names the cluster of its Hello, and records its heartbeats', async () => {
    // GIVEN a cell
    const { cell, endpoint, events } = await startCell({ heartbeatIntervalMs: 5000 });
    // WHEN the dev agent says hello and sends a heartbeat
    const agent = raw(endpoint);
    agent.hello('dev');
    await eventually(() => expect(agent.accepted).toBe(true));
    agent.heartbeat(health(2));
    // THEN it got its settings, and the registry has it with its health
    expect(agent.received[0]).toEqual({ payload: 'settings', settings: { heartbeatIntervalMs: 5000, protocolVersion: 1, trustBundle: '' } });
    await eventually(() => expect(cell.get('dev')?.health?.nodes).toEqual({ ready: 2, total: 3 }));
    const info = cell.get('dev');
    expect(info?.certificate.cluster).toBe('dev');
    expect(info?.agentVersion).toBe('test');
    expect(info?.lastHeartbeat).toBeInstanceOf(Date);
    expect(events.map((e) => e.type)).toEqual(['connected', 'heartbeat']);
    expect(cell.list().map((a) => a.cluster)).toEqual(['dev']);
  });

  it('ends a stream whose certificate names another cluster with PERMISSION_DENIED and records nothing', async () => {
    // GIVEN a cell and the dev agent's certificate
    const { cell, endpoint, events } = await startCell();
    const { log, lines } = recordingLogger();
    const strict = await startCell({ log });
    // WHEN it claims to be prod
    const impostor = raw(endpoint);
    impostor.hello('prod');
    const impostor2 = raw(strict.endpoint);
    impostor2.hello('prod');
    // THEN the stream ends with PERMISSION_DENIED, without Settings, and nothing was recorded
    await eventually(() => expect(impostor.status?.code).toBe(GrpcStatus.PERMISSION_DENIED));
    await eventually(() => expect(impostor2.status?.code).toBe(GrpcStatus.PERMISSION_DENIED));
    expect(impostor.accepted).toBe(false);
    expect(cell.get('prod')).toBeUndefined();
    expect(cell.get('dev')).toBeUndefined();
    expect(events).toEqual([]);
    expect(lines.some((l) => l.includes('certificate names another cluster'))).toBe(true);
  });

  it('refuses a stream that does not begin with Hello', async () => {
    const { cell, endpoint } = await startCell();
    const agent = raw(endpoint);
    // WHEN the first message is a heartbeat
    agent.heartbeat(health(1));
    // THEN INVALID_ARGUMENT, nothing recorded
    await eventually(() => expect(agent.status?.code).toBe(GrpcStatus.INVALID_ARGUMENT));
    expect(cell.list()).toEqual([]);
  });

  it('answers a renewal request with Unsupported until renewal is implemented', async () => {
    const { endpoint } = await startCell();
    const agent = raw(endpoint);
    agent.hello('dev');
    await eventually(() => expect(agent.accepted).toBe(true));
    agent.send({ renewRequest: { requestId: 'r-1', csr: 'pem' } });
    await eventually(() => expect(agent.received.find((m) => m.payload === 'renewResponse')?.renewResponse).toEqual({ requestId: 'r-1', certificate: '', caBundle: '', error: 'Unsupported' }));
  });

  it('refuses a client certificate from another CA during the handshake', async () => {
    // GIVEN a certificate for dev signed by a CA the cell does not trust
    const { cell, endpoint, events } = await startCell();
    const rogueCa = await loadSigningCa(await createCa({ now: now0 }));
    const agent = raw(endpoint, await issueTestIdentity(rogueCa, 'dev'));
    // WHEN it connects
    agent.hello('dev');
    // THEN the call fails before any stream exists
    await eventually(() => expect(agent.status?.code).toBe(GrpcStatus.UNAVAILABLE));
    expect(cell.list()).toEqual([]);
    expect(events).toEqual([]);
  });

  it('lets a second connection of a cluster replace the first without reporting a disconnect', async () => {
    // GIVEN a connected dev agent
    const { cell, endpoint, events } = await startCell();
    const first = raw(endpoint);
    first.hello('dev');
    await eventually(() => expect(cell.get('dev')).toBeDefined());
    const firstId = cell.get('dev')?.connectionId;
    // WHEN another stream for dev is accepted
    const second = raw(endpoint);
    second.hello('dev');
    await eventually(() => expect(second.accepted).toBe(true));
    // THEN the first is ended with ABORTED, the registry holds the second, and no disconnect was reported
    await eventually(() => expect(first.status?.code).toBe(GrpcStatus.ABORTED));
    expect(cell.get('dev')?.connectionId).not.toBe(firstId);
    expect(events.map((e) => [e.type, e.type === 'connected' ? e.replaced : undefined])).toEqual([['connected', false], ['connected', true]]);
    // AND heartbeats of the second still count
    second.heartbeat(health(3));
    await eventually(() => expect(cell.get('dev')?.heartbeats).toBe(1));
  });

  it('disconnects an agent that stays silent for three heartbeat intervals', async () => {
    // GIVEN a cell on an injected clock, 10 s heartbeats, and two agents: one talks, one is silent
    const clock = { now: new Date('2026-01-01T00:00:00Z') };
    const { cell, endpoint, events } = await startCell({ now: () => clock.now, heartbeatIntervalMs: 10_000, sweepIntervalMs: 10 });
    const talker = raw(endpoint, await issueTestIdentity(ca, 'talker'));
    const quiet = raw(endpoint);
    talker.hello('talker');
    quiet.hello('dev');
    await eventually(() => expect(cell.list()).toHaveLength(2));
    // WHEN 40 s pass in which only the talker sends heartbeats, every 20 s
    const advance = async (ms: number, beat: number) => {
      clock.now = new Date(clock.now.getTime() + ms);
      talker.heartbeat(health(1), beat);
      await eventually(() => expect(cell.get('talker')?.heartbeats).toBe(beat));
    };
    await advance(20_000, 1);
    expect(cell.get('dev')).toBeDefined();
    await advance(11_000, 2);
    // THEN the silent one is dropped (stale) and its stream ended, the talker stays
    await eventually(() => expect(cell.get('dev')).toBeUndefined());
    await eventually(() => expect(quiet.status?.code).toBe(GrpcStatus.UNAVAILABLE));
    expect(events.filter((e) => e.type === 'disconnected').map((e) => [e.cluster, e.type === 'disconnected' ? e.reason : ''])).toEqual([['dev', 'stale']]);
    expect(cell.get('talker')).toBeDefined();
  });

  it('round-trips commands idempotently: the same id twice is handled once and acknowledged twice', async () => {
    // GIVEN an agent session whose specSync handler counts its runs
    const { cell, endpoint } = await startCell();
    let runs = 0;
    const dispatcher = new CommandDispatcher({ log: silent, handlers: { specSync: async () => { runs += 1; return { ok: true }; } } });
    const abort = new AbortController();
    sessions.push(abort);
    void runSession({
      endpoint, tls: { ...devIdentity, caBundle: caPair.certificate }, cluster: 'dev', agentVersion: 'test', kubernetesVersion: '',
      health: { collect: async () => emptyHealth() }, dispatcher, heartbeatIntervalMs: 1000, now: () => new Date(), log: silent,
      onConnected: () => undefined, onDisconnected: () => undefined,
    }, abort.signal);
    await eventually(() => expect(cell.get('dev')?.capabilities).toEqual(['specSync']));
    const body = { specSync: { cluster: Buffer.from('{}'), generation: 1 } };
    // WHEN the cell sends command c-1, then re-sends it (as after a lost Ack), and sends an unsupported kind
    const first = await cell.send('dev', body, { id: 'c-1' });
    const again = await cell.send('dev', body, { id: 'c-1' });
    const unsupported = await cell.send('dev', { moveBatch: { moveId: 'm', batchIndex: 0, totalBatches: 1, targetNamespace: 'capi-dev', objects: [] } }, { id: 'c-2' });
    // THEN both deliveries of c-1 are acknowledged ok, the handler ran once, and moveBatch is refused as Unsupported
    expect(first).toMatchObject({ commandId: 'c-1', ok: true });
    expect(again).toMatchObject({ commandId: 'c-1', ok: true });
    expect(runs).toBe(1);
    expect(unsupported).toMatchObject({ commandId: 'c-2', ok: false, errorCode: 'Unsupported' });
  });

  it('rejects a send with a LatticeError when there is no agent, no Ack in time, or the cell closes', async () => {
    const { cell, endpoint } = await startCell({ commandTimeoutMs: 100 });
    const body = { unpivotRequest: { namespace: 'capi-dev' } };
    // no agent: waiting
    const none = await cell.send('dev', body).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(LatticeError);
    expect([(none as LatticeError).kind, (none as LatticeError).code]).toEqual(['waiting', 'AgentNotConnected']);
    // an agent that never acks: transient timeout
    const mute = raw(endpoint);
    mute.hello('dev');
    await eventually(() => expect(cell.get('dev')).toBeDefined());
    const late = await cell.send('dev', body, { id: 'x' }).catch((e: unknown) => e);
    expect([(late as LatticeError).kind, (late as LatticeError).code]).toEqual(['transient', 'AgentCommandTimeout']);
    expect(mute.received.some((m) => m.payload === 'command' && m.command?.id === 'x' && m.command.body === 'unpivotRequest')).toBe(true);
    // the cell closes with a command outstanding: CellClosed, and the agent is told UNAVAILABLE
    const pending = cell.send('dev', body, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    await cell.close({ graceMs: 100 });
    expect(((await pending) as LatticeError).code).toBe('CellClosed');
    await eventually(() => expect(mute.status?.code).toBe(GrpcStatus.UNAVAILABLE));
  });
});
