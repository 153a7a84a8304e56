/**
 * Test helpers for code that runs against the simulated API server: polling instead of sleeping, a
 * started server with its clients, and a throwaway self-signed certificate.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, type KubeConfig,
} from '@kubernetes/client-node';
import { simKubeConfig } from './client.js';
import { createApiServer, type ApiServer, type ApiServerOptions } from './server.js';

export interface EventuallyOptions {
  /** @default 5000 */
  readonly timeoutMs?: number;
  /** @default 10 */
  readonly intervalMs?: number;
}

/**
 * Calls `check` until it returns without throwing, and returns its result; after `timeoutMs` rethrows the
 * last failure, so the test reports what was still wrong.
 */
export async function eventually<T>(check: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 10));
    }
  }
}

export interface SimClients {
  readonly server: ApiServer;
  readonly url: string;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly coordination: CoordinationV1Api;
  readonly objects: KubernetesObjectApi;
}

/** Creates, starts and wires up a server; call `server.close()` when done. */
export async function startSim(options: ApiServerOptions = {}): Promise<SimClients> {
  const server = createApiServer(options);
  const url = await server.listen();
  const kc = simKubeConfig(server);
  return {
    server,
    url,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    coordination: kc.makeApiClient(CoordinationV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}

/** The parsed `Status` body of a failed client-node call, with its HTTP code. */
export interface FailedCall {
  readonly code: number;
  readonly status: { kind?: string; status?: string; reason?: string; message?: string; code?: number; details?: Record<string, unknown> };
}

/** Runs a call that must fail with an ApiException and returns its code and Status body. */
export async function failure(call: Promise<unknown>): Promise<FailedCall> {
  try {
    await call;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const body: unknown = e.body;
    const status = typeof body === 'string' && body !== '' ? (JSON.parse(body) as FailedCall['status']) : {};
    return { code: e.code, status };
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Whether the `openssl` binary can be run (TLS tests need it to make a certificate). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, valid one day (Node cannot make X.509 itself). */
export function selfSignedCert(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lattice-sim-cert-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=lattice-sim', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
