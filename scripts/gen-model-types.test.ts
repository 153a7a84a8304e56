import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { GENERATED_PATH, generateModelTypes } from './gen-model-types.js';

describe('core/spec/model.generated.ts', () => {
  it('matches the CRDs (run `npm run gen:types` after changing crds/)', async () => {
    expect(readFileSync(GENERATED_PATH, 'utf8')).toBe(await generateModelTypes());
  });
});
