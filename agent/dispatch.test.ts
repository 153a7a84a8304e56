import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { CommandDispatcher, type Outcome } from './dispatch.js';
import type { AgentMessage, DecodedCommand } from '../controller/cell/protocol.js';

const log = pino({ level: 'silent' });
const spec = (id: string): DecodedCommand => ({ id, body: 'specSync', specSync: { cluster: Buffer.from('{}'), generation: 1 } });

describe('command dispatcher', () => {
  it('runs a command once per id, also when the repeat arrives while the first still runs', async () => {
    // GIVEN a slow handler
    let runs = 0;
    let finish: () => void = () => undefined;
    const d = new CommandDispatcher({ log, handlers: { specSync: () => new Promise<Outcome>((r) => { runs += 1; finish = () => r({ ok: true }); }) } });
    // WHEN the same id arrives twice before the handler finishes, and once more after
    const a = d.dispatch(spec('x'));
    const b = d.dispatch(spec('x'));
    finish();
    const c = await d.dispatch(spec('x'));
    // THEN the handler ran once and every delivery gets the same Ack
    expect(await a).toEqual(await b);
    expect(c).toEqual(await a);
    expect(runs).toBe(1);
    expect(d.executions.get('specSync')).toBe(1);
  });

  it('hands the handler the session the command came on; a repeated id gets the Ack without the messages again', async () => {
    // GIVEN a handler that writes one message on its session before answering
    const d = new CommandDispatcher({
      log,
      handlers: { unpivotRequest: async (command, context) => (context.send({ unpivotBatch: { commandId: command.id, batchIndex: 0, totalBatches: 1, namespace: 'capi-dev', objects: [] } }) ? { ok: true, unpivot: { objects: 0, batches: 1 } } : { ok: false, code: 'Failed', error: 'stream ended', retryable: true }) },
    });
    const first: AgentMessage[] = [];
    const second: AgentMessage[] = [];
    const request = (id: string): DecodedCommand => ({ id, body: 'unpivotRequest', unpivotRequest: { namespace: 'capi-dev' } });
    // WHEN it is dispatched on one session, then repeated on another
    const ack = await d.dispatch(request('u'), { send: (m) => first.push(m) > 0 });
    const repeat = await d.dispatch(request('u'), { send: (m) => second.push(m) > 0 });
    // THEN the message went on the first session only, and both deliveries get the same Ack
    expect(first).toHaveLength(1);
    expect(second).toEqual([]);
    expect(repeat).toEqual(ack);
    expect(ack).toMatchObject({ ok: true, unpivot: { batches: 1 } });
    // AND without a session (a direct dispatch) nothing can be sent
    expect(await d.dispatch(request('v'))).toMatchObject({ ok: false, retryable: true });
  });

  it('answers kinds it does not handle, and kinds it does not know, with Unsupported', async () => {
    const d = new CommandDispatcher({ log, handlers: {} });
    expect(await d.dispatch({ id: 'm', body: 'moveBatch' })).toMatchObject({ commandId: 'm', ok: false, errorCode: 'Unsupported', retryable: false });
    expect(await d.dispatch({ id: 'n' })).toMatchObject({ commandId: 'n', ok: false, errorCode: 'Unsupported' });
    expect(d.capabilities).toEqual([]);
  });

  it('forgets retryable failures, so a re-send runs again, but remembers final ones', async () => {
    let runs = 0;
    const d = new CommandDispatcher({ log, handlers: { specSync: async () => { runs += 1; if (runs === 1) throw new Error('flaky'); return { ok: false, code: 'Invalid', error: 'bad' }; } } });
    const first = await d.dispatch(spec('r'));
    expect(first).toMatchObject({ ok: false, errorCode: 'Failed', retryable: true });
    // A thrown error is reported without its message (it may carry anything).
    expect(first.error).not.toContain('flaky');
    await Promise.resolve();
    expect(await d.dispatch(spec('r'))).toMatchObject({ ok: false, errorCode: 'Invalid' });
    expect(await d.dispatch(spec('r'))).toMatchObject({ ok: false, errorCode: 'Invalid' });
    expect(runs).toBe(2);
  });

  it('remembers a bounded number of ids and refuses unusable ones', async () => {
    let runs = 0;
    const d = new CommandDispatcher({ log, rememberIds: 2, handlers: { specSync: async () => { runs += 1; return { ok: true }; } } });
    for (const id of ['a', 'b', 'c', 'a']) await d.dispatch(spec(id));
    // 'a' was the oldest of three and was forgotten, so it ran again
    expect(runs).toBe(4);
    expect(await d.dispatch(spec(''))).toMatchObject({ ok: false, errorCode: 'Invalid' });
    expect(await d.dispatch(spec('x'.repeat(200)))).toMatchObject({ ok: false, errorCode: 'Invalid' });
  });
});
