/**
 * Test helpers for the cell and the agent (tests, benchmarks and the controller's own tests):
 * agent identities issued straight from a CA, a minimal
 * raw protocol client for driving the cell by hand, and a pino logger that records its lines (to assert
 * that no secret is ever logged). Never used by production code paths.
 */
import { Client, credentials, type StatusObject } from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { createCsr, generateKeyPair, issueClientCertificate, privateKeyToPem, type SigningCa } from './pki.js';
import { openConnectStream, PROTOCOL_VERSION, type AgentMessage, type DecodedCellMessage, type Health } from './protocol.js';

export interface IssuedIdentity {
  readonly privateKey: string;
  readonly certificate: string;
}

/** An agent key and certificate for `cluster` (CN), signed directly by `ca`: no bootstrap round trip. */
export async function issueTestIdentity(ca: SigningCa, cluster: string, options: { now?: Date; validityDays?: number } = {}): Promise<IssuedIdentity> {
  const keys = await generateKeyPair();
  const issued = await issueClientCertificate({ ca, publicKey: keys.publicKey, cluster, now: options.now ?? new Date(), validityDays: options.validityDays ?? 30 });
  return { privateKey: await privateKeyToPem(keys.privateKey), certificate: issued.certificate };
}

/** A CSR and its key, for bootstrap endpoint tests. */
export async function testCsr(commonName: string): Promise<{ csr: string; privateKey: string }> {
  const keys = await generateKeyPair();
  return { csr: await createCsr(keys, commonName), privateKey: await privateKeyToPem(keys.privateKey) };
}

/** A pino logger that keeps every line (JSON text), to check what was and was not logged. */
export function recordingLogger(level = 'debug'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level }, { write: (s: string) => lines.push(s) }), lines };
}

/**
 * A hand-driven protocol client: connects with an identity, lets the test send any message and see
 * everything the cell sends, and the final status. For tests of the cell's rules (CN checks, replacement,
 * staleness) that a well-behaved agent would never exercise.
 */
export class RawAgent {
  readonly received: DecodedCellMessage[] = [];
  status?: StatusObject;
  private readonly client: Client;
  private readonly call: ReturnType<typeof openConnectStream>;

  constructor(endpoint: string, tls: { caBundle: string; privateKey: string; certificate: string }) {
    this.client = new Client(endpoint, credentials.createSsl(Buffer.from(tls.caBundle), Buffer.from(tls.privateKey), Buffer.from(tls.certificate)));
    this.call = openConnectStream(this.client);
    this.call.on('data', (m: DecodedCellMessage) => this.received.push(m));
    this.call.on('error', () => undefined);
    this.call.on('status', (s: StatusObject) => {
      this.status = s;
    });
  }

  send(message: AgentMessage): void {
    this.call.write(message);
  }

  hello(cluster: string): void {
    this.send({ hello: { cluster, agentVersion: 'test', protocolVersion: PROTOCOL_VERSION, capabilities: [], kubernetesVersion: '' } });
  }

  heartbeat(health: Health, sequence = 1): void {
    this.send({ heartbeat: { sentAtUnixMs: Date.now(), sequence, health } });
  }

  /** Whether the cell accepted the Hello (sent Settings). */
  get accepted(): boolean {
    return this.received.some((m) => m.payload === 'settings');
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}
