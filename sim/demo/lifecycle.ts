/**
 * The whole lifecycle on embedded defaults (issue M11), what `npm start` runs: the bundled example clusters
 * committed to a temporary git repository; a simulated parent with Cluster API and Argo CD; the real
 * controller and cell; a simulated child and the real agent per cluster. Argo CD applies what the
 * config-management plugin generates from the repository (the plugin's own code), the clusters come up,
 * pivot and turn Ready; then a spec change is committed and reaches its cluster through the agent; then one
 * cluster is removed from git, unpivoted and torn down.
 *
 * Everything it shows comes from the LatticeClusters' status, as `kubectl get lc` would; `onProgress` gets a
 * snapshot whenever something changes. The result says whether every cluster reached its expected end state.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { simpleGit } from 'simple-git';
import { parseAllDocuments, parseDocument } from 'yaml';
import { loadSpecs, specRenderer } from '../../cli/load.js';
import { isRecord } from '../../core/data.js';
import { toYamlStream } from '../../core/render/render.js';
import { generateText, selectArgoCdObjects } from '../../plugin/generate.js';
import { readCmpOptions } from '../../plugin/options.js';
import { startWorld, type World } from '../world.js';
import { startSidecar } from '../../sidecar/runtime.js';
import { freePort } from '../../sidecar/testing.js';

export interface DemoOptions {
  /** The project root (crds/, examples/clusters). */
  readonly repo: string;
  /** Upstream CRDs for the simulated API servers (../shared/upstream-crds). */
  readonly upstreamCrds: string;
  /** Where the final rendered manifests are written (created, emptied first). */
  readonly outDir: string;
  /** The cluster whose spec is changed (a worker pool scaled up). @default dev */
  readonly change?: string;
  /** The cluster removed from git. @default lab */
  readonly remove?: string;
  /** The GitOps path: Argo CD with the config-management plugin, or Flux with the sidecar's ExternalArtifacts. @default argocd */
  readonly flavor?: 'argocd' | 'flux';
  /** Give up after this long. @default 300000 */
  readonly timeoutMs?: number;
  readonly log: Logger;
  readonly onProgress?: (snapshot: DemoSnapshot) => void;
  /** Called once the simulated world runs (tests and debugging look inside). */
  readonly onWorld?: (world: World) => void;
}

/** One cluster as the status shows it. */
export interface ClusterView {
  readonly name: string;
  readonly phase: string;
  /** Stage conditions in order: type and status (True, False, Unknown). */
  readonly stages: readonly { readonly type: string; readonly status: string }[];
  readonly ready: boolean;
  /** The Ready condition's message while not ready. */
  readonly message: string;
  readonly generation: number;
  readonly appliedGeneration: number;
  readonly gone: boolean;
}

export type DemoStep = 'starting' | 'provisioning' | 'changing' | 'removing' | 'done' | 'failed';

export interface DemoSnapshot {
  readonly step: DemoStep;
  /** What the step is doing, for people. */
  readonly detail: string;
  readonly elapsedMs: number;
  readonly clusters: readonly ClusterView[];
}

export interface DemoResult {
  readonly ok: boolean;
  /** Why not, when not ok. */
  readonly reason?: string;
  readonly elapsedMs: number;
  readonly outDir: string;
  readonly clusters: readonly ClusterView[];
  /** Elapsed milliseconds when each step ended. */
  readonly steps: Readonly<Partial<Record<DemoStep, number>>>;
  /** Requests the GitOps engine made to pivoted clusters through the cell's API proxy, by cluster. */
  readonly proxied?: Readonly<Record<string, number>>;
}

const KUBERNETES_TYPES = new Set(['Ready', 'Reconciling', 'Stalled']);
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});

/** What Argo CD's repo server would print for the repository's `clusters/` at its current commit. */
function generate(repoDir: string): { objects: KubernetesObject[]; text: string; clusters: string[] } {
  const renderer = specRenderer();
  const options = readCmpOptions({ ARGOCD_APP_SOURCE_REPO_URL: `file://${repoDir}`, ARGOCD_APP_SOURCE_PATH: 'clusters', ARGOCD_APP_SOURCE_TARGET_REVISION: 'main' }, []);
  const { result } = loadSpecs([join(repoDir, 'clusters')]);
  if (!options.ok) throw new Error(`plugin parameters: ${options.errors.join('; ')}`);
  if (!result.ok) throw new Error(`the clusters repository is invalid: ${result.issues.map((i) => i.code).join(', ')}`);
  const selection = selectArgoCdObjects(renderer, result.value, options.value);
  if (!selection.ok) throw new Error(selection.errors.join('; '));
  const text = generateText(renderer, selection.objects);
  return { objects: parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject), text, clusters: result.value.clusters.map((c) => c.object.metadata.name) };
}

