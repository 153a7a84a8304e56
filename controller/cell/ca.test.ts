import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSim, type SimClients } from '../../sim/apiserver/testing.js';
import { LatticeError } from '../../core/errors.js';
import { CELL_CA, ensureCellCa, promoteNextCa, stageNextCa } from './ca.js';
import { issuedByBundle, splitPemBundle } from './pki.js';
import { issueTestIdentity } from './testing.js';

let sim: SimClients;
beforeAll(async () => {
  sim = await startSim({ namespaces: ['default', 'lattice-system', 'other'] });
});
afterAll(async () => {
  await sim.server.close();
});

describe('cell CA', () => {
  it('is created once and read back by every later start, even when two start at once', async () => {
    // GIVEN no CA Secret in the parent
    // WHEN two replicas ensure the CA concurrently, and a third later
    const [a, b] = await Promise.all([ensureCellCa({ core: sim.core }), ensureCellCa({ core: sim.core })]);
    const c = await ensureCellCa({ core: sim.core });
    // THEN all three sign with the same CA, which is the one stored in lattice-system/lattice-cell-ca
    expect(b.trustBundle).toBe(a.trustBundle);
    expect(c.trustBundle).toBe(a.trustBundle);
    const secret = await sim.core.readNamespacedSecret({ namespace: CELL_CA.namespace, name: CELL_CA.name });
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ca.crt', 'ca.key']);
    expect(Buffer.from(secret.data?.['ca.crt'] ?? '', 'base64').toString().trim()).toBe(a.trustBundle.trim());
    expect(a.rotating).toBe(false);
  });

  it('refuses to replace a malformed CA Secret', async () => {
    // GIVEN a CA Secret without its key
    await sim.core.createNamespacedSecret({ namespace: 'other', body: { metadata: { name: 'broken-ca' }, data: { 'ca.crt': Buffer.from('x').toString('base64') } } });
    // WHEN the cell loads it
    const error = await ensureCellCa({ core: sim.core, namespace: 'other', name: 'broken-ca' }).catch((e: unknown) => e);
    // THEN it stalls (a person must look) and the Secret is untouched
    expect(error).toBeInstanceOf(LatticeError);
    expect((error as LatticeError).kind).toBe('stalling');
    expect((error as LatticeError).code).toBe('CellCaInvalid');
    const secret = await sim.core.readNamespacedSecret({ namespace: 'other', name: 'broken-ca' });
    expect(Object.keys(secret.data ?? {})).toEqual(['ca.crt']);
  });

  it('waits while the namespace does not exist', async () => {
    const error = await ensureCellCa({ core: sim.core, namespace: 'missing' }).catch((e: unknown) => e);
    expect((error as LatticeError).kind).toBe('waiting');
  });

  it('rotates: agents trust current + next, certificates of the old CA stay accepted after promotion', async () => {
    // GIVEN a CA and an agent certificate it signed
    const deps = { core: sim.core, namespace: 'other', name: 'rotating-ca' };
    const first = await ensureCellCa(deps);
    const oldAgent = await issueTestIdentity(first.signer, 'dev');
    // WHEN a next CA is staged
    const staged = await stageNextCa(deps);
    // THEN agents are given both, the current one still signs
    expect(staged.rotating).toBe(true);
    expect(splitPemBundle(staged.trustBundle)).toHaveLength(2);
    expect(staged.signer.certificatePem).toBe(first.signer.certificatePem);
    expect(await stageNextCa(deps)).toEqual(staged);
    // WHEN the next CA is promoted
    const promoted = await promoteNextCa(deps);
    // THEN the new CA signs, agents trust only it, and the cell still accepts the old agent certificate
    const newAgent = await issueTestIdentity(promoted.signer, 'dev');
    expect(promoted.rotating).toBe(false);
    expect(splitPemBundle(promoted.trustBundle)).toHaveLength(1);
    expect(issuedByBundle(newAgent.certificate, promoted.trustBundle)).toBe(true);
    expect(issuedByBundle(oldAgent.certificate, promoted.trustBundle)).toBe(false);
    expect(issuedByBundle(oldAgent.certificate, promoted.clientCaBundle)).toBe(true);
    expect((await ensureCellCa(deps)).clientCaBundle).toBe(promoted.clientCaBundle);
  });
});
