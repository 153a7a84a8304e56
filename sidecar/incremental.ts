/**
 * The build of one commit, incremental: what the last good commit produced is kept, and a new commit only
 * re-validates the spec files whose bytes changed and re-renders and re-packs the clusters whose validated
 * object changed. The output is exactly `buildArtifacts`' (the same artifacts, byte for byte, and the same
 * issues): every shortcut below is taken only when it provably gives the same answer, and otherwise the
 * full path runs. Tests compare the two commit after commit (incremental.test.ts).
 *
 * Why it is sound:
 *  - Validation (core/spec/validate.ts) is per document, plus two checks across documents: the same object
 *    defined twice, and a cluster whose provider config does not match its InfraProvider's type. A file
 *    whose bytes did not change validates to the same objects. The changed files are validated by the core
 *    validator together with every file holding an InfraProvider, so their own issues and their provider
 *    checks come from core. Duplicates across files are ruled out with an identity coarser than core's
 *    (kind, namespace, name: every core duplicate is a duplicate of these); any collision, or any
 *    InfraProvider in a changed file (before or after), or any unreadable input sends the commit through
 *    full validation, which reports the issues as always. So does a previous commit that failed.
 *  - Rendering is pure (core takes data, returns data): a cluster artifact depends only on the validated
 *    cluster object and the flavor options, which are fixed for a builder, so it is cached by the
 *    object's JSON. So is each cluster's file of the index (its three Kustomizations), taken from core's
 *    index of that one cluster alone; the index is those files, by cluster name, after what core puts in an
 *    index without clusters (InfraProviders, other objects). That assembly is checked against core's whole
 *    index on the first build, and core's is used from then on if they ever differ. The packed index is
 *    reused while its files are unchanged (packing 1,000 clusters' index costs more than everything else of
 *    a one-cluster commit).
 * Caches hold the entries the last build used and nothing else, so memory follows the repository's size.
 * A core function giving a cluster's index file (and one assembling the index) would make the assembly here
 * unnecessary.
 */
import { readInputs } from '../cli/inputs.js';
import { loadSpecs, specValidator } from '../cli/load.js';
import { fluxClusterArtifact, fluxIndexArtifact, renderFluxArtifacts, type FluxOptions, type RenderedFluxFile } from '../core/flavor/flux.js';
import type { Renderer } from '../core/render/render.js';
import type { ClusterPlan } from '../core/render/plan.js';
import { DEFAULT_SOURCE_LIMITS, type SourceFile } from '../core/spec/source.js';
import type { InfraProvider, LatticeCluster } from '../core/spec/model.js';
import type { KubernetesObject, Located, SpecSet } from '../core/spec/validate.js';
import { packArtifact, sha256Hex } from './archive.js';
import type { BuildResult, BuiltArtifact } from './build.js';

/** How a build went, for logs and tests. */
export interface BuildStats {
  /** `incremental` when only the changed files were validated. */
  readonly validation: 'full' | 'incremental';
  /** Spec files whose bytes changed since the last good build (all of them on the first). */
  readonly changedFiles: number;
  /** Cluster artifacts rendered and packed by this build; the others were reused. */
  readonly renderedClusters: number;
  readonly reusedClusters: number;
  /** Whether the index was packed again (false: its files were unchanged). */
  readonly indexPacked: boolean;
  /** Whether the index was assembled from cached per-cluster files (false: rendered whole by core). */
  readonly indexAssembled: boolean;
}

export type IncrementalBuildResult = BuildResult & { readonly stats: BuildStats };

/** What one spec file validated to, at the last good build. */
interface FileEntry {
  readonly bytes: Uint8Array;
  readonly clusters: readonly Located<LatticeCluster>[];
  readonly infraProviders: readonly Located<InfraProvider>[];
  readonly others: readonly Located<KubernetesObject>[];
}

interface CachedArtifact {
  readonly name: string;
  readonly bytes: Buffer;
  readonly hex: string;
}

