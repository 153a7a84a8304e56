/**
 * argocd/argocd-cm-health.yaml is what users install and what sim/health/lua.ts executes; the Lua files under
 * argocd/health are what reviewers read and what the fixtures sit beside. The patch is generated from the
 * files (`npx tsx sim/health/write-patch.ts`); these tests keep the two identical, byte for byte.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { readConfigMapData, shippedHealthPatch } from '../sim/health/lua.js';
import { healthScripts, renderHealthPatch } from '../sim/health/patch.js';

const REGENERATE = 'argocd/argocd-cm-health.yaml is stale: run `npx tsx sim/health/write-patch.ts`';

describe('argocd/argocd-cm-health.yaml', () => {
  it('is exactly what the generator renders from argocd/health/*/health.lua', () => {
    // GIVEN the committed patch WHEN compared with a fresh rendering THEN they are identical
    expect(readFileSync(shippedHealthPatch(), 'utf8'), REGENERATE).toBe(renderHealthPatch());
  });

  it('holds every health.lua verbatim under its resource.customizations.health key, and nothing else', () => {
    // GIVEN the ConfigMap data of the patch and the Lua files
    const data = readConfigMapData(shippedHealthPatch());
    const scripts = healthScripts();
    // THEN each key's value is byte-equal to its file
    for (const { key, script, file } of scripts) expect(data[key], `${key} vs ${file}: ${REGENERATE}`).toBe(script);
    // AND there are no other keys: no useOpenLibs (the scripts use the base library only), no stray checks
    expect(Object.keys(data).sort()).toEqual(scripts.map((s) => s.key).sort());
  });

  it('patches the argocd-cm ConfigMap that Argo CD reads (name and part-of label), leaving the namespace to the install', () => {
    const cm = parse(readFileSync(shippedHealthPatch(), 'utf8')) as { apiVersion: string; kind: string; metadata: Record<string, unknown> };
    expect(cm.apiVersion).toBe('v1');
    expect(cm.kind).toBe('ConfigMap');
    // Argo CD's settings informer selects ConfigMaps labelled app.kubernetes.io/part-of=argocd (util/settings).
    expect(cm.metadata).toEqual({ name: 'argocd-cm', labels: { 'app.kubernetes.io/name': 'argocd-cm', 'app.kubernetes.io/part-of': 'argocd' } });
  });

  it('refuses a script that a YAML literal block could not carry verbatim', () => {
    // GIVEN scripts with a trailing space, a tab, no final newline, two final newlines
    const bad = ['return hs \n', 'if x then\n\treturn hs\nend\n', 'return hs', 'return hs\n\n'];
    for (const script of bad) {
      const file = { groupKind: 'example.com_Thing', key: 'resource.customizations.health.example.com_Thing', file: '/tmp/health.lua', script };
      // WHEN rendered THEN the generator fails instead of shipping a script that differs from the file
      expect(() => renderHealthPatch([file]), JSON.stringify(script)).toThrow();
    }
  });
});
