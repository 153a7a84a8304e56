import { describe, expect, it } from 'vitest';
import { specRenderer } from '../../cli/load.js';
import { checkOverrides, parseAddonCatalog } from './addons.js';
import { STAGES } from './stages.js';

const catalog = specRenderer().versions.addons;

describe('the addon catalog (templates/versions.yaml)', () => {
  it('covers every addon stage of DESIGN §4 with pinned versions', () => {
    const stages = new Set(catalog.map((a) => a.stage));
    expect([...stages]).toEqual(STAGES.map((s) => s.stage).filter((s) => !['cluster', 'infrastructure', 'agent'].includes(s)));
    expect(catalog.map((a) => a.id)).toEqual(['cilium', 'cert-manager', 'istio-base', 'istiod', 'istio-cni', 'ztunnel', 'external-secrets', 'vmagent', 'victoria-metrics', 'keda', 'velero', 'node-feature-discovery', 'nvidia-device-plugin', 'hami', 'cluster-api-operator']);
  });

  it('rejects malformed entries, duplicates and entries out of stage order, naming each', () => {
    const errors: string[] = [];
    parseAddonCatalog([
      { id: 'b', stage: 'mesh', condition: 'Mesh', repository: 'https://x', chart: 'b', version: '1.0.0', namespace: 'b' },
      { id: 'a', stage: 'cni', condition: 'CNI', repository: 'https://x', chart: 'a', version: '1.0.0', namespace: 'a' },
      { id: 'c', stage: 'cni', condition: 'CNI', repository: 'ftp://x', chart: 'c', version: '1.0.0', namespace: 'c' },
      { id: 'b', stage: 'nope', condition: 'Ready', repository: 'https://x', chart: 'b', version: 'latest', namespace: 'b' },
    ], errors);
    expect(errors).toEqual([
      'addons[2].repository: invalid value "ftp://x"',
      'addons[3].stage: invalid value "nope"',
      'addons[3].condition: invalid value "Ready"',
      'addons[3].version: invalid value "latest"',
      'addons[3].id: duplicate addon b',
      'addons: a (cni) is listed after b (mesh); list addons in stage order',
    ]);
  });

  it('accepts overrides only for known addons and with well-formed values', () => {
    expect(checkOverrides(catalog, { repositories: { cilium: 'oci://mirror.internal/charts' }, versions: { keda: '2.19.1' } })).toEqual([]);
    expect(checkOverrides(catalog, { repositories: { cilum: 'https://x' }, versions: { keda: '2.19; rm -rf' } })).toEqual([
      expect.stringMatching(/^chart-repositories: unknown addon "cilum"/),
      'chart-versions.keda: expected a chart version such as 1.2.3, found "2.19; rm -rf"',
    ]);
  });
});
