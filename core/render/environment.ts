/**
 * The nunjucks environment: templates handed in as sources (core does no I/O), compiled once when the
 * environment is made, never per render. Values reach the output only through the `y` and `block` filters (and `nested`, for
 * YAML another template rendered).
 */
import { createHash } from 'node:crypto';
import nunjucks from 'nunjucks';
import { nestedYaml, yamlBlock, yamlValue } from './scalar.js';

export interface TemplateEnvironment {
  /** Renders a template by its path under templates/ (for example `capi/aws/cluster.yaml.njk`). */
  render(template: string, context: Readonly<Record<string, unknown>>): string;
  /** sha256 of a template's source and of the sources it includes. */
  digest(template: string): string;
  readonly templates: readonly string[];
}

/** Template sources by path; `.njk` files are templates, `_`-prefixed ones are partials. */
export type TemplateSources = ReadonlyMap<string, string>;

class MemoryLoader {
  constructor(private readonly sources: TemplateSources) {}
  getSource(name: string): { src: string; path: string; noCache: boolean } {
    const src = this.sources.get(name);
    if (src === undefined) throw new Error(`template not found: ${name}`);
    return { src, path: name, noCache: false };
  }
}

export function createTemplateEnvironment(sources: TemplateSources): TemplateEnvironment {
  const env = new nunjucks.Environment(new MemoryLoader(sources) as unknown as nunjucks.ILoader, {
    autoescape: false,
    throwOnUndefined: true,
    trimBlocks: true,
    lstripBlocks: true,
  });
  env.addFilter('y', yamlValue);
  env.addFilter('block', yamlBlock);
  env.addFilter('nested', nestedYaml);
  const names = [...sources.keys()].filter((n) => n.endsWith('.njk')).sort();
  // Compiled on first use and kept: a run touches only its providers' templates, and the plugin's cold
  // start (one process per uncached revision in Argo CD) should not compile the rest.
  const compiled = new Map<string, nunjucks.Template>();
  const compiledTemplate = (name: string): nunjucks.Template | undefined => {
    let t = compiled.get(name);
    if (!t && sources.has(name) && name.endsWith('.njk')) {
      t = env.getTemplate(name, true);
      compiled.set(name, t);
    }
    return t;
  };
  // A template's digest covers the partials it includes: changing a partial renames what it shapes.
  const partials = names.filter((n) => n.split('/').pop()?.startsWith('_')).map((n) => sources.get(n) ?? '').join('\n');
  const digests = new Map(names.map((n) => [n, createHash('sha256').update(sources.get(n) ?? '').update('\n').update(partials).digest('hex')]));
  return {
    templates: names,
    render(template, context) {
      const t = compiledTemplate(template);
      if (!t) throw new Error(`template not found: ${template}`);
      return t.render(context as object);
    },
    digest(template) {
      const d = digests.get(template);
      if (!d) throw new Error(`template not found: ${template}`);
      return d;
    },
  };
}
