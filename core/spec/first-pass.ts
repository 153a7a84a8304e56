/**
 * The fast first pass over spec files (DESIGN §4: "a faster parser may take the first pass, with positions
 * recovered only when there are errors to report"). js-yaml reads a file several times faster than the
 * yaml library builds its position-carrying document tree, which was the largest part of rendering 1,000
 * clusters (BENCHMARKS.md). The first pass gives the same data as `parseSourceFile` or gives up:
 *
 * - plain scalars resolve through the yaml library's own tags for our YAML 1.1 schema, in its order, so
 *   `yes`, `0777`, `1e3` and `~` mean exactly what they mean in the full pass;
 * - anything the two parsers could read differently is left to the full pass: text the `UNSURE` screen
 *   names (tags, aliases, merge keys, directives, and the forms a review and the differential test found
 *   read differently), keys that are not strings, and any js-yaml error (duplicate keys included);
 * - documents keep the full pass's indexes (once `...` lines are screened out, both count empty documents
 *   alike; the test checks it).
 *
 * Source positions come from the full pass, run on the file only when something asks for one (an issue),
 * and at most once per file. Whoever finds an issue in a first-pass file takes the whole file from that
 * full pass, so every report is the full pass's (validate.ts).
 */
import { FAILSAFE_SCHEMA, NOT_RESOLVED, defineMappingTag, defineScalarTag, loadAll, type Schema } from 'js-yaml';
import { Document, isScalar, type ScalarTag } from 'yaml';
import type { Result } from './issues.js';
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
/** Plain scalars longer than this are resolved each time: the memo holds keys and short values, not text. */
const MEMO_MAX_LENGTH = 256;

function specSchema(): Schema {
  const { tags, options } = fullPassScalarTags();
  const memo = new Map<string, ScalarTag | null>();
  const tagOf = (source: string): ScalarTag | null => {
    let tag = memo.get(source);
    if (tag === undefined) {
      tag = tags.find((t) => t.test?.test(source)) ?? null;
      if (memo.size < MEMO_LIMIT && source.length <= MEMO_MAX_LENGTH) memo.set(source, tag);
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

/** Only if the full pass refuses a file js-yaml read (no test input does) is there no better place. */
const FILE_START = { line: 1, col: 1 } as const;

/**
 * Text the first pass leaves to the full pass. Besides what can change the data's shape (tags `!`, aliases
 * `*`, anchors `&`, merge keys `<<`, directives `%`), each of these was found to be read differently by the
 * two parsers (js-yaml leniently or otherwise), so a file holding one is not the first pass's to decide:
 * - a BOM past the start (the full pass drops one at a line start) and a CR not followed by LF (a line
 *   break to js-yaml only);
 * - a `...` document end line (the full pass counts one with no document before it as an empty document,
 *   which shifts the indexes);
 * - a tab in a line's indentation (the full pass refuses some that js-yaml takes as blank);
 * - `\U` escapes (js-yaml accepts some beyond Unicode);
 * - a block scalar's explicit indentation indicator (`|2`), and a last line of blanks without a newline
 *   (chomping of whitespace-only content differs);
 * - a line over 1,024 characters (the full pass limits implicit keys to 1,024; js-yaml does not check).
 */
const UNSURE = /[!*\uFEFF]|<<|\r(?!\n)|\\U|[|>][-+]?[1-9]|(?:^|[\s[{,])&|^(?:%|\.\.\.(?:\s|$)| *\t|.{1025})/m;
const BLANK_LAST_LINE = /\n[ \t]+$/;

/** A file read by the first pass: its documents, and the full pass over the same file, run at most once. */
export interface FirstPass {
  readonly documents: readonly SourceDocument[];
  /** The full pass (`parseSourceFile`) over the same file, run on first call and then remembered. */
  full(): Result<SourceDocument[]>;
}

/**
 * The file read by js-yaml, or undefined when the full pass must read it (the file cannot be decoded, its
 * text is outside what the first pass is sure of, or js-yaml finds any problem).
 */
export function firstPass(file: SourceFile, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): FirstPass | undefined {
  const decoded = decodeSource(file, limits);
  if (!decoded.ok || UNSURE.test(decoded.value) || BLANK_LAST_LINE.test(decoded.value)) return undefined;
  schema ??= specSchema();
  let values: unknown[];
  try {
    values = loadAll(decoded.value, { schema, maxAliases: 0 });
  } catch {
    return undefined;
  }
  let fullResult: Result<SourceDocument[]> | undefined;
  const full = (): Result<SourceDocument[]> => (fullResult ??= parseSourceFile(file, limits));
  const documents: SourceDocument[] = [];
  values.forEach((data, index) => {
    if (data === null || data === undefined) return;
    documents.push({
      file: file.path,
      index,
      data,
      locate: (path: Path, options) => {
        const parsed = full();
        return (parsed.ok ? parsed.value.find((d) => d.index === index)?.locate(path, options) : undefined) ?? FILE_START;
      },
    });
  });
  return { documents, full };
}
