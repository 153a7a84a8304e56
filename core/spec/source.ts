/**
 * Spec files to YAML documents with source positions. Guards the parser against hostile input:
 * size limit, UTF-8 only, no binary, bounded alias expansion (billion laughs), duplicate keys rejected.
 *
 * YAML is read with YAML 1.1 scalars (`yes`/`on` are booleans), as Kubernetes' own sigs.k8s.io/yaml
 * (go-yaml v2) reads it, so a spec means the same here as under `kubectl apply`; timestamps and
 * sexagesimal numbers stay strings there too, so those tags are left out.
 */
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseAllDocuments, visit, type Document, type Node, type Pair, type Tags } from 'yaml';
import { IssueCode, fail, ok, type Issue, type Result } from './issues.js';
import type { Path } from './path.js';

/** Limits on input files. */
export interface SourceLimits {
  /** Largest accepted file. @default 5 MiB */
  readonly maxFileBytes: number;
  /** Upper bound on nodes reached through aliases in one document (yaml's maxAliasCount). @default 100 */
  readonly maxAliasCount: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = { maxFileBytes: 5 * 1024 * 1024, maxAliasCount: 100 };

/** Raw input: a path for messages and the file's bytes. */
export interface SourceFile {
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** One parsed YAML document, with its data and a way back to source positions. */
export interface SourceDocument {
  readonly file: string;
  readonly index: number;
  readonly data: unknown;
  /**
   * Line and column (1-based) of the field at `path`, or of its nearest existing ancestor; with `atKey`,
   * of the field's key rather than its value.
   */
  locate(path: Path, options?: { atKey?: boolean }): { line: number; col: number };
}

/**
 * go-yaml v2 leaves timestamps and sexagesimal (`190:20:30`) numbers as strings, and its float rule needs
 * a digit before an exponent (`e0` is a string there, while yaml's 1.1 rule reads it as NaN). Those tags
 * are replaced by go-yaml's rules so a spec means here what it means to kubectl and Argo CD.
 */
function isDroppedTag(tag: unknown): boolean {
  if (typeof tag !== 'object' || tag === null) return false;
  const t = tag as { tag?: string; format?: string; test?: RegExp };
  if (t.tag === 'tag:yaml.org,2002:timestamp' || t.format === 'TIME') return true;
  return t.tag === 'tag:yaml.org,2002:float' && !(t.test?.source.includes('inf') ?? false);
}

/**
 * Explicit tags whose values are not JSON (Map, Set, pairs, Uint8Array, Date): no Kubernetes field holds
 * them, and ajv would see an empty object, so data would be silently dropped. The yaml library resolves
 * them from a built-in table whatever the schema says, so they are refused by looking at the nodes.
 */
const UNSUPPORTED_TAGS = new Set(['omap', 'set', 'pairs', 'binary', 'timestamp'].map((t) => `tag:yaml.org,2002:${t}`));

/** go-yaml v2's yamlStyleFloat (resolve.go), underscores allowed between digits as it strips them first. */
const GO_YAML_FLOAT = {
  identify: (value: unknown) => typeof value === 'number',
  default: true,
  tag: 'tag:yaml.org,2002:float',
  test: /^[-+]?(\.[0-9][0-9_]*|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$/,
  resolve: (source: string) => Number.parseFloat(source.replace(/_/g, '')),
};
const UTF8_BOM = '\uFEFF';

/**
 * How spec YAML is read (the yaml library's options): YAML 1.1 scalars with go-yaml's float rule, merge
 * keys, duplicate keys refused. The first pass (first-pass.ts) resolves plain scalars with the same tags.
 */
export const SPEC_YAML_OPTIONS = {
  schema: 'yaml-1.1',
  customTags: (tags: Tags) => [...tags.filter((t) => !isDroppedTag(t)), GO_YAML_FLOAT],
  merge: true,
  uniqueKeys: true,
  prettyErrors: false,
  strict: true,
} as const;

/** A file's text, or the issue that stops it being read as YAML at all (size, NUL byte, not UTF-8). */
export function decodeSource(file: SourceFile, limits: SourceLimits): Result<string> {
  const at = (code: IssueCode, message: string, line = 1, col = 1, extra: Partial<Issue> = {}): Issue => ({
    code, message, file: file.path, line, col, path: '', ...extra,
  });
  if (file.bytes.length > limits.maxFileBytes) {
    return fail([at(IssueCode.FILE_TOO_LARGE, 'file is too large to be a cluster spec', 1, 1, {
      expected: `at most ${limits.maxFileBytes} bytes`, found: `${file.bytes.length} bytes`,
    })]);
  }
  const nul = file.bytes.indexOf(0);
  if (nul >= 0) {
    const pos = positionOfByte(file.bytes, nul);
    return fail([at(IssueCode.FILE_BINARY, 'file is binary (contains a NUL byte), not YAML', pos.line, pos.col)]);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(file.bytes);
  } catch {
    const lossy = new TextDecoder('utf-8').decode(file.bytes);
    const bad = lossy.indexOf('\uFFFD');
    const pos = positionOfIndex(lossy, Math.max(bad, 0));
    return fail([at(IssueCode.FILE_NOT_UTF8, 'file is not valid UTF-8', pos.line, pos.col, { expected: 'UTF-8 text', found: 'invalid byte sequence' })]);
  }
  return ok(text.startsWith(UTF8_BOM) ? text.slice(1) : text);
}

/** Parses a file into its non-empty documents, or returns every problem found in it. */
export function parseSourceFile(file: SourceFile, limits: SourceLimits = DEFAULT_SOURCE_LIMITS): Result<SourceDocument[]> {
  const at = (code: IssueCode, message: string, line = 1, col = 1, extra: Partial<Issue> = {}): Issue => ({
    code, message, file: file.path, line, col, path: '', ...extra,
  });
  const decoded = decodeSource(file, limits);
  if (!decoded.ok) return decoded;
  const text = decoded.value;

  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { ...SPEC_YAML_OPTIONS, lineCounter });
  const list = Array.isArray(docs) ? docs : [docs];
  const mayHaveTags = text.includes('!');
  // Only an alias (`*name`) can make data cyclic.
  const mayHaveAliases = text.includes('*');
  const issues: Issue[] = [];
  const out: SourceDocument[] = [];

  list.forEach((doc, index) => {
    const problems = [...doc.errors, ...doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED')];
    for (const err of problems) {
      const pos = lineCounter.linePos(err.pos[0]);
      const dup = err.code === 'DUPLICATE_KEY';
      issues.push(at(dup ? IssueCode.YAML_DUPLICATE_KEY : IssueCode.YAML_SYNTAX, dup ? 'duplicate key in a mapping' : firstLine(err.message), pos.line, pos.col, { document: index }));
    }
    let unsupported = false;
    // Only an explicit tag (`!!set`, `!<...>`) can name an unsupported type: no '!' in the text, no walk.
    if (mayHaveTags) visit(doc, {
      Node(_key, node) {
        if (node.tag !== undefined && UNSUPPORTED_TAGS.has(node.tag)) {
          const pos = lineCounter.linePos(node.range?.[0] ?? 0);
          issues.push(at(IssueCode.YAML_SYNTAX, `tag !!${node.tag.split(':').pop() ?? ''} is not supported: Kubernetes objects hold only maps, lists and scalars`, pos.line, pos.col, { document: index }));
          unsupported = true;
        }
      },
    });
    if (problems.length > 0 || unsupported || doc.contents === null) return;
    let data: unknown;
    try {
      data = doc.toJS({ maxAliasCount: limits.maxAliasCount });
    } catch (e) {
      if (e instanceof ReferenceError || (e instanceof Error && /alias/i.test(e.message))) {
        const pos = firstAliasPosition(doc, lineCounter);
        issues.push(at(IssueCode.YAML_ALIAS_LIMIT, 'aliases expand to too many nodes (a YAML bomb?)', pos.line, pos.col, {
          document: index, expected: `at most ${limits.maxAliasCount} nodes reached through aliases`, found: 'more',
        }));
        return;
      }
      throw e;
    }
    if (data === null || data === undefined) return;
    if (mayHaveAliases && isCyclic(data)) {
      const pos = firstAliasPosition(doc, lineCounter);
      issues.push(at(IssueCode.YAML_RECURSIVE_ALIAS, 'an alias refers to a node that contains it, which makes the data infinite', pos.line, pos.col, { document: index }));
      return;
    }
    out.push({
      file: file.path,
      index,
      data,
      locate: (path, options) => locate(doc, lineCounter, path, options?.atKey ?? false),
    });
  });
  return issues.length > 0 ? fail(issues) : ok(out);
}

/** True when some object contains itself (an alias to one of its own ancestors). */
function isCyclic(root: unknown): boolean {
  const onPath = new Set<object>();
  const visit = (v: unknown): boolean => {
    if (typeof v !== 'object' || v === null) return false;
    if (onPath.has(v)) return true;
    onPath.add(v);
    const found = (Array.isArray(v) ? v : Object.values(v)).some(visit);
    onPath.delete(v);
    return found;
  };
  return visit(root);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

function positionOfByte(bytes: Uint8Array, offset: number): { line: number; col: number } {
  const prefix = new TextDecoder('utf-8').decode(bytes.subarray(0, offset));
  return positionOfIndex(prefix, prefix.length);
}

function positionOfIndex(text: string, index: number): { line: number; col: number } {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  return { line, col: index - before.lastIndexOf('\n') };
}

function firstAliasPosition(doc: Document, lc: LineCounter): { line: number; col: number } {
  let offset = 0;
  visit(doc, {
    Alias(_key, node) {
      offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return lc.linePos(offset);
}

function deref(node: unknown, doc: Document): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function keyOf(pair: Pair): unknown {
  return isScalar(pair.key) ? pair.key.value : pair.key;
}

/**
 * Finds the source position of a field path. Scalars point at their value; collections at their key
 * (where the reader's eye goes); a path that does not exist points at its nearest existing ancestor.
 */
function locate(doc: Document, lc: LineCounter, path: Path, atKey: boolean): { line: number; col: number } {
  let node = deref(doc.contents, doc) as Node | null;
  let offset = node?.range?.[0] ?? 0;
  for (const [i, seg] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String(keyOf(p)) === String(seg));
      if (!pair) break;
      const value = deref(pair.value, doc) as Node | null;
      const keyStart = (pair.key as Node | null)?.range?.[0];
      const wantKey = atKey && i === path.length - 1;
      offset = !wantKey && isScalar(value) && value.range ? value.range[0] : keyStart ?? offset;
      node = value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = deref(node.items[seg], doc) as Node | null | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return lc.linePos(offset);
}
