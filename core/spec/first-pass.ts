/**
 * The fast first pass over spec files (DESIGN §4: "a faster parser may take the first pass, with positions
 * recovered only when there are errors to report"). js-yaml reads a file several times faster than the
 * yaml library builds its position-carrying document tree, which was the largest part of rendering 1,000
 * clusters (BENCHMARKS.md). The first pass gives the same data as `parseSourceFile` or gives up:
 *
 * - plain scalars resolve through the yaml library's own tags for our YAML 1.1 schema, in its order, so
 *   `yes`, `0777`, `1e3` and `~` mean exactly what they mean in the full pass;
 * - anything whose meaning the two parsers could disagree on is left to the full pass: explicit tags
 *   (`!`), aliases (`*`), merge keys (`<<`), directives (`%`), keys that are not strings, any js-yaml error
 *   (duplicate keys included);
 * - documents keep the full pass's indexes (both count empty documents alike; a test checks it).
 *
 * Source positions come from the full pass, run on the file only when something asks for one (an issue).
 * Whoever finds an issue in a first-pass file re-reads the whole file with the full pass, so every report
 * is the full pass's (validate.ts).
 */
import { FAILSAFE_SCHEMA, NOT_RESOLVED, defineMappingTag, defineScalarTag, loadAll, type Schema } from 'js-yaml';
import { Document, isScalar, type ScalarTag } from 'yaml';
import type { Path } from './path.js';
import { DEFAULT_SOURCE_LIMITS, SPEC_YAML_OPTIONS, decodeSource, parseSourceFile, type SourceDocument, type SourceFile, type SourceLimits } from './source.js';

/** Thrown inside js-yaml when a tag would report a problem: the first pass gives the file up. */
class GiveUp extends Error {}

/** The tags that resolve plain scalars in the full pass, and the options it hands them. */
function fullPassScalarTags(): { tags: ScalarTag[]; options: Document['options'] } {
  const doc = new Document(null, SPEC_YAML_OPTIONS);
  const tags = doc.schema.tags.filter((t): t is ScalarTag => t.default === true && 'test' in t && t.test instanceof RegExp);
  return { tags, options: doc.options };
}

/** Plain scalars repeat (keys, enum values), so resolutions are memoised up to this many distinct texts. */
const MEMO_LIMIT = 20_000;

function specSchema(): Schema {
  const { tags, options } = fullPassScalarTags();
  const memo = new Map<string, ScalarTag | null>();
  const tagOf = (source: string): ScalarTag | null => {
    let tag = memo.get(source);
    if (tag === undefined) {
      tag = tags.find((t) => t.test?.test(source)) ?? null;
      if (memo.size < MEMO_LIMIT) memo.set(source, tag);
    }
    return tag;
  };
  const implicit = defineScalarTag<unknown>('tag:lattice.dev,2026:implicit', {
    implicit: true,
    implicitFirstChars: null,
    identify: () => false,
    resolve: (source) => {
      const tag = tagOf(source);
      if (tag === null) return NOT_RESOLVED;
      const value = tag.resolve(source, () => { throw new GiveUp(); }, options);
      // Some tags hand back a Scalar node (null and booleans do), which the full pass unwraps the same way.
      if (isScalar(value)) return value.value;
      if (typeof value === 'object' && value !== null) throw new GiveUp();
      return value;
    },
  });
  // The yaml library's plain objects: string keys only (it would stringify others), `__proto__` as data.
  const map = defineMappingTag<Record<string, unknown>>('tag:yaml.org,2002:map', {
    create: () => ({}),
    addPair: (carrier, key, value) => {
      if (typeof key !== 'string') return 'a key that is not a string is left to the full pass';
      if (key === '__proto__') Object.defineProperty(carrier, key, { value, writable: true, enumerable: true, configurable: true });
      else carrier[key] = value;
      return '';
    },
    has: (carrier, key) => typeof key === 'string' && Object.hasOwn(carrier, key),
    keys: (result) => Object.keys(result),
    get: (result, key) => (typeof key === 'string' ? result[key] : undefined),
    identify: () => false,
  });
  return FAILSAFE_SCHEMA.withTags(implicit, map);
}

let schema: Schema | undefined;

/** Only if the full pass refuses a file js-yaml read (it never did in the differential test) is there no better place. */
const FILE_START = { line: 1, col: 1 } as const;

/** Text the first pass leaves to the full pass: tags, aliases, merge keys, directives. */
const UNSURE = /[!*]|<<|^%/m;

/**
 * The file's non-empty documents read by js-yaml, or undefined when the full pass must read it (the file
 * cannot be decoded, its text is outside what the first pass is sure of, or js-yaml finds any problem).
 */
export function firstPassDocuments(file: SourceFile, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): SourceDocument[] | undefined {
  const decoded = decodeSource(file, limits);
  if (!decoded.ok || UNSURE.test(decoded.value)) return undefined;
  schema ??= specSchema();
  let values: unknown[];
  try {
    values = loadAll(decoded.value, { schema, maxAliases: 0 });
  } catch {
    return undefined;
  }
  let full: SourceDocument[] | null | undefined;
  const fullPass = (): SourceDocument[] | null => {
    if (full === undefined) {
      const parsed = parseSourceFile(file, limits);
      full = parsed.ok ? parsed.value : null;
    }
    return full;
  };
  const out: SourceDocument[] = [];
  values.forEach((data, index) => {
    if (data === null || data === undefined) return;
    out.push({
      file: file.path,
      index,
      data,
      locate: (path: Path, options) => fullPass()?.find((d) => d.index === index)?.locate(path, options) ?? FILE_START,
    });
  });
  return out;
}
