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
  const out: KubeObject[] = [];
  for (const file of paths.flatMap(yamlFiles)) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const problem = doc.errors[0];
      if (problem) throw new Error(`${file}: invalid YAML: ${problem.message}`);
      // CRD files are trusted inputs (ours or pinned upstream ones), and use anchors on purpose.
      const value: unknown = doc.toJS({ maxAliasCount: -1 });
      if (isRecord(value) && value.kind === 'CustomResourceDefinition' && value.apiVersion === 'apiextensions.k8s.io/v1') {
        out.push(decodeObject(value));
      }
    }
  }
  return out;
}
