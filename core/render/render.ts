/**
 * Rendering: a plan's objects through their templates into YAML documents. The hot path emits template
 * text as it is; nothing is parsed back (DESIGN §4: parsing costs 20-40x the rendering).
 */
import { planAddons, type AddonOverrides, type PlannedAddon } from '../plan/addons.js';
import type { Stage } from '../plan/stages.js';
import type { LatticeCluster } from '../spec/model.js';
import { createTemplateEnvironment, type PrecompiledTemplates, type TemplateEnvironment, type TemplateSources } from './environment.js';
import { planCluster, type ClusterPlan, type PlannedObject } from './plan.js';
import { RenderedYaml } from './scalar.js';
import type { Versions } from './versions.js';

/** One rendered object: what the plan knew about it, plus its YAML text (ending in one newline). */
export interface RenderedDocument {
  readonly stage: Stage;
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly text: string;
}

export interface Renderer {
  readonly versions: Versions;
  plan(cluster: LatticeCluster): ClusterPlan;
  /** The cluster's Cluster API documents in plan order (no flavor). */
  renderCluster(cluster: LatticeCluster): RenderedDocument[];
  /** The cluster's addons from the catalog, in install order. */
  addons(cluster: LatticeCluster, overrides?: AddonOverrides): PlannedAddon[];
  /** An addon's Helm values, rendered from its values template; undefined when it has none. */
  renderValues(addon: PlannedAddon): RenderedYaml | undefined;
  /** Planned objects (from any flavor) to documents, in the order given. */
  renderObjects(objects: readonly PlannedObject[]): RenderedDocument[];
}

export interface RendererOptions {
  readonly templates: TemplateSources;
  readonly versions: Versions;
  /** Templates compiled at build time; ignored unless made from exactly these sources. */
  readonly precompiled?: PrecompiledTemplates;
}

/** Builds a renderer; templates are compiled here, once. */
export function createRenderer(options: RendererOptions): Renderer {
  const env: TemplateEnvironment = createTemplateEnvironment(options.templates, options.precompiled);
  const planOptions = { versions: options.versions, templateDigest: (t: string) => env.digest(t) };
  const renderObjects = (objects: readonly PlannedObject[]): RenderedDocument[] => objects.map((o) => ({
    stage: o.stage,
    apiVersion: o.apiVersion,
    kind: o.kind,
    ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
    name: o.name,
    text: tidy(env.render(o.template, o.context)),
  }));
  return {
    versions: options.versions,
    plan: (cluster) => planCluster(cluster, planOptions),
    renderCluster: (cluster) => renderObjects(planCluster(cluster, planOptions).objects),
    addons: (cluster, overrides) => planAddons(cluster, options.versions.addons, options.versions.capiProviders, overrides),
    renderValues(addon) {
      if (addon.values === undefined) return undefined;
      const text = tidy(env.render(addon.values, addon.valuesContext));
      // Comment-only output means "no values": emit none rather than an empty mapping.
      return text.split('\n').some((l) => l.trim() !== '' && !l.trimStart().startsWith('#')) ? new RenderedYaml(text) : undefined;
    },
    renderObjects,
  };
}

/**
 * Drops the blank lines that template tags leave behind. Safe: scalars are JSON-escaped, so no value
 * spans lines and no blank line carries meaning.
 */
export function tidy(text: string): string {
  // Copies runs of kept lines rather than line by line: most lines are kept.
  let out = '';
  let run = 0;
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 ? text.length : nl;
    // A line that ends in printable ASCII other than a space is not blank: most lines are decided by
    // their last character, without walking their indentation.
    const last = end > start ? text.charCodeAt(end - 1) : 0;
    if (!(last > 32 && last < 127) && isBlank(text, start, end)) {
      if (run < start) out += text.slice(run, start);
      run = end + 1;
    }
    start = end + 1;
  }
  if (run < text.length) out += text.slice(run);
  return out === '' || out.endsWith('\n') ? out : `${out}\n`;
}

/** Whether text[start, end) is empty or whitespace only (as `trim` sees it), without copying it first. */
function isBlank(text: string, start: number, end: number): boolean {
  let i = start;
  while (i < end && text.charCodeAt(i) === 32) i++;
  if (i === end) return true;
  const c = text.charCodeAt(i);
  // Printable ASCII other than a space: certainly not blank. Anything else: ask `trim`.
  return c > 32 && c < 127 ? false : text.slice(i, end).trim() === '';
}

/** Documents as one YAML stream, in the order given. */
export function toYamlStream(docs: readonly RenderedDocument[]): string {
  return docs.map((d) => `---\n${d.text}`).join('');
}
