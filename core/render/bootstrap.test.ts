import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { specRenderer } from '../../cli/load.js';
import { exampleClusters } from '../../test/support/repo.js';
import type { LatticeCluster } from '../spec/model.js';

const renderer = specRenderer();
const example = (name: string): LatticeCluster => {
  const c = exampleClusters().find((x) => x.metadata.name === name);
  if (!c) throw new Error(name);
  return structuredClone(c);
};
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const find = (cluster: LatticeCluster, kind: string): any => {
  const doc = renderer.renderCluster(cluster).find((d) => d.kind === kind);
  if (!doc) throw new Error(`no ${kind}`);
  return parse(doc.text);
};

describe('kube-vip on Proxmox (kubeadm)', () => {
  it('swaps the first node\'s kube-vip to super-admin.conf for kubeadm init and back, and leaves other nodes alone', () => {
    // GIVEN the rendered kube-vip manifest and the pre/post kubeadm commands of the lab example
    const spec = find(example('lab'), 'KubeadmControlPlane').spec.kubeadmConfigSpec;
    const dir = mkdtempSync(join(tmpdir(), 'kube-vip-'));
    const manifest = join(dir, 'kube-vip.yaml');
    const marker = join(dir, 'kubeadm.yaml');
    const retarget = (cmd: string) => cmd.replaceAll('/etc/kubernetes/manifests/kube-vip.yaml', manifest).replaceAll('/run/kubeadm/kubeadm.yaml', marker);
    writeFileSync(manifest, spec.files[0].content);
    const hostPath = () => (parse(readFileSync(manifest, 'utf8')) as { spec: { volumes: { hostPath: { path: string } }[] } }).spec.volumes[0]?.hostPath.path;
    // WHEN they run on a node that does not run kubeadm init THEN nothing changes
    execFileSync('bash', ['-c', retarget(spec.preKubeadmCommands[0])]);
    expect(hostPath()).toBe('/etc/kubernetes/admin.conf');
    // WHEN they run on the init node THEN kube-vip uses super-admin.conf during init, admin.conf after
    writeFileSync(marker, '');
    execFileSync('bash', ['-c', retarget(spec.preKubeadmCommands[0])]);
    expect(hostPath()).toBe('/etc/kubernetes/super-admin.conf');
    execFileSync('bash', ['-c', retarget(spec.postKubeadmCommands[0])]);
    expect(hostPath()).toBe('/etc/kubernetes/admin.conf');
    // and the container's mount path never changes
    expect(readFileSync(manifest, 'utf8')).toContain('mountPath: "/etc/kubernetes/admin.conf"');
  });
});

describe('RKE2', () => {
  it('opens the supervisor port on the AWS control-plane load balancer', () => {
    expect(find(example('secure'), 'AWSCluster').spec.controlPlaneLoadBalancer.additionalListeners).toEqual([{ port: 9345, protocol: 'TCP' }]);
    expect(find(example('prod-eu'), 'AWSCluster').spec.controlPlaneLoadBalancer).not.toHaveProperty('additionalListeners');
  });

  it('opens the supervisor port on the OpenStack API load balancer', () => {
    const cluster = example('edge-dc1');
    cluster.spec.provider.kubernetes.bootstrap = 'rke2';
    expect(find(cluster, 'OpenStackCluster').spec.apiServerLoadBalancer.additionalPorts).toEqual([9345]);
  });

  it('passes the Proxmox provider id to the kubelet without the quotes kubeadm needs', () => {
    const cluster = example('lab');
    cluster.spec.provider.kubernetes.bootstrap = 'rke2';
    expect(find(cluster, 'RKE2ControlPlane').spec.agentConfig.kubelet.extraArgs).toEqual(['provider-id=proxmox://{{ ds.meta_data.instance_id }}']);
    expect(find(example('lab'), 'KubeadmControlPlane').spec.kubeadmConfigSpec.joinConfiguration.nodeRegistration.kubeletExtraArgs)
      .toEqual([{ name: 'provider-id', value: "proxmox://'{{ ds.meta_data.instance_id }}'" }]);
  });
});

describe('pool labels', () => {
  it('put node-role labels on the Machine (Cluster API syncs them) and the rest on the kubelet', () => {
    // GIVEN a pool with a node-role label and an ordinary one
    const cluster = example('dev');
    const pool = cluster.spec.nodes.workerPools?.general;
    if (!pool) throw new Error('dev has a general pool');
    pool.labels = { 'node-role.kubernetes.io/worker': '', 'example.com/tier': 'web' };
    // THEN the kubelet gets only the one it may set itself
    const join = find(cluster, 'KubeadmConfigTemplate').spec.template.spec.joinConfiguration.nodeRegistration;
    expect(join.kubeletExtraArgs).toEqual([{ name: 'node-labels', value: 'example.com/tier=web,lattice.dev/pool=general' }]);
    // and the MachineDeployment's machines carry the node-role label, with the selector unchanged
    const md = find(cluster, 'MachineDeployment');
    expect(md.spec.template.metadata.labels).toEqual({ 'cluster.x-k8s.io/cluster-name': 'dev', 'lattice.dev/pool': 'general', 'node-role.kubernetes.io/worker': '' });
    expect(md.spec.selector.matchLabels).toEqual({ 'cluster.x-k8s.io/cluster-name': 'dev', 'lattice.dev/pool': 'general' });
  });
});

describe('AWS SSH keys', () => {
  it('render an unset sshKeyName as "" (no key), not omitted (CAPA would use a key named "default")', () => {
    expect(find(example('ml-inference'), 'AWSCluster').spec.sshKeyName).toBe('');
    expect(find(example('ml-inference'), 'AWSMachineTemplate').spec.template.spec.sshKeyName).toBe('');
    expect(find(example('prod-eu'), 'AWSCluster').spec.sshKeyName).toBe('platform-team');
  });
});
