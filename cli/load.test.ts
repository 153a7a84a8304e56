/** Validators precompiled at build time: used only when they match, and a damaged build is not fatal. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crdDigest, loadCrdSources } from './assets.js';
import { precompiledKinds } from './load.js';

const sources = loadCrdSources();
const dir = mkdtempSync(join(tmpdir(), 'lattice-built-'));
const built = (name: string, code: string): string => {
  const file = join(dir, name);
  writeFileSync(file, code);
  return file;
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('precompiled validators', () => {
  it.each([
    ['a module that does not parse', 'module.exports = {'],
    ['a module that throws as it loads', 'throw new Error("half written")'],
    ['validators that cannot be created', `module.exports = { crdDigest: ${JSON.stringify(crdDigest(sources))}, kinds: [], create() { throw new Error("broken"); } };`],
    ['a validator missing', `module.exports = { crdDigest: ${JSON.stringify(crdDigest(sources))}, kinds: [{ kind: "LatticeCluster", namespaced: false, versions: ["v1alpha1"] }], create: () => ({}) };`],
  ])('leave %s aside with a warning, so the sources are compiled instead', (_what, code) => {
    // GIVEN a damaged build
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    // WHEN it is loaded THEN nothing is used, and the warning says what to do
    expect(precompiledKinds(sources, built(`${Math.random().toString(16).slice(2)}.cjs`, code))).toBeUndefined();
    expect(warn).toHaveBeenCalledOnce();
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/unusable .*rebuild with npm run build/);
  });

  it('ignore, silently, validators built from other CRDs', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const stale = built('stale.cjs', 'module.exports = { crdDigest: "other", kinds: [], create: () => ({}) };');
    expect(precompiledKinds(sources, stale)).toBeUndefined();
    expect(precompiledKinds(sources, join(dir, 'absent.cjs'))).toBeUndefined();
    expect(warn).not.toHaveBeenCalled();
  });

  it('use matching validators', () => {
    const validate = () => true;
    const file = built('ok.cjs', `module.exports = { crdDigest: ${JSON.stringify(crdDigest(sources))}, kinds: [{ kind: "LatticeCluster", namespaced: false, versions: ["v1alpha1"] }], create: () => ({ "LatticeCluster/v1alpha1": ${validate.toString()} }) };`);
    const kinds = precompiledKinds(sources, file);
    expect(kinds?.map((k) => [k.kind, [...k.versions.keys()]])).toEqual([['LatticeCluster', ['v1alpha1']]]);
  });
});
