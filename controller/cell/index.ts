/**
 * The cell's public API (DESIGN §6), for the controller and the agent. See each module for the why:
 * protocol.ts (messages, loader), ca.ts (CA Secret, rotation), bootstrap.ts (tokens, HTTPS endpoint),
 * server.ts (gRPC server, agent registry, commands), cell.ts (all of it started together), secrets.ts
 * (the bootstrap and identity Secrets the controller and the agent share).
 */
export { startCell, type Cell, type CellOptions } from './cell.js';
export { specSyncCommand, type SyncedCluster } from './commands.js';
export { cellMetrics, type CellMetrics } from './metrics.js';
export {
  createCellServer, type AgentEvent, type AgentIdentity, type AgentInfo, type AgentRegistry, type CellObserver, type CellServer,
  type CellServerOptions, type DisconnectReason, type SendOptions,
} from './server.js';
export {
  BOOTSTRAP_PATH, createBootstrapApp, DEFAULT_TOKEN_TTL_MS, digestsEqual, hashToken, InMemoryTokenStore, issueBootstrapToken, mintToken, startBootstrapServer,
  type BootstrapDeps, type BootstrapLimits, type BootstrapResponse, type BootstrapServer, type CertificateSigner, type MintedToken,
  type StoredToken, type TokenStore,
} from './bootstrap.js';
export { caCertificateSigner, CELL_CA, ensureCellCa, promoteNextCa, stageNextCa, type CellCa, type CellCaDeps } from './ca.js';
export {
  bootstrapSecret, BOOTSTRAP_KEYS, identitySecret, IDENTITY_KEYS, parentEndpoints, secretValue,
  type AgentIdentityContent, type BootstrapSecretContent,
} from './secrets.js';
export * from './protocol.js';
