/** `lattice render`: specs in, rendered Cluster API objects out (stdout), or every spec error (stderr). */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { toYamlStream, type RenderedDocument } from '../core/render/render.js';
import type { Streams } from './report.js';

export const RenderExit = { VERIFY_FAILED: 3 } as const;

export type RenderFormat = 'yaml' | 'json';

/** Parses one rendered document (the slow path: only for --format json and --verify). */
function parseDocument(doc: RenderedDocument): unknown {
  const docs = parseAllDocuments(doc.text);
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length !== 1 || !list[0] || list[0].errors.length > 0) throw new Error(`${doc.kind}/${doc.name}: rendered text is not exactly one YAML document`);
  return list[0].toJS({ maxAliasCount: 0 }) as unknown;
}

/** Problems where a parsed document disagrees with what the plan said about it. */
export function verifyDocuments(docs: readonly RenderedDocument[]): string[] {
  const problems: string[] = [];
  for (const doc of docs) {
    let obj: { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
    try {
      obj = parseDocument(doc) as typeof obj;
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    const want = { apiVersion: doc.apiVersion, kind: doc.kind, namespace: doc.namespace, name: doc.name };
    const got = { apiVersion: obj.apiVersion, kind: obj.kind, namespace: obj.metadata?.namespace, name: obj.metadata?.name };
    for (const key of Object.keys(want) as (keyof typeof want)[]) {
      if (want[key] !== got[key]) problems.push(`${doc.kind}/${doc.name}: ${key} is ${JSON.stringify(got[key])}, the plan says ${JSON.stringify(want[key])}`);
    }
  }
  return problems;
}

export function renderDocuments(docs: readonly RenderedDocument[], options: { format: RenderFormat; verify: boolean }, io: Streams): number {
  if (options.verify) {
    const problems = verifyDocuments(docs);
    if (problems.length > 0) {
      for (const p of problems) io.stderr.write(`lattice: render verification failed: ${p}\n`);
      return RenderExit.VERIFY_FAILED;
    }
  }
  if (options.format === 'json') {
    io.stdout.write(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs.map(parseDocument) }, null, 2)}\n`);
  } else {
    io.stdout.write(toYamlStream(docs));
  }
  return 0;
}

/**
 * Writes `<dir>/<cluster>.yaml` (or `.json`) per cluster. Each file is written to a temporary name and
 * renamed, so a reader never sees half a file; everything is verified before anything is written.
 */
export function writeClusterFiles(
  rendered: readonly { cluster: string; docs: readonly RenderedDocument[] }[],
  dir: string,
  options: { format: RenderFormat; verify: boolean },
  io: Streams,
): number {
  const outputs: { file: string; text: string }[] = [];
  for (const { cluster, docs } of rendered) {
    let text = '';
    const code = renderDocuments(docs, options, { stdout: { write: (s: string) => (text += s) }, stderr: io.stderr });
    if (code !== 0) return code;
    outputs.push({ file: `${cluster}.${options.format}`, text });
  }
  mkdirSync(dir, { recursive: true });
  for (const { file, text } of outputs) {
    const target = join(dir, file);
    writeFileSync(`${target}.tmp`, text);
    renameSync(`${target}.tmp`, target);
  }
  const objects = rendered.reduce((n, r) => n + r.docs.length, 0);
  io.stderr.write(`rendered ${rendered.length} cluster${rendered.length === 1 ? '' : 's'} (${objects} objects) into ${dir}\n`);
  return 0;
}
