/** Files shipped with the package (crds/, templates/), found from wherever the code runs (dist/ or source). */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** The package root: the nearest ancestor of this module holding package.json and crds/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'crds'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('lattice: cannot find the package root (package.json beside crds/)');
    dir = parent;
  }
}

/** The YAML files of crds/ by file name, in file-name order. */
export function loadCrdSources(root = packageRoot()): Map<string, string> {
  const dir = join(root, 'crds');
  return new Map(readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
}

/**
 * sha256 over crds/' file names and contents and over what compiles them (the built openapi.js and
 * formats.js, and ajv's version): what precompiled validators were built from. A build that recompiled
 * the code without regenerating the validators therefore does not use them.
 */
export function crdDigest(sources: ReadonlyMap<string, string>, root = packageRoot()): string {
  const hash = createHash('sha256');
  for (const [name, text] of sources) hash.update(name).update('\0').update(text).update('\0');
  for (const file of ['openapi.js', 'formats.js']) {
    const built = join(root, 'dist', 'core', 'spec', file);
    hash.update(existsSync(built) ? readFileSync(built) : 'unbuilt').update('\0');
  }
  const ajv = join(root, 'node_modules', 'ajv', 'package.json');
  hash.update(existsSync(ajv) ? String((JSON.parse(readFileSync(ajv, 'utf8')) as { version?: unknown }).version) : 'no ajv');
  return hash.digest('hex');
}

/** The parsed CustomResourceDefinitions of crds/, in file-name order. */
export function loadCrds(root = packageRoot(), sources = loadCrdSources(root)): unknown[] {
  return [...sources.values()]
    // Our own files: anchors are used on purpose (CRD schemas cannot $ref), so no alias limit here.
    .map((text) => parse(text, { maxAliasCount: -1 }) as unknown)
    // crds/ also holds the kustomization that installs them.
    .filter((doc) => typeof doc === 'object' && doc !== null && (doc as { kind?: unknown }).kind === 'CustomResourceDefinition');
}

/** Every file under templates/, by path relative to it (the nunjucks sources and versions.yaml). */
export function loadTemplateSources(root = packageRoot()): Map<string, string> {
  const base = join(root, 'templates');
  const out = new Map<string, string>();
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(join(dir, entry.name), rel);
      else if (entry.isFile()) out.set(rel, readFileSync(join(dir, entry.name), 'utf8'));
    }
  };
  walk(base, '');
  return out;
}
