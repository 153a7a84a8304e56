/**
 * The nunjucks environment: templates handed in as sources (core does no I/O), each compiled once on
 * first use (or precompiled at build time), never per render. Values reach the output only through the `y` and `block` filters (and `nested`, for
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

/**
 * Templates compiled ahead of time (nunjucks' precompiled form: what compiling a source gives, by name),
 * from `precompileTemplates` at build time. Used only for sources whose digest they were made from.
 */
export interface PrecompiledTemplates {
  /** `templatesDigest` of the sources they were compiled from. */
  readonly digest: string;
  readonly templates: Readonly<Record<string, object>>;
}

class MemoryLoader {
  constructor(private readonly sources: TemplateSources, private readonly precompiled: Readonly<Record<string, object>> = {}) {}
  getSource(name: string): { src: string | { type: 'code'; obj: object }; path: string; noCache: boolean } {
    const src = this.sources.get(name);
    if (src === undefined) throw new Error(`template not found: ${name}`);
    const obj = this.precompiled[name];
    return { src: obj ? { type: 'code', obj } : src, path: name, noCache: false };
  }
}

/** The options templates are compiled and rendered with; precompiled code must be made with the same. */
const ENVIRONMENT_OPTIONS: nunjucks.ConfigureOptions = {
  autoescape: false,
  throwOnUndefined: true,
  trimBlocks: true,
  lstripBlocks: true,
};

/** sha256 over every template's path and source: what precompiled templates must have been made from. */
export function templatesDigest(sources: TemplateSources): string {
  const hash = createHash('sha256');
  for (const name of [...sources.keys()].sort()) hash.update(name).update('\0').update(sources.get(name) ?? '').update('\0');
  return hash.digest('hex');
}

/**
 * Each `.njk` source compiled to nunjucks' precompiled code: the body of a function returning the
 * template's render functions (build time: scripts/precompile.ts writes them into a module).
 */
export function precompileTemplates(sources: TemplateSources): Map<string, string> {
  const env = new nunjucks.Environment([], ENVIRONMENT_OPTIONS);
  const out = new Map<string, string>();
  for (const name of [...sources.keys()].filter((n) => n.endsWith('.njk')).sort()) {
    // The wrapper is handed the list of compiled templates (one here), though the types say one object.
    const wrapper = (templates: unknown) => (templates as { template: string }[])[0]?.template ?? '';
    out.set(name, nunjucks.precompileString(sources.get(name) ?? '', { name, env, wrapper }));
  }
  return out;
}

export function createTemplateEnvironment(sources: TemplateSources, precompiled?: PrecompiledTemplates): TemplateEnvironment {
  const usable = precompiled && precompiled.digest === templatesDigest(sources) ? precompiled.templates : undefined;
  const env = new nunjucks.Environment(new MemoryLoader(sources, usable) as unknown as nunjucks.ILoader, ENVIRONMENT_OPTIONS);
  env.addFilter('y', yamlValue);
  env.addFilter('block', yamlBlock);
  env.addFilter('nested', nestedYaml);
  const names = [...sources.keys()].filter((n) => n.endsWith('.njk')).sort();
  for (const partial of names.filter(isPartial)) exportOnce(env.getTemplate(partial, true));
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
  const partials = names.filter(isPartial).map((n) => sources.get(n) ?? '').join('\n');
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

const isPartial = (name: string): boolean => name.split('/').pop()?.startsWith('_') ?? false;

type ExportCallback = (err: unknown, exported: unknown) => void;

/**
 * Makes a partial's `{% from "_macros.njk" import header %}` run the partial once per process instead of
 * once per render (nunjucks re-runs an imported template's top level on every import). Only imports
 * without context are remembered: nunjucks gives those a fresh, empty context, so what they export (the
 * macros, which read only their arguments, filters and globals) is the same every time.
 */
function exportOnce(template: nunjucks.Template): void {
  const t = template as unknown as { getExported(...args: unknown[]): void };
  const original = t.getExported.bind(t);
  let exported: unknown;
  t.getExported = (...args: unknown[]) => {
    const cb = args[0];
    if (args.length !== 1 || typeof cb !== 'function') return original(...args);
    const done = cb as ExportCallback;
    if (exported !== undefined) return done(null, exported);
    return original((err: unknown, value: unknown) => {
      if (!err) exported = value;
      done(err, value);
    });
  };
}
