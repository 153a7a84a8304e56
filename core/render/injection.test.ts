/**
 * Property: no string in a spec can change the shape of the output. The model is built directly
 * (bypassing validation, as defense in depth) with arbitrary strings in every free-text field; the
 * rendered stream must parse, under YAML 1.2 and under YAML 1.1 (go-yaml v2, as kubectl and Argo CD
 * read it), into exactly the planned objects, with every string unchanged.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { specRenderer } from '../../cli/load.js';
import type { LatticeCluster } from '../spec/model.js';
import { toYamlStream } from './render.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Spec files are UTF-8, so they cannot hold lone surrogates; everything else is fair game.
const text = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).filter((s) => !LONE_SURROGATE.test(s));
const tricky = fc.constantFrom('---', '...', '{{ x }}', '{% if %}', 'a: b', '- x', '"', "'", '\\', '\n', '\u2028', '\u0085', '#', '&a', '*a', '!!binary', 'on', 'no', '~', 'null', '0x10', '1e3', ' ', '\t', '|', '>');
const freeText = fc.oneof({ weight: 3, arbitrary: text }, { weight: 1, arbitrary: tricky });
const dnsLabel = fc.stringMatching(/^[a-z]([-a-z0-9]{0,8}[a-z0-9])?$/);

const clusterArb = fc.record({
  name: dnsLabel,
  pool: dnsLabel,
  displayName: freeText,
  labelKey: freeText,
  labelValue: freeText,
  taintValue: freeText,
  sshKeyName: freeText,
  customImage: freeText,
  certSAN: freeText,
  annotation: freeText,
  autoscale: fc.boolean(),
  provider: fc.constantFrom('docker', 'aws'),
}).map((a): { cluster: LatticeCluster; strings: string[] } => {
  const config = a.provider === 'docker'
    ? { docker: { customImage: a.customImage } }
    : { aws: { region: a.sshKeyName, sshKeyName: a.sshKeyName, loadBalancerType: 'nlb' as const, internalLoadBalancer: false, controlPlaneIamInstanceProfile: a.customImage, workerIamInstanceProfile: a.customImage } };
  const cluster: LatticeCluster = {
    apiVersion: 'lattice.dev/v1alpha1',
    kind: 'LatticeCluster',
    metadata: { name: a.name, labels: { [a.labelKey]: a.labelValue }, annotations: { 'example.com/note': a.annotation } },
    spec: {
      providerRef: 'p',
      provider: { kubernetes: { version: 'v1.34.1', bootstrap: 'kubeadm', certSANs: [a.certSAN] }, config },
      nodes: {
        controlPlane: { replicas: 1, ...(a.provider === 'aws' ? { instanceType: { name: a.customImage } } : {}) },
        workerPools: {
          [a.pool]: {
            displayName: a.displayName,
            ...(a.autoscale ? { min: 0, max: 3 } : { replicas: 2 }),
            ...(a.provider === 'aws' ? { instanceType: { name: a.displayName } } : {}),
            labels: { [a.labelKey]: a.labelValue },
            taints: [{ key: a.labelKey, value: a.taintValue, effect: 'NoSchedule' }],
          },
        },
      },
      networking: { podCidrBlocks: ['10.0.0.0/16'], serviceCidrBlocks: ['10.1.0.0/16'] },
      services: true, gpu: false, monitoring: true, backups: true,
    },
  };
  return { cluster, strings: [a.displayName, a.labelKey, a.labelValue, a.taintValue, a.sshKeyName, a.customImage, a.certSAN, a.annotation] };
});

describe('rendering arbitrary spec strings', () => {
  const renderer = specRenderer();

  for (const version of ['1.2', '1.1'] as const) {
    it(`keeps the planned objects and round-trips every string (YAML ${version} reader)`, () => {
      fc.assert(fc.property(clusterArb, ({ cluster, strings }) => {
        // WHEN the cluster is rendered and the stream parsed back
        const docs = renderer.renderCluster(cluster);
        const parsed = parseAllDocuments(toYamlStream(docs), { version, uniqueKeys: true });
        const list = Array.isArray(parsed) ? parsed : [parsed];
        // THEN there are exactly the planned documents, each the planned object, without parse errors
        expect(list).toHaveLength(docs.length);
        const objects = list.map((d) => {
          expect(d.errors).toEqual([]);
          return d.toJS({ maxAliasCount: 0 }) as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };
        });
        expect(objects.map((o) => [o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name])).toEqual(docs.map((d) => [d.apiVersion, d.kind, d.namespace, d.name]));
        // and the LatticeCluster carries the spec and metadata exactly as given
        const lc = objects.find((o) => o.kind === 'LatticeCluster') as unknown as LatticeCluster;
        expect(lc.spec).toEqual(cluster.spec);
        expect(lc.metadata).toEqual(cluster.metadata);
        // and every string also reaches the Cluster API objects unchanged where it is used
        const all = JSON.stringify(objects.filter((o) => o.kind !== 'LatticeCluster'));
        const used = [strings[1], strings[3], strings[6]].filter((s): s is string => s !== undefined);
        for (const s of used) expect(all).toContain(JSON.stringify(s).slice(1, -1));
      }), { numRuns: Number(process.env.LATTICE_PROPERTY_RUNS ?? 150) });
    });
  }
});
