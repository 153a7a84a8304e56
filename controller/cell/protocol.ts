/**
 * The agent <-> cell protocol in TypeScript: loads proto/lattice/agent/v1/agent.proto (shipped with the
 * package) with @grpc/proto-loader and gives both ends the same message types. The cell (controller/cell)
 * and the agent (agent/) both import this module, so there is one loader configuration and one set of
 * types; a round-trip test (protocol.test.ts) keeps the types and the .proto in step.
 *
 * Loader options, and why:
 * - keepCase false: fields are camelCase in TypeScript (`agentVersion`), as protobuf's JSON mapping.
 * - longs Number: every 64-bit field is a Unix-millisecond time or a generation, far below 2^53.
 * - enums String, defaults true, arrays true: decoded messages always have every scalar and list field,
 *   so readers never test for undefined; unset message fields decode as null.
 * - oneofs true: a decoded oneof carries a virtual field naming the member that is set (`payload`,
 *   `body`, `result`), which is what `switch` statements read.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeClientConstructor, Metadata, type CallOptions, type Client, type ClientDuplexStream, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';

/** The protocol version both ends speak; Hello and Settings carry it. */
export const PROTOCOL_VERSION = 1;

/** Where the .proto lives in the package (the image must ship it: `COPY proto proto`). */
export const PROTO_FILE = 'proto/lattice/agent/v1/agent.proto';
export const SERVICE_NAME = 'lattice.agent.v1.Cell';

export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};

/** Room for a move batch of many objects; both ends set it (gRPC's default receive limit is 4 MiB). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

// --- Agent -> cell ------------------------------------------------------------------------------

export interface Count {
  ready: number;
  total: number;
}

export interface PoolHealth {
  name: string;
  ready: number;
  total: number;
}

export interface WorkloadHealth {
  kind: string;
  name: string;
  ready: number;
  desired: number;
}

export interface NamespaceHealth {
  namespace: string;
  ready: number;
  total: number;
  notReady: WorkloadHealth[];
}

export interface ProviderHealth {
  name: string;
  namespace: string;
  ready: number;
  total: number;
}

/** The child as its agent sees it (field docs in agent.proto). */
export interface Health {
  nodes: Count;
  controlPlane: Count;
  pools: PoolHealth[];
  addons: NamespaceHealth[];
  providers: ProviderHealth[];
  errors: string[];
}

export interface Hello {
  cluster: string;
  agentVersion: string;
  protocolVersion: number;
  capabilities: string[];
  kubernetesVersion: string;
}

/** The child's record of its pivot and spec syncs (agent.proto SelfManagement). */
export interface SelfManagement {
  pivotComplete: boolean;
  moveId: string;
  appliedGeneration: number;
}

export interface Heartbeat {
  sentAtUnixMs: number;
  sequence: number;
  health: Health | null;
  selfManagement?: SelfManagement | null;
}

export interface UidMapping {
  sourceUid: string;
  targetUid: string;
}

export interface MoveObjectError {
  sourceUid: string;
  message: string;
  retryable: boolean;
}

export interface MoveBatchResult {
  mappings: UidMapping[];
  errors: MoveObjectError[];
}

export interface MoveCompleteResult {
  unpaused: number;
}

export interface UnpivotResult {
  objects: number;
  batches: number;
}

export interface SpecSyncResult {
  appliedGeneration: number;
}

export interface ReleaseResult {
  deleted: number;
}

/** Stable codes of a failed Ack (agent.proto `Ack.error_code`). */
export const AckCode = {
  Unsupported: 'Unsupported',
  Invalid: 'Invalid',
  Failed: 'Failed',
  /** A move command reached a cluster that already manages itself: nothing was written. */
  AlreadyPivoted: 'AlreadyPivoted',
} as const;
export type AckCode = (typeof AckCode)[keyof typeof AckCode];

export interface Ack {
  commandId: string;
  ok: boolean;
  errorCode: string;
  error: string;
  retryable: boolean;
  moveBatch?: MoveBatchResult | null;
  moveComplete?: MoveCompleteResult | null;
  unpivot?: UnpivotResult | null;
  specSync?: SpecSyncResult | null;
  release?: ReleaseResult | null;
  /** Set on decode: which result member is present. */
  result?: 'moveBatch' | 'moveComplete' | 'unpivot' | 'specSync' | 'release';
}

