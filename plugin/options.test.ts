import { describe, expect, it } from 'vitest';
import { announcements, escapeParamName, readCmpOptions } from './options.js';

const ids = ['cilium', 'cert-manager'];
const source = { ARGOCD_APP_SOURCE_REPO_URL: 'https://git.example.com/c.git', ARGOCD_APP_SOURCE_PATH: 'clusters', ARGOCD_APP_SOURCE_TARGET_REVISION: 'main' };

describe('readCmpOptions', () => {
  it('defaults to every cluster in the argocd namespace and default project', () => {
    const r = readCmpOptions(source, ids);
    expect(r).toEqual({ ok: true, value: { component: 'clusters', include: [], exclude: [], argocdNamespace: 'argocd', project: 'default', overrides: {}, allowEmpty: false, source: { repoURL: 'https://git.example.com/c.git', path: 'clusters', targetRevision: 'main' } } });
  });

  it('reads ARGOCD_APP_PARAMETERS (string, array and map parameters)', () => {
    const params = [
      { name: 'include', array: ['a', 'b'] },
      { name: 'project', string: 'platform' },
      { name: 'chart-repositories', map: { 'cert-manager': 'oci://mirror/charts' } },
    ];
    const r = readCmpOptions({ ARGOCD_APP_PARAMETERS: JSON.stringify(params) }, ids);
    expect(r.ok && r.value).toMatchObject({ include: ['a', 'b'], project: 'platform', overrides: { repositories: { 'cert-manager': 'oci://mirror/charts' } } });
  });

  it('reads PARAM_* variables, matching escaped map keys back to addon ids', () => {
    const r = readCmpOptions({ PARAM_INCLUDE_0: 'a', PARAM_INCLUDE_1: 'b', PARAM_ARGOCD_NAMESPACE: 'gitops', PARAM_CHART_VERSIONS_CERT_MANAGER: 'v1.20.0' }, ids);
    expect(r.ok && r.value).toMatchObject({ include: ['a', 'b'], argocdNamespace: 'gitops', overrides: { versions: { 'cert-manager': 'v1.20.0' } } });
  });

  it('reads ARGOCD_ENV_* (comma lists, k=v maps)', () => {
    const r = readCmpOptions({ ARGOCD_ENV_EXCLUDE: 'x, y', ARGOCD_ENV_CHART_VERSIONS: 'cilium=1.19.2,cert-manager=v1.20.0' }, ids);
    expect(r.ok && r.value).toMatchObject({ exclude: ['x', 'y'], overrides: { versions: { cilium: '1.19.2', 'cert-manager': 'v1.20.0' } } });
  });

  it('prefers ARGOCD_APP_PARAMETERS over PARAM_* over ARGOCD_ENV_*', () => {
    const env = { ARGOCD_ENV_PROJECT: 'from-env', PARAM_PROJECT: 'from-param', ARGOCD_APP_PARAMETERS: JSON.stringify([{ name: 'project', string: 'from-json' }]) };
    expect(readCmpOptions(env, ids)).toMatchObject({ ok: true, value: { project: 'from-json' } });
    expect(readCmpOptions({ ARGOCD_ENV_PROJECT: 'from-env', PARAM_PROJECT: 'from-param' }, ids)).toMatchObject({ ok: true, value: { project: 'from-param' } });
    expect(readCmpOptions({ ARGOCD_ENV_PROJECT: 'from-env' }, ids)).toMatchObject({ ok: true, value: { project: 'from-env' } });
  });

  it('rejects unknown parameters, wrong kinds, bad values and a missing cluster for the agent', () => {
    const r = readCmpOptions({ ARGOCD_APP_PARAMETERS: JSON.stringify([{ name: 'inclde', array: ['a'] }, { name: 'project', array: ['x'] }, { name: 'component', string: 'agent' }, { name: 'argocd-namespace', string: 'Argo CD' }]) }, ids);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors).toEqual([
      'parameter "inclde" is unknown (expected one of component, cluster, include, exclude, argocd-namespace, project, chart-repositories, chart-versions, allow-empty)',
      'parameter project: expected a string value',
      'parameter cluster: required when component is agent',
      'parameter argocd-namespace: expected a namespace name, found "Argo CD"',
    ]);
    expect(readCmpOptions({ ARGOCD_APP_PARAMETERS: '{"name":"x"}' }, ids)).toEqual({ ok: false, errors: ['ARGOCD_APP_PARAMETERS: expected a JSON array of parameters'] });
    expect(readCmpOptions({ ARGOCD_APP_PARAMETERS: 'not json' }, ids)).toEqual({ ok: false, errors: ['ARGOCD_APP_PARAMETERS: not valid JSON'] });
  });

  it('escapes names the way Argo CD does for PARAM_*', () => {
    expect(escapeParamName('some-map-param')).toBe('SOME_MAP_PARAM');
    expect(escapeParamName('image.tag')).toBe('IMAGE_TAG');
  });
});

describe('announcements', () => {
  it('lists every parameter with explicit collection types and the clusters found', () => {
    const a = announcements(['dev', 'prod'], { repositories: { cilium: 'https://helm.cilium.io/' }, versions: { cilium: '1.19.1' } }) as { name: string; collectionType?: string; array?: string[] }[];
    expect(a.find((p) => p.name === 'include')).toMatchObject({ collectionType: 'array', array: ['dev', 'prod'] });
    expect(a.find((p) => p.name === 'chart-versions')).toMatchObject({ collectionType: 'map', map: { cilium: '1.19.1' } });
    expect(a.find((p) => p.name === 'component')).toMatchObject({ string: 'clusters' });
  });
});
