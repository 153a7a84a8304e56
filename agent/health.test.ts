import { describe, expect, it } from 'vitest';
import type { V1Deployment, V1Node } from '@kubernetes/client-node';
import { summarizeHealth } from './health.js';

const node = (name: string, labels: Record<string, string>, ready?: 'True' | 'False' | 'Unknown'): V1Node =>
  ({ metadata: { name, labels }, ...(ready ? { status: { conditions: [{ type: 'Ready', status: ready }] } } : {}) });
const deploy = (namespace: string, name: string, replicas: number | undefined, ready: number | undefined, labels: Record<string, string> = {}): V1Deployment =>
  ({ metadata: { namespace, name, labels }, spec: { ...(replicas !== undefined ? { replicas } : {}), selector: {}, template: {} }, ...(ready !== undefined ? { status: { readyReplicas: ready } } : {}) });

describe('summarizeHealth', () => {
  it('counts only Ready=True nodes as ready, and nodes without a pool label in no pool', () => {
    const h = summarizeHealth({
      nodes: [node('a', { 'lattice.dev/pool': 'p' }, 'True'), node('b', { 'lattice.dev/pool': 'p' }, 'Unknown'), node('c', { 'lattice.dev/pool': '' }), node('d', { 'node-role.kubernetes.io/control-plane': '' }, 'False')],
      deployments: [], daemonSets: [], statefulSets: [],
    }, []);
    expect(h.nodes).toEqual({ ready: 1, total: 4 });
    expect(h.controlPlane).toEqual({ ready: 0, total: 1 });
    expect(h.pools).toEqual([{ name: 'p', ready: 1, total: 2 }]);
  });

  it('reports an addon namespace without workloads as 0/0, and defaults replicas to 1 as the API does', () => {
    const h = summarizeHealth({
      nodes: [], statefulSets: [],
      deployments: [deploy('monitoring', 'vm', undefined, undefined), deploy('monitoring', 'ok', 2, 2)],
      daemonSets: [{ metadata: { namespace: 'monitoring', name: 'agent' }, status: { desiredNumberScheduled: 0, numberReady: 0, currentNumberScheduled: 0, numberMisscheduled: 0 } }],
    }, ['monitoring', 'velero', 'monitoring']);
    expect(h.addons).toEqual([
      { namespace: 'monitoring', ready: 2, total: 3, notReady: [{ kind: 'Deployment', name: 'vm', ready: 0, desired: 1 }] },
      { namespace: 'velero', ready: 0, total: 0, notReady: [] },
    ]);
  });

  it('finds CAPI providers by label, or by a capi-*-system namespace, and ignores other deployments', () => {
    const h = summarizeHealth({
      nodes: [], daemonSets: [], statefulSets: [],
      deployments: [
        deploy('capa-system', 'capa-controller-manager', 1, 1, { 'cluster.x-k8s.io/provider': 'infrastructure-aws' }),
        deploy('capi-kubeadm-bootstrap-system', 'capi-kubeadm-bootstrap-controller-manager', 1, 0),
        deploy('capi-system', 'capi-controller-manager', 1, 1),
        deploy('kube-system', 'coredns', 2, 2),
      ],
    }, []);
    expect(h.providers).toEqual([
      { name: 'capi-kubeadm-bootstrap-system', namespace: 'capi-kubeadm-bootstrap-system', ready: 0, total: 1 },
      { name: 'capi-system', namespace: 'capi-system', ready: 1, total: 1 },
      { name: 'infrastructure-aws', namespace: 'capa-system', ready: 1, total: 1 },
    ]);
  });
});
