/**
 * The bootstrap endpoint over real HTTPS on loopback, with the cell's serving certificate and a real CA:
 * what it issues, and every rejection leaving the token exactly as it was.
 */
import { request } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BOOTSTRAP_PATH, createBootstrapApp, InMemoryTokenStore, issueBootstrapToken, startBootstrapServer,
  type BootstrapLimits, type BootstrapServer, type CertificateSigner, type StoredToken,
} from '../controller/cell/bootstrap.js';
import { caCertificateSigner, type CellCa } from '../controller/cell/ca.js';
import { createCa, generateKeyPair, issueServingCertificate, loadSigningCa, x509 } from '../controller/cell/pki.js';
import { recordingLogger, testCsr } from '../controller/cell/testing.js';
import { eventually } from '../sim/apiserver/testing.js';

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

const T0 = new Date('2026-03-01T12:00:00Z');
const caPair = await createCa({ now: T0 });
const signer = await loadSigningCa(caPair);
const ca: CellCa = { signer, trustBundle: caPair.certificate, clientCaBundle: caPair.certificate, rotating: false };
const serving = await issueServingCertificate({ ca: signer, hosts: ['127.0.0.1', 'localhost'], now: T0 });

interface Fixture {
  server: BootstrapServer;
  tokens: InMemoryTokenStore;
  lines: string[];
  clock: { now: Date };
  post(body: unknown, options?: { contentType?: string; raw?: boolean }): Promise<Answer>;
}

const servers: BootstrapServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
});

