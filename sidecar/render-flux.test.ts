/** `lattice render --flavor flux`, in-process through the CLI program. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { run } from '../cli/program.js';
import { REPO } from '../test/support/repo.js';
import { readTree, tempDir } from './testing.js';

async function lattice(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}
const examples = join(REPO, 'examples/clusters');

describe('lattice render --flavor flux', () => {
  it('prints every artifact\'s documents, each after a "# file: <artifact>/<path>" comment', async () => {
    // WHEN the examples are rendered with the Flux flavor
    const r = await lattice(['render', '--flavor', 'flux', examples]);
    // THEN every document names its file, and the stream parses
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const docs = r.stdout.split(/^---\n/m).filter((d) => d !== '');
    expect(docs.every((d) => /^# file: lattice-(index|cluster-[a-z0-9-]+)\/[a-z0-9/.-]+\.yaml\n/.test(d))).toBe(true);
    const files = new Set(docs.map((d) => d.slice('# file: '.length, d.indexOf('\n'))));
    expect(files).toEqual(new Set([
      'lattice-index/infraproviders.yaml',
      ...['dev', 'edge-dc1', 'lab', 'mgmt', 'ml-inference', 'prod-eu', 'secure'].flatMap((c) => [
        `lattice-index/clusters/${c}.yaml`, `lattice-cluster-${c}/infrastructure/manifests.yaml`, `lattice-cluster-${c}/addons/manifests.yaml`, `lattice-cluster-${c}/agent/manifests.yaml`,
      ]),
    ]));
    const parsed = parseAllDocuments(r.stdout);
    expect((Array.isArray(parsed) ? parsed : [parsed]).filter((d) => d.errors.length > 0)).toEqual([]);
  });

  it('keeps plain as the default flavor', async () => {
    const plain = await lattice(['render', '--flavor', 'plain', examples]);
    const byDefault = await lattice(['render', examples]);
    expect(plain.code).toBe(0);
    expect(byDefault.stdout).toBe(plain.stdout);
    expect(plain.stdout).not.toContain('# file:');
  });

  it('writes the artifacts\' trees with --out-dir, the same files the sidecar packs', async () => {
    const tmp = tempDir('lattice-render-flux-');
    try {
      const r = await lattice(['render', '--flavor', 'flux', '--namespace', 'gitops', '--out-dir', tmp.dir, join(examples, 'dev-docker.yaml')]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^rendered 2 Flux artifacts \(\d+ objects\) into /);
      expect(readTree(tmp.dir)).toEqual([
        'lattice-cluster-dev/addons/manifests.yaml', 'lattice-cluster-dev/agent/manifests.yaml', 'lattice-cluster-dev/infrastructure/manifests.yaml', 'lattice-index/clusters/dev.yaml',
      ]);
      expect(readFileSync(join(tmp.dir, 'lattice-index/clusters/dev.yaml'), 'utf8')).toContain('namespace: "gitops"');
    } finally {
      tmp.remove();
    }
  });

  it('prints a JSON List with --format json, and verifies with --verify', async () => {
    const r = await lattice(['render', '--flavor', 'flux', '--format', 'json', '--verify', join(examples, 'dev-docker.yaml')]);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { kind: string; items: { kind: string }[] };
    expect(list.kind).toBe('List');
    expect(list.items.filter((i) => i.kind === 'Kustomization')).toHaveLength(3);
    expect(list.items.filter((i) => i.kind === 'HelmRelease').length).toBeGreaterThan(3);
  });

  it('renders nothing for invalid input, exactly like the plain flavor', async () => {
    const bad = join(REPO, 'core/spec/testdata/invalid/taint-key-invalid.yaml');
    const flux = await lattice(['render', '--flavor', 'flux', examples, bad]);
    const plain = await lattice(['render', examples, bad]);
    expect(flux.code).toBe(1);
    expect(flux.stdout).toBe('');
    expect(flux.stderr).toBe(plain.stderr);
  });
});
