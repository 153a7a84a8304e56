import { describe, expect, it } from 'vitest';
import { createCa, loadSigningCa } from '../controller/cell/pki.js';
import { issueTestIdentity } from '../controller/cell/testing.js';
import { identityProblem } from './identity.js';

const now = new Date('2026-05-01T00:00:00Z');
const caPair = await createCa({ now });
const ca = await loadSigningCa(caPair);
const good = await issueTestIdentity(ca, 'dev', { now, validityDays: 30 });

describe('identityProblem', () => {
  it('accepts a certificate for the cluster, in its validity, matching its key, from the bundle', () => {
    expect(identityProblem({ ...good, caBundle: caPair.certificate }, 'dev', now)).toBeUndefined();
  });

  it('names what makes a stored identity unusable', async () => {
    const other = await issueTestIdentity(ca, 'dev', { now });
    const rogue = await loadSigningCa(await createCa({ now }));
    const foreign = await issueTestIdentity(rogue, 'dev', { now });
    const bundle = caPair.certificate;
    expect(identityProblem({ ...good, caBundle: bundle }, 'prod', now)).toBe('certificate names another cluster');
    expect(identityProblem({ ...good, caBundle: bundle }, 'dev', new Date(now.getTime() + 31 * 86_400_000))).toBe('certificate expired');
    expect(identityProblem({ ...good, privateKey: other.privateKey, caBundle: bundle }, 'dev', now)).toBe('private key does not match the certificate');
    expect(identityProblem({ ...foreign, caBundle: bundle }, 'dev', now)).toBe('certificate not signed by the CA bundle');
    expect(identityProblem({ ...good, certificate: 'junk', caBundle: bundle }, 'dev', now)).toBe('certificate does not parse');
    expect(identityProblem({ ...good, privateKey: 'junk', caBundle: bundle }, 'dev', now)).toBe('private key does not parse');
  });
});
