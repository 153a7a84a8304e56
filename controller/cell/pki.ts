/**
 * The X.509 pieces of the cell and the agent: ECDSA P-256 keys, the cell CA, the certificates it
 * issues, and CSRs. @peculiar/x509 builds and parses the ASN.1 on top of Node's WebCrypto; Node's own
 * `X509Certificate` does the fast synchronous checks (validity, issuer, key match).
 *
 * Issued certificates take nothing from a CSR but its public key: the subject, the usages and the
 * validity are the issuer's decision (a CSR asking for SANs, CA rights or another name gets none).
 */
import 'reflect-metadata';
import { createPublicKey, randomBytes, webcrypto, X509Certificate as NodeX509, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

// Node's WebCrypto is the standard Crypto; the cast only bridges @types/node and the DOM typings x509 uses.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** @peculiar/x509, configured: import it from here so reflect-metadata and the provider are set first. */
export { x509 };

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Certificates start a little in the past, so a peer whose clock runs behind still accepts them. */
const BACKDATE_MS = 5 * 60 * 1000;

export interface KeyPairPem {
  readonly certificate: string;
  readonly privateKey: string;
}

/** A CA able to sign: its certificate (PEM) and its private key as a CryptoKey. */
export interface SigningCa {
  readonly certificatePem: string;
  readonly certificate: x509.X509Certificate;
  readonly privateKey: CryptoKey;
}

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, EC_KEY, false, ['sign']);
}

/** A positive 128-bit serial number (RFC 5280 §4.1.2.2: at most 20 octets, unpredictable). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

/** Splits a PEM bundle into its certificates (PEM each). */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((pem) => `${pem}\n`) ?? [];
}

/** Certificates joined into one PEM bundle, duplicates dropped, order kept. */
export function joinPemBundle(certificates: readonly string[]): string {
  const seen = new Set<string>();
  return certificates.map((c) => c.trim()).filter((c) => c !== '' && !seen.has(c) && (seen.add(c), true)).map((c) => `${c}\n`).join('');
}