/** The file of the repository's `clusters/` that holds the LatticeCluster `name`. */
function specFile(repoDir: string, name: string): string | undefined {
  const dir = join(repoDir, 'clusters');
  return readdirSync(dir).map((f) => join(dir, f)).find((f) => parseAllDocuments(readFileSync(f, 'utf8')).some((d) => {
    const o = rec(d.toJS());
    return o.kind === 'LatticeCluster' && rec(o.metadata).name === name;
  }));
}

/** The credentials Secrets the repository's InfraProviders name: not in git, so the demo makes placeholders. */
function credentialSecrets(objects: readonly KubernetesObject[]): string[] {
  return objects.filter((o) => o.kind === 'InfraProvider').map((o) => rec(rec((o as unknown as Record<string, unknown>).spec).credentialsSecretRef).name).filter((n): n is string => typeof n === 'string');
}

function view(o: Record<string, unknown>): ClusterView {
  const meta = rec(o.metadata);
  const status = rec(o.status);
  const conditions = (Array.isArray(status.conditions) ? status.conditions : []).map(rec);
  const ready = conditions.find((c) => c.type === 'Ready');
  return {
    name: String(meta.name),
    phase: typeof status.phase === 'string' ? status.phase : 'Pending',
    stages: conditions.filter((c) => typeof c.type === 'string' && !KUBERNETES_TYPES.has(c.type)).map((c) => ({ type: String(c.type), status: String(c.status) })),
    ready: ready?.status === 'True',
    message: ready?.status === 'True' ? '' : String(ready?.message ?? ''),
    generation: typeof meta.generation === 'number' ? meta.generation : 0,
    appliedGeneration: typeof status.appliedGeneration === 'number' ? status.appliedGeneration : 0,
    gone: false,
  };
}

/** How a commit reaches the parent: `publish` resolves once the engine has taken the new revision. */
interface Engine {
  publish(current: readonly KubernetesObject[], previous: readonly KubernetesObject[]): Promise<void>;
  stop(): Promise<void>;
}

/** Argo CD: the repo server's output (the plugin) synced wave by wave, then pruned. */
function argoEngine(world: World): Engine {
  return {
    async publish(current, previous) {
      const synced = await world.argo.sync(current);
      if (synced.phase !== 'Succeeded') throw new Error(`the Argo CD sync failed: ${synced.message}`);
      if (previous.length > 0) await world.argo.prune(previous, current);
    },
    stop: async () => undefined,
  };
}

/**
 * Flux: the sidecar follows the repository and publishes ExternalArtifacts; the root Kustomization of
 * flux/examples applies the index, whose per-cluster Kustomizations apply the rest (the simulated Flux plays
 * kustomize-controller). A commit reaches it at the sidecar's next poll, triggered at once here as a webhook would.
 */
async function fluxEngine(world: World, root: string, repoDir: string, work: string, log: Logger): Promise<Engine> {
  const kubeconfig = join(work, 'parent.kubeconfig');
  writeFileSync(kubeconfig, world.parent.kc.exportConfig(), { mode: 0o600 });
  const port = await freePort();
  const handle = await startSidecar({
    source: { kind: 'git', url: repoDir, branch: 'main', credentials: { kind: 'none' } },
    path: 'clusters', pollIntervalMs: 2000, storageDir: join(work, 'artifacts'), cacheDir: join(work, 'git-cache'),
    listen: { host: '127.0.0.1', port }, advertiseUrl: `http://127.0.0.1:${port}`,
    namespace: 'flux-system', fluxNamespace: 'flux-system', gcGraceMs: 60_000, publish: true, allowEmpty: false,
    leaseName: 'lattice-sidecar', identity: 'demo', kubeconfig, overrides: {}, logLevel: 'silent',
  }, { log, processMetrics: false, lease: { leaseDurationSeconds: 2, renewDeadlineMs: 1500, retryPeriodMs: 200 } });
  const rootKustomization = parseDocument(readFileSync(join(root, 'flux', 'examples', 'root-kustomization.yaml'), 'utf8')).toJS() as KubernetesObject;
  await world.parent.objects.create(rootKustomization);
  return {
    async publish() {
      handle.sidecar.trigger();
    },
    stop: () => handle.stop(),
  };
}

