import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startSim, type SimClients } from '../sim/apiserver/testing.js';
import { LeaderElector } from './leader.js';

let sim: SimClients;
beforeAll(async () => {
  sim = await startSim({ namespaces: ['default', 'lattice-system'] });
});
afterAll(async () => {
  await sim.server.close();
});

const elector = (name: string, identity: string, events: string[]) => new LeaderElector({
  kubeConfig: sim.kc, namespace: 'lattice-system', name, identity,
  leaseDurationSeconds: 1, renewDeadlineMs: 600, retryPeriodMs: 50,
  onStartedLeading: () => events.push(`${identity} leads`),
  onStoppedLeading: () => events.push(`${identity} stops`),
});

describe('LeaderElector', () => {
  it('elects exactly one of two candidates, and hands over at once when the leader stops', async () => {
    // GIVEN two candidates for one lease
    const events: string[] = [];
    const a = elector('handover', 'a', events);
    a.start();
    await eventually(() => expect(a.isLeader).toBe(true));
    const b = elector('handover', 'b', events);
    b.start();
    await eventually(() => expect(b.attempts).toBeGreaterThanOrEqual(3));
    // THEN only the first leads
    expect(b.isLeader).toBe(false);
    // WHEN the leader stops (and releases)
    await a.stop();
    // THEN the other takes over well before the lease would have expired
    await eventually(() => expect(b.isLeader).toBe(true), { timeoutMs: 900 });
    await b.stop();
    expect(events).toEqual(['a leads', 'a stops', 'b leads', 'b stops']);
    const lease = await sim.coordination.readNamespacedLease({ name: 'handover', namespace: 'lattice-system' });
    expect(lease.spec?.holderIdentity).toBe('');
    expect(lease.spec?.leaseTransitions).toBe(1);
  });

  it('takes over from a leader that vanished without releasing, once the lease expires', async () => {
    const events: string[] = [];
    const a = elector('crash', 'a', events);
    a.start();
    await eventually(() => expect(a.isLeader).toBe(true));
    // WHEN the leader dies without releasing
    await a.stop({ release: false });
    const b = elector('crash', 'b', events);
    b.start();
    // THEN the other waits out the lease (several attempts lose), then leads
    await eventually(() => expect(b.attempts).toBeGreaterThanOrEqual(3));
    expect(b.isLeader).toBe(false);
    await eventually(() => expect(b.isLeader).toBe(true), { timeoutMs: 3000 });
    await b.stop();
  });

  it('steps down when it cannot renew within the deadline', async () => {
    // GIVEN a leader whose lease is taken over behind its back
    const events: string[] = [];
    const a = elector('deadline', 'a', events);
    a.start();
    await eventually(() => expect(a.isLeader).toBe(true));
    const lease = await sim.coordination.readNamespacedLease({ name: 'deadline', namespace: 'lattice-system' });
    await sim.coordination.replaceNamespacedLease({ name: 'deadline', namespace: 'lattice-system', body: { ...lease, spec: { ...lease.spec, holderIdentity: 'intruder', leaseDurationSeconds: 60 } } });
    // THEN it stops leading after the renew deadline
    await eventually(() => expect(a.isLeader).toBe(false), { timeoutMs: 2000 });
    await a.stop();
    expect(events).toEqual(['a leads', 'a stops']);
  });
});
