/** Reading CustomResourceDefinitions from YAML files and directories (walked recursively, every document). */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { decodeObject, isRecord, type KubeObject } from './objects.js';

function yamlFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((e) => {
      const child = join(path, e.name);
      if (e.isDirectory()) return yamlFiles(child);
      return e.isFile() && /\.ya?ml$/.test(e.name) ? [child] : [];
    });
}

/**
 * Every `apiextensions.k8s.io/v1` CustomResourceDefinition in the given files and directories, in path order.
 * Other documents are skipped; unreadable YAML throws with the file name.
 */
export function loadCrdFiles(paths: readonly string[]): KubeObject[] {
  // Copies: the caller's store keeps (and may change) what it is given, the cache must not see that.
  return paths.flatMap(yamlFiles).flatMap((file) => crdsOf(file).map((crd) => structuredClone(crd)));
}

/**
 * Parsed CRDs by file, for as long as the file is unchanged: tests and the demo start many servers from the
 * same upstream CRDs, and parsing them again for each costs a second of CPU.
 */
const parsed = new Map<string, { readonly stamp: string; readonly crds: readonly KubeObject[] }>();

function crdsOf(file: string): readonly KubeObject[] {
  const stat = statSync(file);
  const stamp = `${stat.mtimeMs}/${stat.size}`;
  const hit = parsed.get(file);
  if (hit?.stamp === stamp) return hit.crds;
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const problem = doc.errors[0];
    if (problem) throw new Error(`${file}: invalid YAML: ${problem.message}`);
    // CRD files are trusted inputs (ours or pinned upstream ones), and use anchors on purpose.
    const value: unknown = doc.toJS({ maxAliasCount: -1 });
    if (isRecord(value) && value.kind === 'CustomResourceDefinition' && value.apiVersion === 'apiextensions.k8s.io/v1') {
      out.push(decodeObject(value));
    }
  }
  parsed.set(file, { stamp, crds: out });
  return out;
}
