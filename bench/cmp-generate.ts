/**
 * `lattice cmp generate` over N clusters, run as argocd-cmp-server runs it (a child process in the app
 * path). Argo CD gives the whole request 60 s by default (research/argocd-cmp.md §2.6).
 * Run: npm run build && npx tsx bench/cmp-generate.ts [clusters=1000]
 * Prints one line: `bench cmp-generate clusters=N objects=M bytes=B wall_ms=T max_rss_mb=R`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const count = Number(process.argv[2] ?? 1000);
const examples = join(repo, 'examples', 'clusters');
const templates = readdirSync(examples).filter((f) => f.endsWith('.yaml') && f !== 'infraproviders.yaml').map((f) => readFileSync(join(examples, f), 'utf8'));
const app = mkdtempSync(join(tmpdir(), 'lattice-bench-cmp-'));
writeFileSync(join(app, 'infraproviders.yaml'), readFileSync(join(examples, 'infraproviders.yaml')));
for (let i = 0; i < count; i++) {
  const src = templates[i % templates.length] ?? '';
  // Rename the cluster (metadata.name is the first `  name:` line of each example).
  writeFileSync(join(app, `c${i}.yaml`), src.replace(/^ {2}name: .*$/m, `  name: c${String(i).padStart(4, '0')}`));
}
const env = { PATH: process.env.PATH ?? '', HOME: tmpdir(), ARGOCD_APP_SOURCE_REPO_URL: 'https://git.example.com/c.git', ARGOCD_APP_SOURCE_PATH: '.', ARGOCD_APP_SOURCE_TARGET_REVISION: 'main' };
const started = process.hrtime.bigint();
const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, join(repo, 'dist/cli/main.js'), 'cmp', 'generate'], { cwd: app, env, encoding: 'utf8', maxBuffer: 1 << 30 });
const wallMs = Number((process.hrtime.bigint() - started) / 1_000_000n);
if (r.status !== 0) {
  process.stderr.write(r.stderr);
  process.exit(1);
}
const rssKb = Number(r.stderr.trim().split('\n').pop());
const objects = (r.stdout.match(/^---$/gm) ?? []).length;
process.stdout.write(`bench cmp-generate clusters=${count} objects=${objects} bytes=${r.stdout.length} wall_ms=${wallMs} max_rss_mb=${Math.round(rssKb / 1024)}\n`);