async function start(options: { limits?: BootstrapLimits; signer?: CertificateSigner } = {}): Promise<Fixture> {
  const tokens = new InMemoryTokenStore();
  const { log, lines } = recordingLogger();
  const clock = { now: T0 };
  const app = createBootstrapApp({
    tokens,
    signer: options.signer ?? caCertificateSigner(ca),
    log,
    now: () => clock.now,
    limits: options.limits ?? { perIp: { capacity: 100, refillPerSecond: 1 }, perCluster: { capacity: 100, refillPerSecond: 1 } },
  });
  const server = await startBootstrapServer({ app, tls: serving, port: 0, host: '127.0.0.1' });
  servers.push(server);
  const post = (body: unknown, opts: { contentType?: string; raw?: boolean } = {}) => new Promise<Answer>((resolve, reject) => {
    const text = opts.raw ? String(body) : JSON.stringify(body);
    const req = request({
      host: '127.0.0.1', port: server.port, path: BOOTSTRAP_PATH, method: 'POST', ca: caPair.certificate,
      headers: { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(text) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(text);
  });
  return { server, tokens, lines, clock, post };
}

/** A token for `cluster`, valid one hour from T0. */
async function tokenFor(f: Fixture, cluster = 'dev'): Promise<string> {
  return (await issueBootstrapToken(f.tokens, cluster, { now: T0, ttlMs: 3_600_000 })).token;
}

const snapshot = async (f: Fixture, cluster = 'dev'): Promise<StoredToken | undefined> => structuredClone(await f.tokens.lookup(cluster));

function expectNoSecrets(f: Fixture, secrets: readonly string[]): void {
  const text = f.lines.join('');
  for (const s of secrets) expect(text.includes(s), 'a secret reached the logs').toBe(false);
}

const GENERIC_401 = { error: 'Unauthorized', message: 'bootstrap authentication failed' };

describe('bootstrap endpoint', () => {
  it('signs the CSR for the cluster with the cell CA and consumes the token', async () => {
    // GIVEN a minted token and a CSR for cluster dev
    const f = await start();
    const token = await tokenFor(f);
    const { csr } = await testCsr('dev');
    // WHEN the agent posts them
    const res = await f.post({ cluster: 'dev', token, csr });
    // THEN it gets a client certificate for CN=dev from the CA, and the token is spent
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body) as { certificate: string; caBundle: string; expiresAt: string };
    const cert = new X509Certificate(body.certificate);
    expect(cert.subject).toBe('CN=dev');
    expect(cert.checkIssued(new X509Certificate(caPair.certificate))).toBe(true);
    expect(cert.verify(new X509Certificate(caPair.certificate).publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(cert.subjectAltName).toBeUndefined();
    expect(new Date(cert.validTo).getTime() - T0.getTime()).toBeLessThanOrEqual(30 * 86_400_000);
    expect(body.caBundle).toBe(caPair.certificate);
    expect(body.expiresAt).toBe(new Date(cert.validTo).toISOString());
    await eventually(async () => expect((await f.tokens.lookup('dev'))?.consumedAt).toEqual(T0));
    expectNoSecrets(f, [token, csr]);
  });

  it('takes only the public key from a CSR that asks for SANs and CA rights', async () => {
    // GIVEN a CSR for dev that requests a SAN, CA basic constraints and serverAuth
    const f = await start();
    const token = await tokenFor(f);
    const keys = await generateKeyPair();
    const greedy = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: ['dev'] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'kubernetes.default.svc' }]),
        new x509.BasicConstraintsExtension(true, 5, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    });
    // WHEN it is posted
    const res = await f.post({ cluster: 'dev', token, csr: greedy.toString('pem') });
    // THEN the certificate is an ordinary clientAuth leaf without SANs
    expect(res.status).toBe(200);
    const cert = new X509Certificate((JSON.parse(res.body) as { certificate: string }).certificate);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBeUndefined();
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  it('answers a wrong token and an unknown cluster with the same 401, and the token stays valid', async () => {
    // GIVEN a valid token for dev
    const f = await start();
    const token = await tokenFor(f);
    const before = await snapshot(f);
    const { csr } = await testCsr('dev');
    const other = await testCsr('ghost');
    // WHEN a wrong token is presented, and a token for a cluster that has none
    const wrong = await f.post({ cluster: 'dev', token: `${token.slice(0, -2)}AA`, csr });
    const unknown = await f.post({ cluster: 'ghost', token, csr: other.csr });
    const huge = await f.post({ cluster: 'dev', token: 'x'.repeat(5000), csr });
    // THEN both are the same generic 401, nothing changed, and the real token still works
    for (const r of [wrong, unknown, huge]) {
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toEqual(GENERIC_401);
    }
    expect(await snapshot(f)).toEqual(before);
    expect((await f.post({ cluster: 'dev', token, csr })).status).toBe(200);
    expectNoSecrets(f, [token, csr]);
  });

  it('refuses a used token with the same 401', async () => {
    // GIVEN a token already used once
    const f = await start();
    const token = await tokenFor(f);
    const { csr } = await testCsr('dev');
    expect((await f.post({ cluster: 'dev', token, csr })).status).toBe(200);
    await eventually(async () => expect((await f.tokens.lookup('dev'))?.consumedAt).toBeDefined());
    const spent = await snapshot(f);
    // WHEN it is used again
    const again = await f.post({ cluster: 'dev', token, csr });
    // THEN 401, and the record is untouched
    expect(again.status).toBe(401);
    expect(JSON.parse(again.body)).toEqual(GENERIC_401);
    expect(await snapshot(f)).toEqual(spent);
  });

  it('refuses an expired token with the same 401 and records nothing', async () => {
    // GIVEN a token whose hour has passed
    const f = await start();
    const token = await tokenFor(f);
    const before = await snapshot(f);
    f.clock.now = new Date(T0.getTime() + 3_600_000);
    const { csr } = await testCsr('dev');
    // WHEN it is presented
    const res = await f.post({ cluster: 'dev', token, csr });
    // THEN 401 and no lease or consumption was recorded
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toEqual(GENERIC_401);
    expect(await snapshot(f)).toEqual(before);
  });

  it('refuses a CSR for another cluster or with a bad signature, and the token stays valid', async () => {
    // GIVEN a valid token for dev
    const f = await start();
    const token = await tokenFor(f);
    const before = await snapshot(f);
    const foreign = await testCsr('prod');
    const { csr } = await testCsr('dev');
    // A CSR whose signature's last byte is flipped: it parses, but its self-signature fails.
    const der = Buffer.from(x509.PemConverter.decodeFirst(csr));
    der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    // WHEN they are posted with the right token
    const wrongCn = await f.post({ cluster: 'dev', token, csr: foreign.csr });
    const badSig = await f.post({ cluster: 'dev', token, csr: tampered });
    const garbage = await f.post({ cluster: 'dev', token, csr: 'not a csr' });
    // THEN 400 with the CSR's problem (its own data, no hint about the token), and the token is untouched
    expect([wrongCn.status, badSig.status, garbage.status]).toEqual([400, 400, 400]);
    expect(JSON.parse(wrongCn.body)).toEqual({ error: 'BadRequest', message: 'csr subject must be exactly CN=<cluster>' });
    expect(JSON.parse(badSig.body)).toEqual({ error: 'BadRequest', message: 'csr signature does not verify' });
    expect(JSON.parse(garbage.body)).toEqual({ error: 'BadRequest', message: 'csr is not a PEM PKCS#10 certificate request' });
    expect(await snapshot(f)).toEqual(before);
    expect((await f.post({ cluster: 'dev', token, csr })).status).toBe(200);
  });

  it('refuses oversized, malformed and non-JSON bodies without echoing them, and the token stays valid', async () => {
    // GIVEN a valid token
    const f = await start();
    const token = await tokenFor(f);
    const before = await snapshot(f);
    const { csr } = await testCsr('dev');
    // WHEN a 17 KiB body, broken JSON carrying the token, a JSON array and form data arrive
    const big = await f.post({ cluster: 'dev', token, csr: csr + ' '.repeat(17 * 1024) });
    const broken = await f.post(`{"cluster":"dev","token":"${token}",`, { raw: true });
    const array = await f.post([token]);
    const form = await f.post(`token=${token}`, { raw: true, contentType: 'application/x-www-form-urlencoded' });
    // THEN 413, 400, 400 and 415, no body quotes the input, and the token is untouched
    expect([big.status, broken.status, array.status, form.status]).toEqual([413, 400, 400, 415]);
    for (const r of [big, broken, array, form]) expect(r.body.includes(token)).toBe(false);
    expect(await snapshot(f)).toEqual(before);
    expect((await f.post({ cluster: 'dev', token, csr })).status).toBe(200);
    expectNoSecrets(f, [token]);
  });

  it('rate-limits per source IP and per cluster with 429 and Retry-After', async () => {
    // GIVEN limits of 3 attempts per IP and 2 per cluster, refilled at one per second
    const f = await start({ limits: { perIp: { capacity: 3, refillPerSecond: 1 }, perCluster: { capacity: 2, refillPerSecond: 1 } } });
    const token = await tokenFor(f);
    const before = await snapshot(f);
    const { csr } = await testCsr('dev');
    // WHEN a client keeps guessing
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await f.post({ cluster: 'dev', token: `guess-${i}`, csr })).status);
    // THEN the third attempt for the cluster and the fourth from the IP are refused
    expect(statuses).toEqual([401, 401, 429, 429]);
    const limited = await f.post({ cluster: 'dev', token, csr });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(await snapshot(f)).toEqual(before);
    // AND once the buckets refill, the real token works
    f.clock.now = new Date(T0.getTime() + 10_000);
    expect((await f.post({ cluster: 'dev', token, csr })).status).toBe(200);
  });

  it('does not burn the token when the client hangs up before the answer is written', async () => {
    // GIVEN a signer held until the test lets it go
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const real = caCertificateSigner(ca);
    const f = await start({ signer: { sign: async (r) => { await gate; return real.sign(r); } } });
    const token = await tokenFor(f);
    const { csr } = await testCsr('dev');
    // WHEN the client drops the connection while its certificate is being signed
    const text = JSON.stringify({ cluster: 'dev', token, csr });
    const req = request({
      host: '127.0.0.1', port: f.server.port, path: BOOTSTRAP_PATH, method: 'POST', ca: caPair.certificate,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
    });
    req.on('error', () => undefined);
    req.end(text);
    await eventually(async () => expect((await f.tokens.lookup('dev'))?.lease).toBeDefined());
    req.destroy();
    await eventually(() => expect(f.lines.some((l) => l.includes('bootstrap response not delivered'))).toBe(true));
    release();
    // THEN the lease is released and the token is neither consumed nor leased: the retry works
    await eventually(async () => {
      const r = await f.tokens.lookup('dev');
      expect(r?.lease).toBeUndefined();
      expect(r?.consumedAt).toBeUndefined();
    });
    expect((await f.post({ cluster: 'dev', token, csr })).status).toBe(200);
  });

  it('does not burn the token when writing the answer fails', async () => {
    // GIVEN a signer whose answer cannot be serialized (a write failure inside the response)
    const real = caCertificateSigner(ca);
    const f = await start({ signer: { sign: async (r) => ({ ...(await real.sign(r)), certificate: 1n as unknown as string }) } });
    const token = await tokenFor(f);
    const before = await snapshot(f);
    const { csr } = await testCsr('dev');
    // WHEN a valid request is answered
    const res = await f.post({ cluster: 'dev', token, csr });
    // THEN a generic 500, and the token is exactly as before
    expect(res.status).toBe(500);
    await eventually(async () => expect(await snapshot(f)).toEqual(before));
  });

  it('releases the token when signing fails, with a 500 that says nothing', async () => {
    // GIVEN a signer that fails
    const f = await start({ signer: { sign: () => Promise.reject(new Error(`boom with secret material`)) } });
    const token = await tokenFor(f);
    const before = await snapshot(f);
    const { csr } = await testCsr('dev');
    // WHEN a valid request arrives
    const res = await f.post({ cluster: 'dev', token, csr });
    // THEN 500 with a generic body, and the token is as it was
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toEqual({ error: 'InternalError', message: 'an internal error occurred; retry later' });
    await eventually(async () => expect(await snapshot(f)).toEqual(before));
    expect(f.lines.join('').includes('secret material')).toBe(false);
  });

  it('lets only one of two concurrent requests with the token through', async () => {
    // GIVEN a signer that waits until both requests are in
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const real = caCertificateSigner(ca);
    const f = await start({ signer: { sign: async (r) => { await gate; return real.sign(r); } } });
    const token = await tokenFor(f);
    const { csr } = await testCsr('dev');
    // WHEN two requests race with the same token
    const first = f.post({ cluster: 'dev', token, csr });
    await eventually(async () => expect((await f.tokens.lookup('dev'))?.lease).toBeDefined());
    const second = await f.post({ cluster: 'dev', token, csr });
    release();
    // THEN the second is refused while the first holds the lease, and the first succeeds
    expect(second.status).toBe(401);
    expect((await first).status).toBe(200);
  });
});
