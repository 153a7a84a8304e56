/**
 * Rendering: a plan's objects through their templates into YAML documents. The hot path emits template
 * text as it is; nothing is parsed back (DESIGN §4: parsing costs 20-40x the rendering).
 */
import type { Stage } from '../plan/stages.js';
import type { LatticeCluster } from '../spec/model.js';
import { createTemplateEnvironment, type TemplateEnvironment, type TemplateSources } from './environment.js';
import { planCluster, type ClusterPlan } from './plan.js';
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
  plan(cluster: LatticeCluster): ClusterPlan;
  /** The cluster's documents in plan order. */
  renderCluster(cluster: LatticeCluster): RenderedDocument[];
}

export interface RendererOptions {
  readonly templates: TemplateSources;
  readonly versions: Versions;
}

/** Builds a renderer; templates are compiled here, once. */
export function createRenderer(options: RendererOptions): Renderer {
  const env: TemplateEnvironment = createTemplateEnvironment(options.templates);
  const planOptions = { versions: options.versions, templateDigest: (t: string) => env.digest(t) };
  return {
    plan: (cluster) => planCluster(cluster, planOptions),
    renderCluster(cluster) {
      return planCluster(cluster, planOptions).objects.map((o) => ({
        stage: o.stage,
        apiVersion: o.apiVersion,
        kind: o.kind,
        ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
        name: o.name,
        text: tidy(env.render(o.template, o.context)),
      }));
    },
  };
}

/**
 * Drops the blank lines that template tags leave behind. Safe: scalars are JSON-escaped, so no value
 * spans lines and no blank line carries meaning.
 */
function tidy(text: string): string {
  let out = '';
  for (const line of text.split('\n')) if (line.trim() !== '') out += `${line}\n`;
  return out;
}

/** Documents as one YAML stream, in the order given. */
export function toYamlStream(docs: readonly RenderedDocument[]): string {
  return docs.map((d) => `---\n${d.text}`).join('');
}