/** A new self-signed CA: 10 years, may sign end-entity certificates only (path length 0). */
export async function createCa(options: { now: Date; commonName?: string; validityDays?: number }): Promise<KeyPairPem> {
  const keys = await generateKeyPair();
  // A random suffix keeps current and next CA apart by subject too, which chain building prefers.
  const commonName = options.commonName ?? `lattice-cell-ca-${randomBytes(4).toString('hex')}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }, { O: ['lattice'] }],
    notBefore: new Date(options.now.getTime() - BACKDATE_MS),
    notAfter: new Date(options.now.getTime() + (options.validityDays ?? 3650) * DAY_MS),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate: cert.toString('pem'), privateKey: await privateKeyToPem(keys.privateKey) };
}

export async function loadSigningCa(pair: KeyPairPem): Promise<SigningCa> {
  const certificate = new x509.X509Certificate(pair.certificate);
  return { certificatePem: certificate.toString('pem'), certificate, privateKey: await importPrivateKey(pair.privateKey) };
}

/** Whether `privateKeyPem` is the key of `certificatePem` (a mismatched pair fails every handshake). */
export function keyMatchesCertificate(certificatePem: string, privateKey: KeyObject): boolean {
  try {
    return new NodeX509(certificatePem).checkPrivateKey(privateKey);
  } catch {
    return false;
  }
}

interface IssueOptions {
  readonly ca: SigningCa;
  readonly publicKey: x509.PublicKey | CryptoKey;
  readonly commonName: string;
  readonly now: Date;
  readonly validityDays: number;
  readonly usage: 'client' | 'server';
  readonly hosts?: readonly string[];
}

async function issue(options: IssueOptions): Promise<x509.X509Certificate> {
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([options.usage === 'client' ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth]),
    await x509.SubjectKeyIdentifierExtension.create(options.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(options.ca.certificate.publicKey),
  ];
  if (options.hosts && options.hosts.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(options.hosts.map((h) => (isIP(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }))));
  }
  const notAfter = Math.min(options.now.getTime() + options.validityDays * DAY_MS, options.ca.certificate.notAfter.getTime());
  return x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [options.commonName] }],
    issuer: options.ca.certificate.subjectName,
    notBefore: new Date(options.now.getTime() - BACKDATE_MS),
    notAfter: new Date(notAfter),
    signingAlgorithm: SIGNING,
    publicKey: options.publicKey,
    signingKey: options.ca.privateKey,
    extensions,
  });
}

/** A client certificate for an agent: CN = cluster, clientAuth only, no SANs. */
export async function issueClientCertificate(options: { ca: SigningCa; publicKey: x509.PublicKey | CryptoKey; cluster: string; now: Date; validityDays: number }): Promise<{ certificate: string; notAfter: Date }> {
  const cert = await issue({ ca: options.ca, publicKey: options.publicKey, commonName: options.cluster, now: options.now, validityDays: options.validityDays, usage: 'client' });
  return { certificate: cert.toString('pem'), notAfter: cert.notAfter };
}

/** The cell's serving certificate (fresh key): serverAuth, SANs = the host names and IPs agents dial. */
export async function issueServingCertificate(options: { ca: SigningCa; hosts: readonly string[]; now: Date; validityDays?: number }): Promise<KeyPairPem & { notAfter: Date }> {
  if (options.hosts.length === 0) throw new Error('the cell serving certificate needs at least one host name or IP');
  const keys = await generateKeyPair();
  const cert = await issue({ ca: options.ca, publicKey: keys.publicKey, commonName: 'lattice-cell', now: options.now, validityDays: options.validityDays ?? 365, usage: 'server', hosts: options.hosts });
  return { certificate: cert.toString('pem'), privateKey: await privateKeyToPem(keys.privateKey), notAfter: cert.notAfter };
}

/** A CSR for `commonName` signed with `keys` (what the agent sends; nothing but CN and key). */
export async function createCsr(keys: CryptoKeyPair, commonName: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ CN: [commonName] }], keys, signingAlgorithm: SIGNING });
  return csr.toString('pem');
}

export type CsrCheck =
  | { ok: true; publicKey: x509.PublicKey }
  | { ok: false; reason: 'malformed' | 'signature' | 'subject' | 'key' };

/**
 * Checks a CSR before anything is signed: it parses, its self-signature verifies (the requester holds
 * the key), its subject is exactly CN=<cluster>, and its key is ECDSA P-256 (what agents make; weaker or
 * unusual keys are refused rather than judged).
 */
export async function checkCsr(pem: string, cluster: string): Promise<CsrCheck> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  try {
    const details = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' }).asymmetricKeyDetails;
    if (details?.namedCurve !== 'prime256v1') return { ok: false, reason: 'key' };
  } catch {
    return { ok: false, reason: 'key' };
  }
  const verified = await csr.verify().catch(() => false);
  if (!verified) return { ok: false, reason: 'signature' };
  const cns = csr.subjectName.getField('CN');
  const attributes = csr.subjectName.toJSON().flatMap((rdn) => Object.keys(rdn));
  if (cns.length !== 1 || cns[0] !== cluster || attributes.length !== 1) return { ok: false, reason: 'subject' };
  return { ok: true, publicKey: csr.publicKey };
}

/** Facts about a certificate that decide whether an agent may keep using it. */
export interface CertificateFacts {
  readonly commonName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly fingerprint256: string;
  readonly serialNumber: string;
}

export function certificateFacts(pem: string): CertificateFacts {
  const cert = new NodeX509(pem);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
  return { commonName: cn, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo), fingerprint256: cert.fingerprint256, serialNumber: cert.serialNumber };
}

/** Whether `certificatePem` was signed by one of the CAs in `bundlePem`. */
export function issuedByBundle(certificatePem: string, bundlePem: string): boolean {
  try {
    const cert = new NodeX509(certificatePem);
    return splitPemBundle(bundlePem).some((caPem) => {
      const ca = new NodeX509(caPem);
      return cert.checkIssued(ca) && cert.verify(ca.publicKey);
    });
  } catch {
    return false;
  }
}
