/**
 * Commands from the cell, handled idempotently by id: the cell re-sends a command with the same id
 * after a timeout or a reconnect, and the agent must not do the work twice. The dispatcher remembers the
 * outcome of the last `rememberIds` commands; a repeat of one of them (or of one still running) is
 * acknowledged with the same outcome without running the handler again. A failure marked retryable is
 * forgotten, so re-sending it runs it again: that is what the cell re-sends it for.
 *
 * Kinds without a handler (the M9 commands for now, and kinds newer than this agent) are answered
 * with error code "Unsupported"; the Hello's capabilities list the kinds that have one.
 *
 * A handler also gets the session the command came on (`CommandContext.send`), for commands answered with
 * messages before their Ack (an unpivotRequest streams UnpivotBatch messages). A repeated id is acknowledged
 * without running the handler again, so without those messages: a command whose messages are needed again
 * must be sent with a new id (the cell does so for every unpivot attempt).
 */
import type { Logger } from 'pino';
import {
  AckCode, COMMAND_KINDS, type Ack, type AgentMessage, type CommandKind, type DecodedCommand, type MoveBatchResult, type MoveCompleteResult, type ReleaseResult,
  type SpecSyncResult, type UnpivotResult,
} from '../controller/cell/protocol.js';

/** What a handler returns: the Ack without its id. */
export type Outcome =
  | {
    readonly ok: true; readonly moveBatch?: MoveBatchResult; readonly moveComplete?: MoveCompleteResult;
    readonly unpivot?: UnpivotResult; readonly specSync?: SpecSyncResult; readonly release?: ReleaseResult;
  }
  /** A failed moveBatch still says which objects were received (the cell keeps their uids). */
  | { readonly ok: false; readonly code: AckCode; readonly error: string; readonly retryable?: boolean; readonly moveBatch?: MoveBatchResult };

/** The session a command came on. */
export interface CommandContext {
  /**
   * Writes a message on that session's stream, before the command's Ack. False when the session has ended
   * (the message was not written; the cell will not get the Ack either).
   */
  send(message: AgentMessage): boolean;
  /**
   * When the stream's send buffer is full (the parent reads slower than the agent writes), resolves once it
   * has drained; otherwise undefined. Streaming writers wait on it so the agent's memory stays bounded.
   */
  backpressure?(): Promise<void> | undefined;
}

/** For commands dispatched outside a session (tests, direct calls): nothing can be sent. */
export const NO_SESSION: CommandContext = { send: () => false };

export type CommandHandler = (command: DecodedCommand, context: CommandContext) => Promise<Outcome>;
export type CommandHandlers = Partial<Record<CommandKind, CommandHandler>>;

export interface DispatcherOptions {
  readonly handlers: CommandHandlers;
  /** @default 1024 */
  readonly rememberIds?: number;
  readonly log: Logger;
}

const MAX_ID_CHARS = 128;

function toAck(id: string, o: Outcome): Ack {
  if (o.ok) {
    return {
      commandId: id, ok: true, errorCode: '', error: '', retryable: false,
      ...(o.moveBatch ? { moveBatch: o.moveBatch } : {}),
      ...(o.moveComplete ? { moveComplete: o.moveComplete } : {}),
      ...(o.unpivot ? { unpivot: o.unpivot } : {}),
      ...(o.specSync ? { specSync: o.specSync } : {}),
      ...(o.release ? { release: o.release } : {}),
    };
  }
  return { commandId: id, ok: false, errorCode: o.code, error: o.error, retryable: o.retryable ?? false, ...(o.moveBatch ? { moveBatch: o.moveBatch } : {}) };
}

export class CommandDispatcher {
  private readonly outcomes = new Map<string, Promise<Ack>>();
  /** How many times each handler ran (tests check "handled once"; also a metric source). */
  readonly executions = new Map<CommandKind, number>();

  constructor(private readonly options: DispatcherOptions) {}

  /** The command kinds this agent handles (Hello capabilities). */
  get capabilities(): string[] {
    return COMMAND_KINDS.filter((k) => this.options.handlers[k] !== undefined);
  }

  /** Handles a command (once per id) and resolves to the Ack to send. Never rejects. */
  dispatch(command: DecodedCommand, context: CommandContext = NO_SESSION): Promise<Ack> {
    const id = command.id;
    if (id === '' || id.length > MAX_ID_CHARS) {
      return Promise.resolve(toAck(id.slice(0, MAX_ID_CHARS), { ok: false, code: AckCode.Invalid, error: `a command id must have 1 to ${MAX_ID_CHARS} characters` }));
    }
    const known = this.outcomes.get(id);
    if (known) {
      this.options.log.debug({ commandId: id }, 'command repeated; acknowledging again');
      return known;
    }
    const run = this.run(command, context);
    this.outcomes.set(id, run);
    void run.then((ack) => {
      if (!ack.ok && ack.retryable) this.outcomes.delete(id);
    });
    this.forgetOldest();
    return run;
  }

  private async run(command: DecodedCommand, context: CommandContext): Promise<Ack> {
    const kind = command.body;
    const handler = kind ? this.options.handlers[kind] : undefined;
    if (!kind || !handler) {
      this.options.log.info({ commandId: command.id, kind: kind ?? 'unknown' }, 'command unsupported');
      return toAck(command.id, { ok: false, code: AckCode.Unsupported, error: `this agent does not handle ${kind ?? 'this'} commands` });
    }
    this.executions.set(kind, (this.executions.get(kind) ?? 0) + 1);
    try {
      const outcome = await handler(command, context);
      this.options.log.info({ commandId: command.id, kind, ok: outcome.ok }, 'command handled');
      return toAck(command.id, outcome);
    } catch (e) {
      this.options.log.error({ commandId: command.id, kind, err: e instanceof Error ? e.name : 'error' }, 'command handler failed');
      return toAck(command.id, { ok: false, code: AckCode.Failed, error: `the ${kind} handler failed; see the agent logs`, retryable: true });
    }
  }

  /** Map iteration order is insertion order: the first entries are the oldest. */
  private forgetOldest(): void {
    const limit = this.options.rememberIds ?? 1024;
    for (const id of this.outcomes.keys()) {
      if (this.outcomes.size <= limit) return;
      this.outcomes.delete(id);
    }
  }
}