/** Runs the lifecycle; never throws (a failure is the result's reason). */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const steps: Partial<Record<DemoStep, number>> = {};
  const changeName = options.change ?? 'dev';
  const removeName = options.remove ?? 'lab';
  const deadline = started + (options.timeoutMs ?? 300_000);
  const work = mkdtempSync(join(tmpdir(), 'lattice-demo-'));
  const repoDir = join(work, 'clusters-repo');
  let world: World | undefined;
  let clusters: ClusterView[] = [];
  let step: DemoStep = 'starting';
  let detail = 'committing the example clusters to a git repository';
  const removed = new Set<string>();
  let last = '';
  const report = () => {
    const snapshot: DemoSnapshot = { step, detail, elapsedMs: elapsed(), clusters };
    const key = JSON.stringify({ ...snapshot, elapsedMs: 0 });
    if (key !== last || step === 'done' || step === 'failed') {
      last = key;
      options.onProgress?.(snapshot);
    }
  };
  const refresh = async () => {
    if (!world) return;
    const list = (await world.parent.custom.listClusterCustomObject({ group: 'lattice.dev', version: 'v1alpha1', plural: 'latticeclusters' })) as { items: Record<string, unknown>[] };
    const live = list.items.map(view);
    const names = new Set(live.map((c) => c.name));
    clusters = [...live, ...[...removed].filter((n) => !names.has(n)).map((name) => ({ name, phase: 'Deleted', stages: [], ready: false, message: '', generation: 0, appliedGeneration: 0, gone: true }))]
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    report();
  };
  const until = async (what: string, check: () => boolean) => {
    for (;;) {
      await refresh();
      if (check()) return;
      if (performance.now() > deadline) throw new Error(`${what} did not happen within ${Math.round((options.timeoutMs ?? 300_000) / 1000)} s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const stopAgents = { stop: false };
  let stopEngine: (() => Promise<void>) | undefined;

  try {
    // 1. The repository: the bundled examples, committed.
    mkdirSync(join(repoDir, 'clusters'), { recursive: true });
    cpSync(join(options.repo, 'examples', 'clusters'), join(repoDir, 'clusters'), { recursive: true });
    const git = simpleGit(repoDir);
    await git.init(['--initial-branch=main']);
    await git.addConfig('user.name', 'Lattice demo').addConfig('user.email', 'demo@lattice.invalid').addConfig('commit.gpgsign', 'false');
    await git.add('.').commit('Add the example clusters');
    report();

    // 2. The parent, its controllers, and a child per cluster (each child's API server is where Cluster API's
    //    kubeconfig for it points).
    detail = 'starting the parent (API server, Cluster API, Argo CD, the Lattice controller and cell)';
    report();
    const flavor = options.flavor ?? 'argocd';
    world = await startWorld({
      repo: options.repo, upstreamCrds: options.upstreamCrds, log: options.log,
      extraNamespaces: ['capa-system'], gitops: flavor,
      // Simulated time is already compressed (a step of Cluster API per pass); polling slower than the tests do
      // leaves the two cores of a laptop to the work itself, which makes the whole run faster.
      capiIntervalMs: 200, argoPollMs: 200, heartbeatIntervalMs: 1000, controllerConfig: { progressIntervalMs: 2000 },
    });
    options.onWorld?.(world);
    let generated = generate(repoDir);
    for (const name of credentialSecrets(generated.objects)) {
      // Placeholders: real credentials come from the platform team's secret manager, never from git.
      await world.parent.core.createNamespacedSecret({ namespace: 'lattice-system', body: { metadata: { name, labels: { 'lattice.dev/demo': 'placeholder' } }, stringData: { note: 'placeholder credentials for the simulated provider' } } });
    }
    for (const name of generated.clusters) await world.addChild(name);
    steps.starting = elapsed();

    // 3. Argo CD syncs the app-of-apps; agents start in each child as the agent stage deploys them.
    step = 'provisioning';
    detail = 'Argo CD syncs the plugin\'s output wave by wave; Cluster API brings the clusters up; each pivots once healthy';
    const agentLoop = (async () => {
      const w = world;
      while (w && !stopAgents.stop) {
        for (const [name, child] of w.children) {
          if (child.agent) continue;
          const secret = await child.sim.core.readNamespacedSecret({ namespace: 'lattice-system', name: 'lattice-agent-bootstrap' }).catch(() => undefined);
          if (secret) await w.startAgent(name);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const engine = flavor === 'flux' ? await fluxEngine(world, options.repo, repoDir, work, options.log) : argoEngine(world);
    stopEngine = engine.stop;
    const firstSync = engine.publish(generated.objects, []);
    await until('every cluster Ready', () => clusters.length === generated.clusters.length && clusters.every((c) => c.phase === 'Ready'));
    await firstSync;
    // Pivoted, a child is reached only through the cell's API proxy: the engine keeps installing its addons there.
    const w = world;
    await until('the GitOps engine reaching every pivoted cluster through the API proxy', () => generated.clusters.every((name) => (w.proxied.get(name) ?? 0) > 0));
    steps.provisioning = elapsed();

    // 4. A spec change, committed: the cluster applies it to itself.
    step = 'changing';
    detail = `committed: ${changeName} gets one more worker; the agent applies it in the cluster`;
    const changeFile = specFile(repoDir, changeName);
    if (!changeFile) throw new Error(`no LatticeCluster ${changeName} in the examples`);
    const doc = parseDocument(readFileSync(changeFile, 'utf8'));
    const pools = rec(rec(rec(doc.toJS()).spec).nodes).workerPools;
    const pool = Object.keys(rec(pools))[0];
    if (!pool) throw new Error(`${changeName} has no worker pool to scale`);
    const replicas = Number(rec(rec(pools)[pool]).replicas ?? 1);
    doc.setIn(['spec', 'nodes', 'workerPools', pool, 'replicas'], replicas + 1);
    writeFileSync(changeFile, doc.toString());
    await git.add('.').commit(`Scale ${changeName}/${pool} to ${replicas + 1} workers`);
    const beforeChange = generated;
    generated = generate(repoDir);
    await engine.publish(generated.objects, beforeChange.objects);
    await until(`${changeName} applying its new generation`, () => clusters.some((c) => c.name === changeName && c.generation > 1 && c.appliedGeneration === c.generation && c.phase === 'Ready'));
    steps.changing = elapsed();

    // 5. A cluster removed from git: Argo CD prunes its LatticeCluster; the controller unpivots and tears it down.
    step = 'removing';
    detail = `committed: ${removeName} removed from git; it unpivots and Cluster API tears it down`;
    const removeFile = specFile(repoDir, removeName);
    if (!removeFile) throw new Error(`no LatticeCluster ${removeName} in the examples`);
    rmSync(removeFile);
    await git.add('.').commit(`Remove ${removeName}`);
    const beforeRemove = generated;
    generated = generate(repoDir);
    removed.add(removeName);
    await engine.publish(generated.objects, beforeRemove.objects);
    await until(`${removeName} torn down`, () => clusters.some((c) => c.name === removeName && c.gone));
    const capiLeft = await world.parent.objects.list('cluster.x-k8s.io/v1beta2', 'Cluster', `capi-${removeName}`).then((l) => l.items.length, () => 0);
    if (capiLeft > 0) throw new Error(`the Cluster API Cluster of ${removeName} is still there`);
    steps.removing = elapsed();

    // 6. The manifests, as rendered at the last commit.
    rmSync(options.outDir, { recursive: true, force: true });
    mkdirSync(options.outDir, { recursive: true });
    writeFileSync(join(options.outDir, 'app-of-apps.yaml'), generated.text);
    const { result } = loadSpecs([join(repoDir, 'clusters')]);
    if (result.ok) for (const c of result.value.clusters) writeFileSync(join(options.outDir, `${c.object.metadata.name}.yaml`), toYamlStream(specRenderer().renderCluster(c.object)));
    step = 'done';
    detail = 'every cluster reached its end state';
    steps.done = elapsed();
    stopAgents.stop = true;
    await agentLoop;
    report();
    return { ok: true, elapsedMs: elapsed(), outDir: options.outDir, clusters, steps, proxied: Object.fromEntries([...world.proxied].sort(([a], [b]) => (a < b ? -1 : 1))) };
  } catch (e) {
    step = 'failed';
    detail = e instanceof Error ? e.message : String(e);
    report();
    return { ok: false, reason: detail, elapsedMs: elapsed(), outDir: options.outDir, clusters, steps };
  } finally {
    stopAgents.stop = true;
    await stopEngine?.().catch((e: unknown) => options.log.warn({ err: e instanceof Error ? e.message : 'error' }, 'demo shutdown failed'));
    await world?.stop().catch((e: unknown) => options.log.warn({ err: e instanceof Error ? e.message : 'error' }, 'demo shutdown failed'));
    rmSync(work, { recursive: true, force: true });
  }
}
