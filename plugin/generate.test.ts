/** What `cmp generate` prints, built in process: the chunked stream equals the one-string stream. */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { loadSpecs, specRenderer } from '../cli/load.js';
import { REPO } from '../test/support/repo.js';
import { readCmpOptions } from './options.js';
import { generateChunks, generateText, selectArgoCdObjects } from './generate.js';

describe('generateChunks', () => {
  it('gives the bytes of generateText, whatever the chunk size', () => {
    // GIVEN the bundled examples selected as Argo CD runs the plugin on them
    const renderer = specRenderer();
    const specs = loadSpecs([join(REPO, 'examples', 'clusters')]).result;
    const options = readCmpOptions({
      ARGOCD_APP_SOURCE_REPO_URL: 'https://git.example.com/clusters.git', ARGOCD_APP_SOURCE_PATH: '.', ARGOCD_APP_SOURCE_TARGET_REVISION: 'main',
    }, renderer.versions.addons.map((a) => a.id));
    if (!specs.ok || !options.ok) throw new Error('the examples and options should be valid');
    const selection = selectArgoCdObjects(renderer, specs.value, options.value);
    if (!selection.ok) throw new Error(selection.errors.join('; '));
    const text = generateText(renderer, selection.objects);
    // WHEN the stream is made in chunks of several sizes, one of them larger than the whole
    for (const per of [1, 7, 64, selection.objects.length + 1]) {
      const chunks = generateChunks(renderer, selection.objects, per);
      // THEN the chunks, in order, are exactly the text's UTF-8
      expect(chunks).toHaveLength(Math.ceil(selection.objects.length / per));
      expect(Buffer.concat(chunks).equals(Buffer.from(text, 'utf8'))).toBe(true);
    }
  });
});
