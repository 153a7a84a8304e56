/**
 * `npm run bench`: every benchmark, one after the other (never two at once: they would measure each
 * other), each in its own process. Their JSON lines go to stdout as they come; a table of the targets
 * follows on stderr. Exit 0 when every script ran, whatever the figures: benchmarks measure, never gate.
 *
 * Run: npm run bench [-- [render] [cell] [controller] [sidecar] [pivot] [--quick]]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './lib.js';

/** The scripts, in the order they run, with the node flags each needs. */
const SCRIPTS: readonly { name: string; file: string; nodeArgs?: readonly string[] }[] = [
  { name: 'render', file: 'render.ts' },
  { name: 'sidecar', file: 'sidecar.ts' },
  { name: 'controller', file: 'controller.ts', nodeArgs: ['--expose-gc'] },
  { name: 'cell', file: 'cell.ts', nodeArgs: ['--expose-gc'] },
  { name: 'pivot', file: 'pivot.ts' },
];

const argv = process.argv.slice(2);
const flags = argv.filter((a) => a.startsWith('--'));
const wanted = argv.filter((a) => !a.startsWith('--'));
const unknown = wanted.filter((w) => !SCRIPTS.some((s) => s.name === w));
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown benchmark ${unknown.join(', ')} (known: ${SCRIPTS.map((s) => s.name).join(', ')})\n`);
  process.exit(2);
}

interface Line { bench: string; name: string; params: Record<string, unknown>; unit: string; median: number; floor?: { median: number; ratio: number }; target?: { max?: number; min?: number; met: boolean } }
const lines: Line[] = [];
const failed: string[] = [];

for (const script of SCRIPTS.filter((s) => wanted.length === 0 || wanted.includes(s.name))) {
  process.stderr.write(`bench: ${script.name}\n`);
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [...(script.nodeArgs ?? []), '--import', 'tsx', join(repoRoot, 'bench', script.file), ...flags], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let pending = '';
    child.stdout.on('data', (b: Buffer) => {
      process.stdout.write(b);
      pending += b.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const p of parts) {
        try {
          lines.push(JSON.parse(p) as Line);
        } catch {
          // Not a result line (a script's own note): printed as it is, left out of the table.
        }
      }
    });
    child.on('close', resolve);
  });
  if (code !== 0) failed.push(`${script.name} (exit ${code})`);
}

const fmt = (x: number | undefined) => (x === undefined ? '' : String(Math.round(x * 100) / 100));
process.stderr.write('\nbench: targets\n');
for (const l of lines.filter((x) => x.target)) {
  const t = l.target;
  const want = t?.max !== undefined ? `<= ${t.max}` : `>= ${fmt(t?.min)}`;
  process.stderr.write(`  ${t?.met ? 'met    ' : 'NOT MET'}  ${l.bench}/${l.name} ${JSON.stringify(l.params)}: ${fmt(l.median)} ${l.unit} (target ${want}; floor ${fmt(l.floor?.median)}, ratio ${fmt(l.floor?.ratio)})\n`);
}
if (failed.length > 0) {
  process.stderr.write(`bench: failed: ${failed.join(', ')}\n`);
  process.exit(1);
}
