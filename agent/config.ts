/**
 * The agent's config.json (rendered by core/flavor/agent.ts into the `lattice-agent` ConfigMap):
 * `{"cluster", "heartbeatSeconds", "bootstrapSecret", "identitySecret"}`, plus optional
 * `addonNamespaces` (namespaces whose workloads make up addon health until the cell's spec sync
 * names them). Unknown keys are ignored, so an older agent reads a newer config.
 */
export interface AgentConfig {
  readonly cluster: string;
  readonly heartbeatSeconds: number;
  readonly bootstrapSecret: string;
  readonly identitySecret: string;
  readonly addonNamespaces: readonly string[];
}

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; errors: string[] };

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Parses and checks config.json; every problem is reported at once. */
export function parseAgentConfig(text: string): ConfigResult {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, errors: ['config is not valid JSON'] };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { ok: false, errors: ['config must be a JSON object'] };
  const o = data as Record<string, unknown>;
  const errors: string[] = [];
  const cluster = o.cluster;
  if (typeof cluster !== 'string' || !DNS_LABEL.test(cluster)) errors.push('cluster: expected the LatticeCluster name (a DNS label)');
  const heartbeat = o.heartbeatSeconds ?? 10;
  if (typeof heartbeat !== 'number' || !Number.isInteger(heartbeat) || heartbeat < 1 || heartbeat > 3600) errors.push('heartbeatSeconds: expected an integer from 1 to 3600');
  const names: Record<string, string> = {};
  for (const [key, fallback] of [['bootstrapSecret', 'lattice-agent-bootstrap'], ['identitySecret', 'lattice-agent-identity']] as const) {
    const v = o[key] ?? fallback;
    if (typeof v !== 'string' || !SECRET_NAME.test(v)) errors.push(`${key}: expected a Secret name`);
    else names[key] = v;
  }
  const addons = o.addonNamespaces ?? [];
  if (!Array.isArray(addons) || !addons.every((n) => typeof n === 'string' && DNS_LABEL.test(n))) errors.push('addonNamespaces: expected a list of namespace names');
  if (errors.length > 0 || typeof cluster !== 'string' || typeof heartbeat !== 'number' || !Array.isArray(addons)) return { ok: false, errors };
  return {
    ok: true,
    config: {
      cluster,
      heartbeatSeconds: heartbeat,
      bootstrapSecret: names.bootstrapSecret ?? 'lattice-agent-bootstrap',
      identitySecret: names.identitySecret ?? 'lattice-agent-identity',
      addonNamespaces: [...new Set(addons as string[])].sort(),
    },
  };
}
