/**
 * Templates precompiled at build time (scripts/precompile.ts) must render exactly what compiling the
 * sources renders, and must never be used for sources other than those they were made from.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadTemplateSources } from '../../cli/assets.js';
import { exampleClusters } from '../../test/support/repo.js';
import { precompileTemplates, templatesDigest, type PrecompiledTemplates } from './environment.js';
import { createRenderer, toYamlStream } from './render.js';
import { parseVersions } from './versions.js';

const sources = loadTemplateSources();
const versions = parseVersions(parse(sources.get('versions.yaml') ?? ''));
if (!versions.ok) throw new Error('versions.yaml is invalid');

/** What dist/generated/templates.cjs holds: each template's code evaluated once. */
function precompiled(from: ReadonlyMap<string, string>): PrecompiledTemplates {
  const templates: Record<string, object> = {};
  // Our own templates' compiled code, evaluated as nunjucks itself evaluates it.
  for (const [name, code] of precompileTemplates(from)) templates[name] = (new Function(code) as () => object)();
  return { digest: templatesDigest(from), templates };
}

describe('precompiled templates', () => {
  it('render every example byte for byte as the sources do', () => {
    // GIVEN a renderer from sources and one from the same sources precompiled
    const fromSources = createRenderer({ templates: sources, versions: versions.value });
    const fromCode = createRenderer({ templates: sources, versions: versions.value, precompiled: precompiled(sources) });
    // WHEN both render every example THEN the bytes are the same
    for (const cluster of exampleClusters()) {
      expect(toYamlStream(fromCode.renderCluster(cluster))).toBe(toYamlStream(fromSources.renderCluster(cluster)));
    }
  });

  it('are ignored when the sources changed since they were made', () => {
    // GIVEN code precompiled from the shipped templates, and a template changed afterwards
    const stale = precompiled(sources);
    const changed = new Map(sources);
    const name = 'capi/core/cluster.yaml.njk';
    changed.set(name, `# changed after the build\n${sources.get(name) ?? ''}`);
    // WHEN a renderer gets both THEN it renders the changed source, not the stale code
    const renderer = createRenderer({ templates: changed, versions: versions.value, precompiled: stale });
    const cluster = exampleClusters()[0];
    if (!cluster) throw new Error('no example');
    const text = toYamlStream(renderer.renderCluster(cluster));
    expect(text).toContain('# changed after the build');
  });
});
