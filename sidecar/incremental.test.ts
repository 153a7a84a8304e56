/**
 * The incremental build against the full one, commit after commit of a real git repository: the same
 * artifacts byte for byte and the same issues, whatever the commit does; and only what changed is
 * validated, rendered and packed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { specRenderer } from '../cli/load.js';
import { clusterArtifactName, INDEX_ARTIFACT, type FluxOptions } from '../core/flavor/flux.js';
import { REPO } from '../test/support/repo.js';
import { buildArtifacts } from './build.js';
import { IncrementalBuilder, type IncrementalBuildResult } from './incremental.js';
import { createSpecRepo, tempDir, type SpecRepo } from './testing.js';

const EXAMPLES = join(REPO, 'examples/clusters');
const OPTIONS: FluxOptions = { namespace: 'flux-system' };
const tmp = tempDir('lattice-sidecar-incremental-');
const renderer = specRenderer();
const example = (f: string) => readFileSync(join(EXAMPLES, f), 'utf8');
const exampleFiles = (): Record<string, string> => Object.fromEntries(readdirSync(EXAMPLES).map((f) => [`clusters/${f}`, example(f)]));
const renamed = (file: string, name: string) => example(file).replace(/^ {2}name: .*$/m, `  name: ${name}`);
const workers = (file: string, n: number) => example(file).replace(/(workerPools:\n(?:.*\n)*?\s+replicas: )\d+/, `$1${n}`);

let repo: SpecRepo;
let builder: IncrementalBuilder;

beforeAll(async () => {
  repo = await createSpecRepo(join(tmp.dir, 'repo'));
  builder = new IncrementalBuilder(renderer, OPTIONS);
});
afterAll(() => tmp.remove());

/** Commits, builds both ways from the checked-out tree, and checks they agree exactly. */
async function commitAndBuild(files: Readonly<Record<string, string | null>>): Promise<IncrementalBuildResult> {
  await repo.commit(files);
  const incremental = builder.build(repo.dir, 'clusters');
  const full = buildArtifacts(renderer, repo.dir, 'clusters', OPTIONS);
  expect(incremental.ok).toBe(full.ok);
  if (incremental.ok && full.ok) {
    expect(incremental.artifacts.map((a) => [a.name, a.cluster, a.hex])).toEqual(full.artifacts.map((a) => [a.name, a.cluster, a.hex]));
    incremental.artifacts.forEach((a, i) => expect(a.bytes.equals(full.artifacts[i]?.bytes ?? Buffer.alloc(0)), a.name).toBe(true));
    expect(incremental.clusters).toBe(full.clusters);
  }
  if (!incremental.ok && !full.ok) expect(incremental.issues).toEqual(full.issues);
  return incremental;
}

const digests = (r: IncrementalBuildResult): Map<string, string> => new Map(r.ok ? r.artifacts.map((a) => [a.name, a.hex]) : []);