const byName = <T extends { metadata: { name: string; namespace?: string } }>(a: Located<T>, b: Located<T>): number =>
  `${a.object.metadata.namespace ?? ''}/${a.object.metadata.name}` < `${b.object.metadata.namespace ?? ''}/${b.object.metadata.name}` ? -1 : 1;

/** Coarser than core's object identity (which adds the API group): equal core identities give equal keys. */
function identityOf(o: { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } }): string | undefined {
  const name = o.metadata?.name;
  if (typeof name !== 'string') return undefined;
  // The namespace as core's identity writes it (`?? ''`, then as text), so 5 and "5" collide here too.
  return `${String(o.kind)}/${String(o.metadata?.namespace ?? '')}/${name}`;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

/** Same paths and texts, in order (a file reused from the cache is the same object: no text compared). */
const sameFiles = (a: readonly RenderedFluxFile[], b: readonly RenderedFluxFile[]): boolean =>
  a.length === b.length && a.every((f, i) => f === b[i] || (f.path === b[i]?.path && f.text === b[i]?.text));

/** Splits a validated set by the file each object came from. */
function entriesOf(files: readonly SourceFile[], specs: SpecSet): Map<string, FileEntry> {
  const entries = new Map<string, { bytes: Uint8Array; clusters: Located<LatticeCluster>[]; infraProviders: Located<InfraProvider>[]; others: Located<KubernetesObject>[] }>();
  for (const f of files) entries.set(f.path, { bytes: f.bytes, clusters: [], infraProviders: [], others: [] });
  const at = (file: string) => {
    const e = entries.get(file);
    if (!e) throw new Error(`validated object from unknown file ${JSON.stringify(file)}`);
    return e;
  };
  for (const c of specs.clusters) at(c.origin.file).clusters.push(c);
  for (const p of specs.infraProviders) at(p.origin.file).infraProviders.push(p);
  for (const o of specs.others) at(o.origin.file).others.push(o);
  return entries;
}

export class IncrementalBuilder {
  /** Per spec file, from the last good build; empty when there is none (or the last one failed). */
  private files = new Map<string, FileEntry>();
  private clusterArtifacts = new Map<string, CachedArtifact>();
  /** Each cluster's file of the index (its Kustomizations), by the cluster's key. */
  private indexFiles = new Map<string, RenderedFluxFile>();
  private index?: { readonly files: readonly RenderedFluxFile[]; readonly artifact: CachedArtifact };
  /** Whether the index is assembled from the clusters' files (checked against core's on the first build). */
  private assembleIndex = true;
  private indexChecked = false;

  constructor(private readonly renderer: Renderer, private readonly options: FluxOptions) {}

  /** Builds the specs under `path` of a snapshot directory (paths in issues are relative to it). */
  build(dir: string, path: string): IncrementalBuildResult {
    const inputs = readInputs([path], { maxFileBytes: DEFAULT_SOURCE_LIMITS.maxFileBytes, cwd: dir });
    const fast = inputs.issues.length === 0 && this.files.size > 0 ? this.validateChanged(inputs.files) : undefined;
    let specs: SpecSet;
    let entries: Map<string, FileEntry>;
    let changedFiles: number;
    if (fast) {
      ({ specs, entries, changedFiles } = fast);
    } else {
      const { result } = loadSpecs([path], dir);
      // The last good commit stays the baseline: a fix is built incrementally against it.
      if (!result.ok) {
        return { ok: false, issues: result.issues, stats: { validation: 'full', changedFiles: inputs.files.length, renderedClusters: 0, reusedClusters: 0, indexPacked: false, indexAssembled: this.assembleIndex } };
      }
      specs = result.value;
      // The files validated are the ones just read (the snapshot does not change while it is built).
      entries = entriesOf(inputs.files, specs);
      const current = new Set(inputs.files.map((f) => f.path));
      changedFiles = inputs.files.filter((f) => !sameBytes(f.bytes, this.files.get(f.path)?.bytes ?? new Uint8Array())).length
        + [...this.files.keys()].filter((p) => !current.has(p)).length;
    }
    const rendered = this.render(specs);
    this.files = entries;
    return { ...rendered, stats: { validation: fast ? 'incremental' : 'full', changedFiles, ...this.lastRender } };
  }

  /**
   * Validates only what changed since the last good build; undefined when the shortcut cannot be proven
   * to give core's answer (see the module comment), and the caller validates everything.
   */
  private validateChanged(files: readonly SourceFile[]): { specs: SpecSet; entries: Map<string, FileEntry>; changedFiles: number } | undefined {
    const changed = files.filter((f) => !sameBytes(f.bytes, this.files.get(f.path)?.bytes ?? new Uint8Array()));
    const current = new Set(files.map((f) => f.path));
    const removed = [...this.files.keys()].filter((p) => !current.has(p));
    // A changed or removed file that held InfraProviders changes what every cluster is checked against.
    if ([...changed.map((f) => f.path), ...removed].some((p) => (this.files.get(p)?.infraProviders.length ?? 0) > 0)) return undefined;
    const providerFiles = files.filter((f) => !changed.includes(f) && (this.files.get(f.path)?.infraProviders.length ?? 0) > 0);
    const entries = new Map<string, FileEntry>();
    if (changed.length > 0) {
      const checked = specValidator().validate([...changed, ...providerFiles]);
      if (!checked.ok) return undefined;
      if (checked.value.infraProviders.some((p) => !providerFiles.some((f) => f.path === p.origin.file))) return undefined;
      const fresh = entriesOf([...changed, ...providerFiles], checked.value);
      for (const f of changed) entries.set(f.path, fresh.get(f.path) as FileEntry);
    }
    const seen = new Set<string>();
    const clusters: Located<LatticeCluster>[] = [];
    const infraProviders: Located<InfraProvider>[] = [];
    const others: Located<KubernetesObject>[] = [];
    // In input order, like core: `others` keep it; clusters and providers are sorted below, like core.
    for (const f of files) {
      const entry = entries.get(f.path) ?? this.files.get(f.path);
      if (!entry) return undefined;
      entries.set(f.path, entry);
      for (const located of [...entry.clusters, ...entry.infraProviders, ...entry.others]) {
        const id = identityOf(located.object as unknown as KubernetesObject);
        if (id === undefined) continue;
        if (seen.has(id)) return undefined;
        seen.add(id);
      }
      clusters.push(...entry.clusters);
      infraProviders.push(...entry.infraProviders);
      others.push(...entry.others);
    }
    return { specs: { clusters: clusters.sort(byName), infraProviders: infraProviders.sort(byName), others }, entries, changedFiles: changed.length + removed.length };
  }

  private lastRender = { renderedClusters: 0, reusedClusters: 0, indexPacked: false, indexAssembled: true };
  /** Cache keys by object: an unchanged file keeps its validated objects, so their JSON is taken once. */
  private readonly keys = new WeakMap<LatticeCluster, string>();

  private keyOf(cluster: LatticeCluster): string {
    let key = this.keys.get(cluster);
    if (key === undefined) this.keys.set(cluster, (key = JSON.stringify(cluster)));
    return key;
  }

  /** The artifacts of a validated set: the index first, then one per cluster by name (as fluxArtifacts). */
  private render(specs: SpecSet): BuildResult {
    const { renderer, options } = this;
    const clusters = specs.clusters.map((c) => c.object).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const keys = new Map(clusters.map((c) => [c, this.keyOf(c)]));
    // A changed cluster is planned once for its artifact and its index file.
    const plans = new Map<LatticeCluster, ClusterPlan>();
    const withPlans: Renderer = {
      ...renderer,
      plan: (cluster) => {
        let plan = plans.get(cluster);
        if (!plan) plans.set(cluster, (plan = renderer.plan(cluster)));
        return plan;
      },
    };

    const artifacts = new Map<string, CachedArtifact>();
    const indexFiles = new Map<string, RenderedFluxFile>();
    const built: BuiltArtifact[] = [];
    let renderedClusters = 0;
    for (const cluster of clusters) {
      const key = keys.get(cluster) ?? '';
      let artifact = artifacts.get(key) ?? this.clusterArtifacts.get(key);
      if (!artifact) {
        const [a] = renderFluxArtifacts(withPlans, [fluxClusterArtifact(withPlans, cluster, options)]);
        const bytes = packArtifact((a?.files ?? []).map((f) => ({ path: f.path, content: f.text })));
        artifact = { name: a?.name ?? '', bytes, hex: sha256Hex(bytes) };
        renderedClusters++;
      }
      artifacts.set(key, artifact);
      built.push({ name: artifact.name, cluster: cluster.metadata.name, bytes: artifact.bytes, hex: artifact.hex });
      if (this.assembleIndex) {
        let file = indexFiles.get(key) ?? this.indexFiles.get(key);
        if (!file) {
          // Core's index of this one cluster alone: exactly its file of the whole index.
          const [alone] = renderFluxArtifacts(withPlans, [fluxIndexArtifact(withPlans, { clusters: [cluster] }, options)]);
          if (alone?.files.length !== 1 || !alone.files[0]) throw new Error('the index of one cluster is not one file');
          file = alone.files[0];
        }
        indexFiles.set(key, file);
      }
    }

    const inputs = { clusters, infraProviders: specs.infraProviders.map((p) => p.object), others: specs.others.map((o) => o.object) };
    let files: readonly RenderedFluxFile[];
    let indexName: string;
    if (this.assembleIndex) {
      // What core's index holds besides the clusters' files (InfraProviders, other objects), then the
      // clusters' files by name, as fluxIndexArtifact orders them.
      const [rest] = renderFluxArtifacts(renderer, [fluxIndexArtifact(renderer, { ...inputs, clusters: [] }, options)]);
      if (!rest) throw new Error('the index was not rendered');
      files = [...rest.files, ...clusters.map((c) => indexFiles.get(keys.get(c) ?? '') as RenderedFluxFile)];
      indexName = rest.name;
      if (!this.indexChecked) {
        // Once, on the first build: the assembled index must be core's, else core is used from now on.
        this.indexChecked = true;
        const [whole] = renderFluxArtifacts(withPlans, [fluxIndexArtifact(withPlans, inputs, options)]);
        if (!whole || !sameFiles(whole.files, files)) {
          this.assembleIndex = false;
          files = whole?.files ?? [];
        }
      }
    } else {
      const [whole] = renderFluxArtifacts(withPlans, [fluxIndexArtifact(withPlans, inputs, options)]);
      if (!whole) throw new Error('the index was not rendered');
      ({ files, name: indexName } = whole);
    }
    const previous = this.index;
    const unchanged = previous !== undefined && sameFiles(previous.files, files);
    let indexArtifact: CachedArtifact;
    if (unchanged && previous) {
      indexArtifact = previous.artifact;
    } else {
      const bytes = packArtifact(files.map((f) => ({ path: f.path, content: f.text })));
      indexArtifact = { name: indexName, bytes, hex: sha256Hex(bytes) };
    }
    this.index = { files, artifact: indexArtifact };
    this.clusterArtifacts = artifacts;
    this.indexFiles = indexFiles;
    this.lastRender = { renderedClusters, reusedClusters: clusters.length - renderedClusters, indexPacked: !unchanged, indexAssembled: this.assembleIndex };
    return { ok: true, artifacts: [{ name: indexArtifact.name, bytes: indexArtifact.bytes, hex: indexArtifact.hex }, ...built], clusters: clusters.length };
  }
}