export interface SourceOwnerRef {
  sourceUid: string;
  apiVersion: string;
  kind: string;
  name: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export interface MoveObject {
  sourceUid: string;
  manifest: Buffer;
  owners: SourceOwnerRef[];
}

export interface UnpivotBatch {
  commandId: string;
  batchIndex: number;
  totalBatches: number;
  namespace: string;
  objects: MoveObject[];
}

export interface Header {
  name: string;
  value: string;
}

export interface ProxyResponse {
  requestId: string;
  statusCode: number;
  headers: Header[];
  body: Buffer;
  sequence: number;
  end: boolean;
  error: string;
}

/** Reserved for certificate renewal over the stream (agent.proto). */
export interface RenewRequest {
  requestId: string;
  csr: string;
}

/** What the agent writes: exactly one payload member. */
export type AgentMessage =
  | { hello: Hello }
  | { heartbeat: Heartbeat }
  | { ack: Ack }
  | { unpivotBatch: UnpivotBatch }
  | { proxyResponse: ProxyResponse }
  | { renewRequest: RenewRequest };

/** What the cell reads: every member optional, `payload` names the one that is set. */
export interface DecodedAgentMessage {
  payload?: 'hello' | 'heartbeat' | 'ack' | 'unpivotBatch' | 'proxyResponse' | 'renewRequest';
  hello?: Hello | null;
  heartbeat?: Heartbeat | null;
  ack?: Ack | null;
  unpivotBatch?: UnpivotBatch | null;
  proxyResponse?: ProxyResponse | null;
  renewRequest?: RenewRequest | null;
}

// --- Cell -> agent ------------------------------------------------------------------------------

export interface Settings {
  heartbeatIntervalMs: number;
  protocolVersion: number;
  /** Reserved for CA rotation; empty: no change. */
  trustBundle: string;
}

export interface RenewResponse {
  requestId: string;
  certificate: string;
  caBundle: string;
  error: string;
}

export interface MoveBatch {
  moveId: string;
  batchIndex: number;
  totalBatches: number;
  targetNamespace: string;
  objects: MoveObject[];
}

export interface MoveComplete {
  moveId: string;
  targetNamespace: string;
  manifests: Buffer[];
}

export interface SpecSync {
  /** The LatticeCluster as JSON. */
  cluster: Buffer;
  generation: number;
}

export interface UnpivotRequest {
  namespace: string;
}

export interface ProxyRequest {
  verb: string;
  path: string;
  query: string;
  headers: Header[];
  body: Buffer;
  timeoutMs: number;
}

export interface ProxyCancel {
  requestId: string;
}

export interface ReleaseCopies {
  namespace: string;
}

/** The kinds of command, by their JSON name: also the capability strings of Hello. */
export const COMMAND_KINDS = ['moveBatch', 'moveComplete', 'specSync', 'unpivotRequest', 'proxyRequest', 'proxyCancel', 'releaseCopies'] as const;
export type CommandKind = (typeof COMMAND_KINDS)[number];

/** A command's content without its id: exactly one member. */
export type CommandBody =
  | { moveBatch: MoveBatch }
  | { moveComplete: MoveComplete }
  | { specSync: SpecSync }
  | { unpivotRequest: UnpivotRequest }
  | { proxyRequest: ProxyRequest }
  | { proxyCancel: ProxyCancel }
  | { releaseCopies: ReleaseCopies };

export type Command = { id: string } & CommandBody;

/** A command as the agent reads it: `body` names the member that is set; undefined for kinds newer than the agent. */
export interface DecodedCommand {
  id: string;
  body?: CommandKind;
  moveBatch?: MoveBatch | null;
  moveComplete?: MoveComplete | null;
  specSync?: SpecSync | null;
  unpivotRequest?: UnpivotRequest | null;
  proxyRequest?: ProxyRequest | null;
  proxyCancel?: ProxyCancel | null;
  releaseCopies?: ReleaseCopies | null;
}

/** What the cell writes. */
export type CellMessage = { settings: Settings } | { command: Command } | { renewResponse: RenewResponse };

/** What the agent reads. */
export interface DecodedCellMessage {
  payload?: 'settings' | 'command' | 'renewResponse';
  settings?: Settings | null;
  command?: DecodedCommand | null;
  renewResponse?: RenewResponse | null;
}

/** The kind of a command body (the one member that is set). */
export function commandKindOf(body: CommandBody): CommandKind {
  for (const kind of COMMAND_KINDS) if (kind in body) return kind;
  throw new Error('a command body must set exactly one member');
}

// --- Loading ------------------------------------------------------------------------------------

/** The .proto file, found from wherever this module runs (source tree or dist/). */
export function protoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, PROTO_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`lattice: cannot find ${PROTO_FILE} in the package`);
    dir = parent;
  }
}

export interface CellProtocol {
  /** For `server.addService(service, { Connect })`. */
  readonly service: ServiceDefinition;
  /** The generated client class (`new Client(target, credentials, options)`), method `Connect`. */
  readonly Client: ServiceClientConstructor;
}

let loaded: CellProtocol | undefined;

/** Loads the protocol once per process (parsing the .proto costs a few milliseconds). */
export function cellProtocol(): CellProtocol {
  if (loaded) return loaded;
  const definition = loadSync(protoPath(), PROTO_LOADER_OPTIONS);
  const service = definition[SERVICE_NAME];
  if (!service || 'format' in service || !('Connect' in service)) throw new Error(`lattice: ${PROTO_FILE} does not define ${SERVICE_NAME}.Connect`);
  // proto-loader's ServiceDefinition is structurally grpc-js's (method name -> MethodDefinition).
  const grpcService = service as unknown as ServiceDefinition;
  loaded = { service: grpcService, Client: makeClientConstructor(grpcService, SERVICE_NAME) };
  return loaded;
}

/** Opens the Connect stream on a client (typed: the generated client's methods are untyped). */
export function openConnectStream(client: Client, options: CallOptions = {}): ClientDuplexStream<AgentMessage, DecodedCellMessage> {
  const method = cellProtocol().service.Connect;
  if (!method) throw new Error(`lattice: ${SERVICE_NAME} has no Connect method`);
  return client.makeBidiStreamRequest<AgentMessage, DecodedCellMessage>(
    method.path,
    method.requestSerialize as (value: AgentMessage) => Buffer,
    method.responseDeserialize as (bytes: Buffer) => DecodedCellMessage,
    new Metadata(),
    options,
  );
}

/** An all-zero health, the shape every reader can rely on. */
export function emptyHealth(): Health {
  return { nodes: { ready: 0, total: 0 }, controlPlane: { ready: 0, total: 0 }, pools: [], addons: [], providers: [], errors: [] };
}