describe('IncrementalBuilder', () => {
  let last: Map<string, string>;

  it('builds the first commit in full, like buildArtifacts', async () => {
    // WHEN the examples are committed and built
    const r = await commitAndBuild(exampleFiles());
    // THEN everything was validated and rendered
    expect(r.stats).toEqual({ validation: 'full', changedFiles: 8, renderedClusters: 7, reusedClusters: 0, indexPacked: true, indexAssembled: true });
    last = digests(r);
  });

  it('re-renders only the cluster whose spec changed, keeping every other artifact and the index', async () => {
    // WHEN a commit scales dev's workers
    const r = await commitAndBuild({ 'clusters/dev-docker.yaml': workers('dev-docker.yaml', 5) });
    // THEN only that file was validated and only dev was rendered; the index (its Kustomizations) is unchanged
    expect(r.stats).toEqual({ validation: 'incremental', changedFiles: 1, renderedClusters: 1, reusedClusters: 6, indexPacked: false, indexAssembled: true });
    const now = digests(r);
    for (const [name, hex] of now) {
      if (name === clusterArtifactName('dev')) expect(hex).not.toBe(last.get(name));
      else expect(hex, name).toBe(last.get(name));
    }
    last = now;
  });

  it('renders nothing for a change that does not change the validated object (a comment)', async () => {
    // WHEN a comment is added to a spec
    const r = await commitAndBuild({ 'clusters/dev-docker.yaml': `# scaled for the load test\n${workers('dev-docker.yaml', 5)}` });
    // THEN the file was re-validated, but its cluster's artifact is reused
    expect(r.stats).toMatchObject({ validation: 'incremental', changedFiles: 1, renderedClusters: 0, indexPacked: false });
    expect(digests(r)).toEqual(last);
  });

  it('adds a cluster from a new file and removes one whose file is deleted, changing the index', async () => {
    // WHEN one commit adds a cluster and deletes another
    const r = await commitAndBuild({ 'clusters/extra/dev2.yaml': renamed('dev-docker.yaml', 'dev2'), 'clusters/lab-proxmox.yaml': null });
    // THEN the new cluster is rendered, the removed one's artifact is gone, the index re-packed
    expect(r.stats).toMatchObject({ validation: 'incremental', changedFiles: 2, renderedClusters: 1, indexPacked: true });
    const now = digests(r);
    expect(now.has(clusterArtifactName('dev2'))).toBe(true);
    expect(now.has(clusterArtifactName('lab'))).toBe(false);
    expect(now.get(INDEX_ARTIFACT)).not.toBe(last.get(INDEX_ARTIFACT));
    expect(now.get(clusterArtifactName('prod-eu'))).toBe(last.get(clusterArtifactName('prod-eu')));
    last = now;
  });

  it('reports a duplicate across files with core\'s issues, then builds incrementally again from the last good commit', async () => {
    // WHEN a new file defines a cluster that already exists in an unchanged file
    const bad = await commitAndBuild({ 'clusters/zz-copy.yaml': renamed('dev-docker.yaml', 'dev2') });
    // THEN it fails with the duplicate located, as a full validation says (compared in commitAndBuild)
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.issues.map((i) => i.code)).toContain('DUPLICATE_OBJECT');
    expect(bad.stats.validation).toBe('full');
    // AND WHEN the copy is removed again, the build is incremental against the last good commit
    const fixed = await commitAndBuild({ 'clusters/zz-copy.yaml': null });
    expect(fixed.stats).toMatchObject({ validation: 'incremental', renderedClusters: 0, indexPacked: false });
    expect(digests(fixed)).toEqual(last);
  });

  it('reports an invalid changed file and a cluster that no longer matches its provider, like a full validation', async () => {
    // WHEN a spec gets an even control plane
    const even = await commitAndBuild({ 'clusters/dev-docker.yaml': workers('dev-docker.yaml', 5).replace(/controlPlane:\n {6}replicas: 1/, 'controlPlane:\n      replicas: 2') });
    expect(even.ok).toBe(false);
    // AND WHEN it instead points at an InfraProvider of another type
    const mismatch = await commitAndBuild({ 'clusters/dev-docker.yaml': workers('dev-docker.yaml', 5).replace('providerRef: docker', 'providerRef: aws-prod') });
    expect(mismatch.ok).toBe(false);
    if (!mismatch.ok) expect(mismatch.issues.map((i) => i.code)).toEqual(['PROVIDER_TYPE_MISMATCH']);
    // THEN the fix builds again, with the last good artifacts
    const fixed = await commitAndBuild({ 'clusters/dev-docker.yaml': workers('dev-docker.yaml', 5) });
    expect(fixed.ok).toBe(true);
    expect(digests(fixed)).toEqual(last);
  });

  it('validates everything when an InfraProvider changes: unchanged clusters are checked against it', async () => {
    // WHEN the docker InfraProvider turns into an aws one (dev, unchanged, configures docker)
    const infra = example('infraproviders.yaml');
    const r = await commitAndBuild({ 'clusters/infraproviders.yaml': infra.replace(/name: docker\n {2}namespace: lattice-system\nspec:\n {2}type: docker/, 'name: docker\n  namespace: lattice-system\nspec:\n  type: aws\n  region: eu-west-1') });
    // THEN the unchanged clusters' mismatch is reported
    expect(r.ok).toBe(false);
    expect(r.stats.validation).toBe('full');
    if (!r.ok) {
      const mismatched = r.issues.filter((i) => i.code === 'PROVIDER_TYPE_MISMATCH').map((i) => i.file).sort();
      expect(mismatched).toEqual(['clusters/dev-docker.yaml', 'clusters/extra/dev2.yaml', 'clusters/mgmt-parent.yaml']);
    }
    // AND a harmless InfraProvider change builds in full, rendering nothing again
    const ok = await commitAndBuild({ 'clusters/infraproviders.yaml': `${infra}\n# reviewed\n` });
    expect(ok.stats).toMatchObject({ validation: 'full', renderedClusters: 0 });
    expect(digests(ok)).toEqual(last);
  });

  it('keeps objects that are not ours in the index, in input order, as they change', async () => {
    // WHEN a ConfigMap is committed beside the specs, then changed
    const cm = (v: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n  namespace: flux-system\ndata:\n  v: "${v}"\n`;
    const added = await commitAndBuild({ 'clusters/aa-notes.yaml': cm('1') });
    const changed = await commitAndBuild({ 'clusters/aa-notes.yaml': cm('2') });
    // THEN the index changes each time and no cluster is rendered again
    expect(changed.stats).toMatchObject({ validation: 'incremental', renderedClusters: 0, indexPacked: true });
    expect(digests(changed).get(INDEX_ARTIFACT)).not.toBe(digests(added).get(INDEX_ARTIFACT));
  });

  it('refuses a spec file that cannot be read, like loadSpecs', async () => {
    // WHEN a binary file with a YAML name is committed
    const r = await commitAndBuild({ 'clusters/broken.yaml': '\u0000binary' });
    // THEN the issue is core's, and the next good commit builds again
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]?.code).toBe('FILE_BINARY');
    const fixed = await commitAndBuild({ 'clusters/broken.yaml': null });
    expect(fixed.ok).toBe(true);
  });
});
