/** Rewrites argocd/argocd-cm-health.yaml from argocd/health/*\/health.lua: `npx tsx sim/health/write-patch.ts`. */
import { writeFileSync } from 'node:fs';
import { renderHealthPatch } from './patch.js';
import { shippedHealthPatch } from './lua.js';

writeFileSync(shippedHealthPatch(), renderHealthPatch());
