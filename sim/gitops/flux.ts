/**
 * A simulated Flux, enough for controller tests and the demo: kustomize-controller and helm-controller
 * reduced to their Ready condition. A Kustomization is Ready once every `dependsOn` is Ready; a
 * HelmRelease once its `kubeConfig.secretRef` Secret exists and every `dependsOn` is Ready. With
 * `applyArtifacts` and `installReleases`, artifacts are applied and releases recorded in the target
 * cluster (see the options); otherwise nothing is fetched, built or installed. `suspend: true` freezes an object, as in Flux. Conditions follow
 * kstatus (Ready with reason and message, observedGeneration).
 */
import { CustomObjectsApi, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { ensureRelease, kubeconfigDestination, type Destination, type Release } from './destination.js';
import { fetchLikeFlux, objectsUnder } from '../../sidecar/testing.js';
import type { Logger } from 'pino';

type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> };

interface Kind {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
}

const KUSTOMIZATION: Kind = { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations', kind: 'Kustomization' };
const HELM_RELEASE: Kind = { group: 'helm.toolkit.fluxcd.io', version: 'v2', plural: 'helmreleases', kind: 'HelmRelease' };

export interface FluxSimOptions {
  readonly kubeConfig: KubeConfig;
  readonly pollMs?: number;
  /** Objects to report failed (fault injection), as `<namespace>/<name>`. */
  readonly failed?: ReadonlySet<string>;
  readonly log?: Logger;
  /** Clock for condition timestamps. */
  readonly now?: () => Date;
  /**
   * Play kustomize-controller for real: a Kustomization whose source is an ExternalArtifact has the artifact
   * fetched (digest checked), the YAML under its path applied (server-side apply, to the cluster of its
   * `kubeConfig.secretRef` when set), what it applied before and no longer has pruned (unless annotated
   * `kustomize.toolkit.fluxcd.io/prune: disabled`), and, with `wait`, Ready only once its objects are
   * healthy by its `healthCheckExprs` (CEL) or their Ready condition. A Kustomization that disappears
   * has its objects pruned the same way (`prune: true`).
   */
  readonly applyArtifacts?: boolean;
  /**
   * Play helm-controller's install: a HelmRelease with a `kubeConfig.secretRef` has its release recorded in
   * that cluster (destination.ts), re-checked every `resyncMs` (default 1 s); an unreachable cluster makes it
   * InstallFailed.
   */
  readonly installReleases?: { readonly resyncMs?: number };
}

interface Applied {
  readonly revision: string;
  /** The digest of the credentials it was applied with. */
  readonly target: string;
  readonly objects: readonly Obj[];
  readonly api: KubernetesObjectApi;
  /** `deletionPolicy: Orphan`: deleting the Kustomization leaves its objects. */
  readonly orphan: boolean;
}

interface Ready {
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
}

const readyOf = (o: Obj): string | undefined => ((o.status?.conditions ?? []) as { type: string; status: string }[]).find((c) => c.type === 'Ready')?.status;

export class FluxSim {
  private readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;
  private loop?: AbortController;
  private readonly applied = new Map<string, Applied>();
  /** Releases installed, by HelmRelease: what was installed (credentials and release) and when last checked. */
  private readonly releases = new Map<string, { key: string; at: number }>();

  constructor(private readonly options: FluxSimOptions) {
    this.objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
    this.custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  start(): void {
    if (this.loop) return;
    const loop = new AbortController();
    this.loop = loop;
    void (async () => {
      while (!loop.signal.aborted) {
        try {
          await this.reconcile();
        } catch (e) {
          this.options.log?.warn({ err: (e as Error).message }, 'flux pass failed');
        }
        await new Promise((r) => setTimeout(r, this.options.pollMs ?? 50));
      }
    })();
  }

  stop(): void {
    this.loop?.abort();
    this.loop = undefined;
  }

  /** One pass over every Kustomization and HelmRelease. */
  async reconcile(): Promise<void> {
    for (const kind of [KUSTOMIZATION, HELM_RELEASE]) {
      const list = await this.objects.list<Obj>(`${kind.group}/${kind.version}`, kind.kind);
      const byKey = new Map(list.items.map((o) => [`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o]));
      if (kind === KUSTOMIZATION) await this.pruneDeleted(byKey);
      for (const o of list.items) {
        if (o.spec?.suspend === true) continue;
        const ready = await this.assess(kind, o, byKey);
        await this.writeReady(kind, o, ready);
      }
    }
  }

  private async assess(kind: Kind, o: Obj, peers: ReadonlyMap<string, Obj>): Promise<Ready> {
    const ns = o.metadata?.namespace ?? '';
    const key = `${ns}/${o.metadata?.name ?? ''}`;
    if (this.options.failed?.has(key)) return { status: 'False', reason: kind === HELM_RELEASE ? 'InstallFailed' : 'ReconciliationFailed', message: 'simulated failure' };
    for (const dep of (o.spec?.dependsOn ?? []) as { name: string; namespace?: string }[]) {
      const peer = peers.get(`${dep.namespace ?? ns}/${dep.name}`);
      if (!peer || readyOf(peer) !== 'True') return { status: 'False', reason: 'DependencyNotReady', message: `dependency '${dep.namespace ?? ns}/${dep.name}' is not ready` };
    }
    if (kind === HELM_RELEASE) {
      const secret = ((o.spec?.kubeConfig as { secretRef?: { name?: string } } | undefined)?.secretRef?.name);
      if (secret && !(await this.exists('v1', 'Secret', secret, ns))) return { status: 'False', reason: 'InstallFailed', message: `could not find Secret '${ns}/${secret}'` };
      if (secret && this.options.installReleases) return this.installRelease(o, key);
      return { status: 'True', reason: 'InstallSucceeded', message: 'Helm install succeeded' };
    }
    if (this.options.applyArtifacts && (o.spec?.sourceRef as { kind?: string } | undefined)?.kind === 'ExternalArtifact') {
      try {
        return await this.applyArtifact(o, key);
      } catch (e) {
        // One Kustomization failing is its own status, as in Flux; the others go on.
        const code = (e as { code?: number }).code;
        return { status: 'False', reason: 'ReconciliationFailed', message: `apply failed${code ? `: HTTP ${code}` : ''}` };
      }
    }
    return { status: 'True', reason: 'ReconciliationSucceeded', message: 'Applied revision' };
  }

  /**
   * Where a Kustomization or HelmRelease applies: its `kubeConfig.secretRef`'s cluster, else this one;
   * undefined while the Secret is missing. Read every pass, as Flux does: a registration that changes (the
   * child pivoted, and is now reached through the cell's API proxy) is followed at once.
   */
  private async target(o: Obj): Promise<Destination | undefined> {
    const ref = (o.spec?.kubeConfig as { secretRef?: { name?: string; key?: string } } | undefined)?.secretRef;
    if (!ref?.name) return { api: this.objects, digest: 'in-cluster' };
    try {
      const secret = (await this.objects.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name: ref.name, namespace: o.metadata?.namespace ?? '' } })) as { data?: Record<string, string> };
      const value = secret.data?.[ref.key ?? 'value'] ?? secret.data?.['value.yaml'];
      if (!value) return undefined;
      return kubeconfigDestination(Buffer.from(value, 'base64').toString('utf8'));
    } catch (e) {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    }
  }

  /** helm-controller's install, as a release record in the target cluster (destination.ts); re-checked every `installReleases.resyncMs`. */
  private async installRelease(o: Obj, key: string): Promise<Ready> {
    const target = await this.target(o);
    if (!target) return { status: 'False', reason: 'InstallFailed', message: 'the kubeconfig Secret has no kubeconfig' };
    const spec = o.spec ?? {};
    const chart = ((spec.chart as { spec?: { chart?: string; version?: string } } | undefined)?.spec) ?? {};
    const chartRef = spec.chartRef as { name?: string } | undefined;
    const release: Release = {
      name: String(spec.releaseName ?? o.metadata?.name ?? ''),
      namespace: String(spec.targetNamespace ?? o.metadata?.namespace ?? 'default'),
      chart: chart.chart ?? chartRef?.name ?? '',
      version: chart.version ?? '',
      values: spec.values ?? null,
    };
    const memo = `${target.digest}/${JSON.stringify(release)}`;
    const done = this.releases.get(key);
    if (done?.key === memo && Date.now() - done.at < (this.options.installReleases?.resyncMs ?? 1000)) return { status: 'True', reason: 'InstallSucceeded', message: 'Helm install succeeded' };
    try {
      await ensureRelease(target, release, 'helm-controller');
      this.releases.set(key, { key: memo, at: Date.now() });
      return { status: 'True', reason: 'InstallSucceeded', message: 'Helm install succeeded' };
    } catch (e) {
      this.releases.delete(key);
      return { status: 'False', reason: 'InstallFailed', message: `install failed: HTTP ${(e as { code?: number }).code ?? 'error'}` };
    }
  }

  private async applyArtifact(o: Obj, key: string): Promise<Ready> {
    const ns = o.metadata?.namespace ?? '';
    const source = o.spec?.sourceRef as { name?: string; namespace?: string };
    let artifact: { url: string; digest: string; revision: string } | undefined;
    try {
      const ea = (await this.objects.read({ apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'ExternalArtifact', metadata: { name: source.name ?? '', namespace: source.namespace ?? ns } })) as Obj;
      artifact = ea.status?.artifact as typeof artifact;
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw e;
    }
    if (!artifact) return { status: 'False', reason: 'ArtifactFailed', message: `ExternalArtifact '${source.namespace ?? ns}/${source.name ?? ''}' has no artifact yet` };
    const target = await this.target(o);
    if (!target) return { status: 'False', reason: 'ReconciliationFailed', message: 'the kubeconfig Secret does not exist yet' };
    const api = target.api;
    let applied = this.applied.get(key);
    // A new revision, or a new way to the cluster (its registration changed): apply again.
    if (applied?.revision !== artifact.revision || applied.target !== target.digest) {
      const files = await fetchLikeFlux(artifact);
      const objects = objectsUnder(files, String(o.spec?.path ?? './')) as Obj[];
      for (const obj of objects) await api.patch(obj, undefined, undefined, 'kustomize-controller', true, PatchStrategy.ServerSideApply);
      const keep = new Set(objects.map(ref));
      if (o.spec?.prune === true) await this.prune((applied?.objects ?? []).filter((x) => !keep.has(ref(x))), applied?.api ?? api);
      applied = { revision: artifact.revision, target: target.digest, objects, api, orphan: o.spec?.deletionPolicy === 'Orphan' };
      this.applied.set(key, applied);
    }
    if (o.spec?.wait === true) {
      const exprs = (o.spec.healthCheckExprs ?? []) as { apiVersion: string; kind: string; current: string }[];
      for (const obj of applied.objects) {
        const live = await applied.api.read({ apiVersion: obj.apiVersion ?? '', kind: obj.kind ?? '', metadata: { name: obj.metadata?.name ?? '', ...(obj.metadata?.namespace ? { namespace: obj.metadata.namespace } : {}) } }).then((x) => JSON.parse(JSON.stringify(x)) as Obj, () => undefined);
        if (!live) return { status: 'False', reason: 'HealthCheckFailed', message: `${obj.kind ?? ''}/${obj.metadata?.name ?? ''} not found` };
        const expr = exprs.find((e) => e.apiVersion === obj.apiVersion && e.kind === obj.kind);
        const current = expr ? await celTrue(expr.current, live) : obj.kind === 'HelmRelease' || obj.kind === 'Kustomization' ? readyOf(live) === 'True' : true;
        if (!current) return { status: 'False', reason: 'Progressing', message: `waiting for ${obj.kind ?? ''}/${obj.metadata?.name ?? ''} to become current` };
      }
    }
    return { status: 'True', reason: 'ReconciliationSucceeded', message: `Applied revision: ${artifact.revision}` };
  }

  /** Objects of Kustomizations that are gone, pruned as kustomize-controller's garbage collection does. */
  private async pruneDeleted(listed: ReadonlyMap<string, Obj>): Promise<void> {
    for (const [key, applied] of [...this.applied]) {
      if (listed.has(key)) continue;
      this.applied.delete(key);
      if (!applied.orphan) await this.prune(applied.objects, applied.api);
    }
  }

  private async prune(objects: readonly Obj[], api: KubernetesObjectApi): Promise<void> {
    for (const obj of [...objects].reverse()) {
      if (obj.metadata?.annotations?.['kustomize.toolkit.fluxcd.io/prune'] === 'disabled') continue;
      await api.delete(obj).catch((e: unknown) => {
        if ((e as { code?: number }).code !== 404) throw e;
      });
    }
  }

  private async exists(apiVersion: string, kind: string, name: string, namespace: string): Promise<boolean> {
    try {
      await this.objects.read({ apiVersion, kind, metadata: { name, namespace } });
      return true;
    } catch (e) {
      if ((e as { code?: number }).code === 404) return false;
      throw e;
    }
  }

  /** Writes the Ready condition through the status subresource, only when it changes. */
  private async writeReady(kind: Kind, o: Obj, ready: Ready): Promise<void> {
    const conditions = (o.status?.conditions ?? []) as { type: string; status: string; reason: string; message: string }[];
    const current = conditions.find((c) => c.type === 'Ready');
    if (current && current.status === ready.status && current.reason === ready.reason && current.message === ready.message) return;
    const now = (this.options.now ?? (() => new Date()))().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const generation = o.metadata?.generation ?? 1;
    const condition = { type: 'Ready', ...ready, observedGeneration: generation, lastTransitionTime: current?.status === ready.status ? (current as { lastTransitionTime?: string }).lastTransitionTime ?? now : now };
    const status = { ...o.status, observedGeneration: generation, conditions: [...conditions.filter((c) => c.type !== 'Ready'), condition] };
    await this.custom.replaceNamespacedCustomObjectStatus({
      group: kind.group, version: kind.version, plural: kind.plural, namespace: o.metadata?.namespace ?? '', name: o.metadata?.name ?? '',
      body: { ...o, status },
    });
  }
}

const ref = (o: Obj): string => `${o.apiVersion ?? ''}/${o.kind ?? ''}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** JSON to CEL values (integers as CEL ints). */
function toCel(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toCel);
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : value;
  if (value !== null && typeof value === 'object') return new Map(Object.entries(value).map(([k, v]) => [k, toCel(v)]));
  return value;
}

/**
 * A healthCheckExprs expression on an object, its top-level fields bound as variables (research/flux.md §5).
 * The CEL interpreter is a development dependency: imported only when an expression is evaluated.
 */
async function celTrue(expression: string, obj: Obj): Promise<boolean> {
  const { run } = await import('@bufbuild/cel');
  const vars = Object.fromEntries(Object.entries(JSON.parse(JSON.stringify(obj)) as Record<string, unknown>).map(([k, v]) => [k, toCel(v)]));
  try {
    return run(expression, vars as never) === true;
  } catch {
    return false;
  }
}
