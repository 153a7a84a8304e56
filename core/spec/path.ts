/** Field paths: segments as data, one printed form (`spec.nodes.workerPools.gpu.labels["a b"]`). */

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

const PLAIN = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Prints a path the way kubectl users read them: dots for plain keys, brackets otherwise. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Splits an ajv instancePath (a JSON pointer) into segments; array indices become numbers. */
export function fromJsonPointer(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const segs: PathSegment[] = [];
  let node: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) {
      const i = Number(key);
      segs.push(i);
      node = node[i];
    } else {
      segs.push(key);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return segs;
}
