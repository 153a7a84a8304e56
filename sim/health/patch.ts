/**
 * The argocd-cm patch we ship (argocd/argocd-cm-health.yaml) is generated from the Lua files under
 * argocd/health/<group>_<Kind>/health.lua, so the scripts stay reviewable and testable as files while users
 * install one patch. test/argocd-health-patch.test.ts fails when the committed patch differs from
 * `renderHealthPatch()`; `npx tsx sim/health/write-patch.ts` rewrites it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { argocdDir } from './lua.js';

/** One health check directory: `argocd/health/<group>_<Kind>/`. */
export interface HealthScriptFile {
  /** `<group>_<Kind>`, the suffix of the argocd-cm key (and the directory name). */
  readonly groupKind: string;
  /** The argocd-cm key holding the script. */
  readonly key: string;
  /** Absolute path of health.lua. */
  readonly file: string;
  /** Its exact content. */
  readonly script: string;
}

/** `argocd/health`, beside the shipped patch. */
export function healthDir(): string {
  return join(argocdDir(), 'health');
}

// Argo CD splits the key suffix on "_" into group and kind (util/settings convertToOverrideKey).
const GROUP_KIND = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?_)?[A-Z][A-Za-z0-9]*$/;

/** Every `<group>_<Kind>/health.lua` under `dir`, sorted by directory name. */
export function healthScripts(dir: string = healthDir()): HealthScriptFile[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()
    .map((groupKind) => {
      if (!GROUP_KIND.test(groupKind)) throw new Error(`${join(dir, groupKind)}: directory must be named <group>_<Kind>`);
      const file = join(dir, groupKind, 'health.lua');
      return { groupKind, key: `resource.customizations.health.${groupKind}`, file, script: readFileSync(file, 'utf8') };
    });
}

const HEADER = `# Argo CD health checks for Lattice (docs/argocd.md): a strategic-merge patch for the argocd-cm ConfigMap
# in the Argo CD namespace (the namespace comes from your kustomization or from \`kubectl -n argocd patch\`).
# GENERATED from argocd/health/<group>_<Kind>/health.lua by \`npx tsx sim/health/write-patch.ts\`; do not edit.
# There are no resource.customizations.useOpenLibs.* keys: the scripts use only the Lua base library, which
# Argo CD opens even for argocd-cm scripts (argo-cd util/lua/lua.go runLua).
`;

/** The patch text: each script verbatim in a literal block scalar, so the ConfigMap value equals the file. */
export function renderHealthPatch(scripts: readonly HealthScriptFile[] = healthScripts()): string {
  const lines = [HEADER.trimEnd(), 'apiVersion: v1', 'kind: ConfigMap', 'metadata:', '  name: argocd-cm', '  labels:',
    '    app.kubernetes.io/name: argocd-cm', '    app.kubernetes.io/part-of: argocd', 'data:'];
  for (const { key, file, script } of scripts) {
    // A literal block ("|", clip chomping) reproduces the text exactly only if it ends in one newline, has no
    // leading blank line and no tab or trailing space that YAML would treat differently.
    if (!script.endsWith('\n') || script.endsWith('\n\n')) throw new Error(`${file}: must end with exactly one newline`);
    if (script.startsWith('\n') || script.startsWith(' ')) throw new Error(`${file}: must not start with a blank line or a space`);
    if (/[ \t]$/m.test(script) || script.includes('\t') || script.includes('\r')) throw new Error(`${file}: no tabs, CRs or trailing spaces`);
    lines.push(`  ${key}: |`);
    for (const line of script.slice(0, -1).split('\n')) lines.push(line === '' ? '' : `    ${line}`);
  }
  return `${lines.join('\n')}\n`;
}
