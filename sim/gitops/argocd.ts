/**
 * A simulated Argo CD, enough for controller tests and the demo: it syncs an app-of-apps wave by wave
 * the way gitops-engine does, and plays the application controller for the child Applications.
 *
 * Sync (research/argocd-cmp.md §5.2-5.3): objects are grouped by `argocd.argoproj.io/sync-wave`
 * (default 0) and applied lowest wave first; before the next wave, every object of the wave must be
 * Healthy by its health check. Degraded fails the sync; objects without a check do not gate; the last
 * wave is not waited on. Pruning is a separate call (`prune`), honouring `Prune=false`. Not simulated:
 * hooks, diffing, selective sync, dry runs.
 *
 * Child Applications: an Application whose `destination.name` is registered becomes Synced and Healthy; with
 * `installReleases`, a chart Application's release is first installed in the destination through the
 * registration's credentials (destination.ts), and an unreachable destination shows as a ComparisonError.
 * An unregistered destination gives the error Argo CD gives, with health Unknown so a parent wave keeps waiting.
 */
import { KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { argoCdDestination, ensureRelease, type Release } from './destination.js';
import type { Health, HealthAssessor } from './health.js';

const SYNC_WAVE = 'argocd.argoproj.io/sync-wave';
const SYNC_OPTIONS = 'argocd.argoproj.io/sync-options';
const FIELD_MANAGER = 'argocd-controller';

type Obj = KubernetesObject & Record<string, unknown>;

interface AppSpec {
  destination?: { name?: string; namespace?: string };
  source?: { chart?: string; targetRevision?: string; helm?: { releaseName?: string; valuesObject?: unknown } };
}

export interface SyncResult {
  readonly phase: 'Succeeded' | 'Failed';
  readonly message: string;
  /** The waves applied, in order. */
  readonly waves: readonly number[];
}

export interface ArgoCdSimOptions {
  /** The cluster Argo CD runs in (the parent): where the app-of-apps is applied. */
  readonly kubeConfig: KubeConfig;
  readonly health: HealthAssessor;
  /** Argo CD's namespace: where Applications and cluster Secrets live. */
  readonly namespace?: string;
  /** How often waits re-read objects. */
  readonly pollMs?: number;
  /** Pause between waves (ARGOCD_SYNC_WAVE_DELAY, 2 s upstream). */
  readonly waveDelayMs?: number;
  /** Whether a destination cluster name is registered; default: an Argo CD cluster Secret names it. */
  readonly isRegistered?: (cluster: string) => Promise<boolean>;
  /**
   * Install chart Applications' releases in their destination through the cluster Secret's credentials
   * (destination.ts), re-checking each every `resyncMs` (default 1 s); off, a registered destination is
   * enough for Synced and Healthy.
   */
  readonly installReleases?: { readonly resyncMs?: number };
  /** Applications to report Degraded (fault injection), by name. */
  readonly degraded?: ReadonlySet<string>;
  readonly log?: Logger;
}

export const waveOf = (o: KubernetesObject): number => {
  const v = Number(o.metadata?.annotations?.[SYNC_WAVE] ?? 0);
  return Number.isInteger(v) ? v : 0;
};

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal?.aborted) return reject(new Error('aborted'));
  const onAbort = () => {
    clearTimeout(t);
    reject(new Error('aborted'));
  };
  // The listener goes with the timer: a loop sleeping on one signal must not pile them up.
  const t = setTimeout(() => {
    signal?.removeEventListener('abort', onAbort);
    resolve();
  }, ms);
  signal?.addEventListener('abort', onAbort, { once: true });
});

const asJson = (o: unknown): Obj => JSON.parse(JSON.stringify(o)) as Obj;

const statusCode = (e: unknown): number | undefined => (typeof e === 'object' && e !== null && 'code' in e ? Number((e as { code: unknown }).code) : undefined);

export class ArgoCdSim {
  private readonly api: KubernetesObjectApi;
  private readonly namespace: string;
  private readonly pollMs: number;
  private loop?: AbortController;
  private waitRounds = 0;
  /** Releases installed, by Application: what was installed (credentials and release) and when last checked. */
  private readonly installed = new Map<string, { key: string; at: number }>();

  constructor(private readonly options: ArgoCdSimOptions) {
    this.api = KubernetesObjectApi.makeApiClient(options.kubeConfig);
    this.namespace = options.namespace ?? 'argocd';
    this.pollMs = options.pollMs ?? 50;
  }

  /** Health rounds spent waiting on gating waves so far: lets callers observe that a wave is being held. */
  get healthRounds(): number {
    return this.waitRounds;
  }

