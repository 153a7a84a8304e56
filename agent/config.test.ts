import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from './config.js';

describe('parseAgentConfig', () => {
  it('reads the config the agent component renders, with defaults for what is absent', () => {
    const r = parseAgentConfig('{"cluster":"dev","heartbeatSeconds":10,"bootstrapSecret":"lattice-agent-bootstrap","identitySecret":"lattice-agent-identity","future":1}');
    expect(r).toEqual({ ok: true, config: { cluster: 'dev', heartbeatSeconds: 10, bootstrapSecret: 'lattice-agent-bootstrap', identitySecret: 'lattice-agent-identity', addonNamespaces: [] } });
  });

  it('reports every problem at once', () => {
    const r = parseAgentConfig('{"cluster":"Dev_1","heartbeatSeconds":0,"identitySecret":"","addonNamespaces":["ok","NO"]}');
    expect(r).toEqual({ ok: false, errors: [
      'cluster: expected the LatticeCluster name (a DNS label)',
      'heartbeatSeconds: expected an integer from 1 to 3600',
      'identitySecret: expected a Secret name',
      'addonNamespaces: expected a list of namespace names',
    ] });
    expect(parseAgentConfig('not json')).toEqual({ ok: false, errors: ['config is not valid JSON'] });
    expect(parseAgentConfig('[]')).toEqual({ ok: false, errors: ['config must be a JSON object'] });
  });
});
