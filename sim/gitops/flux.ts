/**
 * A simulated Flux, enough for controller tests and the demo: kustomize-controller and helm-controller
 * reduced to their Ready condition. A Kustomization is Ready once every `dependsOn` is Ready; a
 * HelmRelease once its `kubeConfig.secretRef` Secret exists and every `dependsOn` is Ready. Nothing is
 * fetched, built or installed. `suspend: true` freezes an object, as in Flux. Conditions follow
 * kstatus (Ready with reason and message, observedGeneration).
 */
import { CustomObjectsApi, KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
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
      return { status: 'True', reason: 'InstallSucceeded', message: 'Helm install succeeded' };
    }
    return { status: 'True', reason: 'ReconciliationSucceeded', message: 'Applied revision' };
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