  /** Applies objects the way a multi-wave sync does; resolves when the sync succeeds or fails. */
  async sync(objects: readonly KubernetesObject[], opts: { signal?: AbortSignal } = {}): Promise<SyncResult> {
    const waves = [...new Set(objects.map(waveOf))].sort((a, b) => a - b);
    for (const [i, wave] of waves.entries()) {
      const inWave = objects.filter((o) => waveOf(o) === wave);
      for (const o of inWave) await this.apply(o);
      this.options.log?.info({ wave, objects: inWave.length }, 'wave applied');
      if (i === waves.length - 1) break;
      const failed = await this.waitHealthy(inWave, opts.signal);
      if (failed) return { phase: 'Failed', message: failed, waves: waves.slice(0, i + 1) };
      if (this.options.waveDelayMs) await sleep(this.options.waveDelayMs, opts.signal);
    }
    return { phase: 'Succeeded', message: 'successfully synced (all tasks run)', waves };
  }

  /**
   * Pruning after a sync (gitops-engine): objects of `previous` that `current` no longer has are deleted,
   * highest wave first, except those whose sync-options say `Prune=false`. Resolves to what was deleted,
   * as `Kind/namespace/name`.
   */
  async prune(previous: readonly KubernetesObject[], current: readonly KubernetesObject[]): Promise<string[]> {
    const key = (o: KubernetesObject) => `${(o.apiVersion ?? '').split('/').slice(0, -1).join('/')}/${o.kind ?? ''}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    const kept = new Set(current.map(key));
    const gone = previous.filter((o) => !kept.has(key(o)) && !(o.metadata?.annotations?.[SYNC_OPTIONS] ?? '').split(',').map((x) => x.trim()).includes('Prune=false'))
      .sort((a, b) => waveOf(b) - waveOf(a));
    const deleted: string[] = [];
    for (const o of gone) {
      try {
        await this.api.delete({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', metadata: { name: o.metadata?.name ?? '', ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}) } });
        deleted.push(`${o.kind ?? ''}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`);
      } catch (e) {
        if (statusCode(e) !== 404) throw e;
      }
    }
    return deleted;
  }

  /** Create, or merge the desired state over the live object (status untouched). */
  private async apply(o: KubernetesObject): Promise<void> {
    try {
      await this.api.create(o, undefined, undefined, FIELD_MANAGER);
    } catch (e) {
      if (statusCode(e) !== 409) throw e;
      await this.api.patch(o, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
    }
  }

  /** Waits until every object is Healthy or has no check; returns a failure message on Degraded. */
  private async waitHealthy(objects: readonly KubernetesObject[], signal?: AbortSignal): Promise<string | undefined> {
    for (;;) {
      let waiting = false;
      for (const o of objects) {
        const live = await this.read(o);
        const h: Health | undefined = live ? this.options.health.health(live as Record<string, unknown>) : { status: 'Missing', message: 'not found' };
        if (!h || h.status === 'Healthy') continue;
        if (h.status === 'Degraded') return `${o.kind}/${o.metadata?.name ?? ''} is Degraded: ${h.message}`;
        waiting = true;
      }
      if (!waiting) return undefined;
      this.waitRounds++;
      await sleep(this.pollMs, signal);
    }
  }

  private async read(o: KubernetesObject): Promise<Obj | undefined> {
    try {
      // As unstructured JSON, the way Argo CD sees it (client-node would hand typed kinds with Date objects).
      return asJson(await this.api.read({ apiVersion: o.apiVersion ?? '', kind: o.kind ?? '', metadata: { name: o.metadata?.name ?? '', ...(o.metadata?.namespace ? { namespace: o.metadata.namespace } : {}) } }));
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  /** Starts playing the application controller for child Applications. */
  start(): void {
    if (this.loop) return;
    const loop = new AbortController();
    this.loop = loop;
    void (async () => {
      while (!loop.signal.aborted) {
        try {
          await this.reconcileApplications();
        } catch (e) {
          this.options.log?.warn({ err: (e as Error).message }, 'application pass failed');
        }
        await sleep(this.pollMs, loop.signal).catch(() => undefined);
      }
    })();
  }

  stop(): void {
    this.loop?.abort();
    this.loop = undefined;
  }

  /** One pass over the Applications: status written only when it changes. */
  async reconcileApplications(): Promise<void> {
    const list = await this.api.list<Obj>('argoproj.io/v1alpha1', 'Application', this.namespace);
    // One read of the cluster Secrets per pass, not one per Application.
    const clusters = this.options.isRegistered ? undefined : await this.clusterSecrets();
    for (const app of list.items) {
      const spec = (app.spec ?? {}) as AppSpec;
      const name = app.metadata?.name ?? '';
      const destination = spec.destination?.name ?? '';
      const registered = destination !== '' && (clusters ? clusters.has(destination) : await this.registered(destination));
      let status: { sync: { status: string }; health: { status: string; message?: string }; conditions: { type: string; message: string }[] | null };
      if (!registered) {
        status = { sync: { status: 'Unknown' }, health: { status: 'Unknown', message: `there are no clusters with this name: ${destination}` }, conditions: [{ type: 'InvalidSpecError', message: `there are no clusters with this name: ${destination}` }] };
      } else if (this.options.degraded?.has(name)) {
        status = { sync: { status: 'Synced' }, health: { status: 'Degraded', message: 'simulated failure' }, conditions: null };
      } else {
        const failed = clusters && this.options.installReleases ? await this.install(name, spec, clusters.get(destination)) : undefined;
        status = failed
          // As Argo CD shows an unreachable cluster: the comparison failed, health as last known.
          ? { sync: { status: 'Unknown' }, health: ((app.status ?? {}) as { health?: { status: string } }).health ?? { status: 'Unknown' }, conditions: [{ type: 'ComparisonError', message: failed }] }
          : { sync: { status: 'Synced' }, health: { status: 'Healthy' }, conditions: null };
      }
      const live = (app.status ?? {}) as Record<string, unknown>;
      if (JSON.stringify([live.sync ?? null, live.health ?? null, live.conditions ?? null]) === JSON.stringify([status.sync, status.health, status.conditions])) continue;
      await this.api.patch({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Application', metadata: { name, namespace: this.namespace }, status } as KubernetesObject, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
    }
  }

  /**
   * Installs a chart Application's release in its destination with the credentials of the cluster Secret
   * (destination.ts): again whenever the Secret or the release changes, and re-checked every
   * `installReleases.resyncMs` (self-heal). Resolves to an error message when the destination cannot be reached.
   */
  private async install(app: string, spec: AppSpec, secret: Obj | undefined): Promise<string | undefined> {
    const chart = spec.source?.chart;
    if (!chart || !secret) return undefined;
    const destination = argoCdDestination(secret as { data?: Record<string, string> });
    if (!destination) return 'the cluster Secret has no server';
    const release: Release = { name: spec.source?.helm?.releaseName ?? app, namespace: spec.destination?.namespace ?? 'default', chart, version: spec.source?.targetRevision ?? '', values: spec.source?.helm?.valuesObject ?? null };
    const key = `${destination.digest}/${JSON.stringify(release)}`;
    const done = this.installed.get(app);
    if (done?.key === key && Date.now() - done.at < (this.options.installReleases?.resyncMs ?? 1000)) return undefined;
    try {
      await ensureRelease(destination, release, FIELD_MANAGER);
      this.installed.set(app, { key, at: Date.now() });
      return undefined;
    } catch (e) {
      this.installed.delete(app);
      return `failed to sync cluster ${spec.destination?.name ?? ''}: HTTP ${statusCode(e) ?? 'error'}`;
    }
  }

  private async clusterSecrets(): Promise<Map<string, Obj>> {
    const secrets = await this.api.list<Obj>('v1', 'Secret', this.namespace, undefined, undefined, undefined, undefined, 'argocd.argoproj.io/secret-type=cluster');
    const byName = new Map<string, Obj>();
    for (const s of secrets.items) {
      const data = (s.data ?? {}) as Record<string, string>;
      const stringData = (s.stringData ?? {}) as Record<string, string>;
      const name = data.name !== undefined ? Buffer.from(data.name, 'base64').toString('utf8') : stringData.name;
      if (name) byName.set(name, s);
    }
    return byName;
  }

  private async registered(cluster: string): Promise<boolean> {
    if (this.options.isRegistered) return this.options.isRegistered(cluster);
    return (await this.clusterSecrets()).has(cluster);
  }
}

/**
 * Registration the way capi2argo-style converters do it (research/argocd-cmp.md §7.3): a cluster is
 * registered once Cluster API has written its `<name>-kubeconfig` Secret in `capi-<name>`. For tests
 * and the demo that run without the Lattice controller, which registers clusters itself.
 */
export function capiKubeconfigRegistry(kubeConfig: KubeConfig): (cluster: string) => Promise<boolean> {
  const api = KubernetesObjectApi.makeApiClient(kubeConfig);
  return async (cluster) => {
    try {
      await api.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `${cluster}-kubeconfig`, namespace: `capi-${cluster}` } });
      return true;
    } catch (e) {
      if (statusCode(e) === 404) return false;
      throw e;
    }
  };
}
