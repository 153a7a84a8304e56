/** `lattice sim apiserver` (cli/sim.ts): serves until told to stop, usable through a written kubeconfig. */
import { eventually, failure } from './testing.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerSimCommands } from '../../cli/sim.js';

const TEST_CRDS = fileURLToPath(new URL('./testdata/test-crds.yaml', import.meta.url));

function harness() {
  let stderr = '';
  let stdout = '';
  let exit: number | undefined;
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  const program = new Command('lattice').exitOverride().configureOutput({ writeOut: (s) => (stderr += s), writeErr: (s) => (stderr += s) });
  registerSimCommands(program, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } }, (c) => {
    exit = c;
  }, { waitForShutdown: () => stopped });
  return {
    run: (args: string[]) => program.parseAsync(['sim', 'apiserver', ...args], { from: 'user' }),
    stop,
    stderr: () => stderr,
    stdout: () => stdout,
    exit: () => exit,
  };
}

describe('lattice sim apiserver', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lattice-sim-cli-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTP on 127.0.0.1 with CRDs, a token and --no-validation, writes a kubeconfig, and stops cleanly', async () => {
    // GIVEN a token file
    writeFileSync(join(dir, 'token'), 'cli-token\n');
    const kubeconfig = join(dir, 'kubeconfig');
    const cli = harness();
    // WHEN the command runs
    const done = cli.run(['--port', '0', '--crds', TEST_CRDS, '--no-validation', '--token-file', join(dir, 'token'), '--kubeconfig', kubeconfig, '--log-level', 'silent']);
    const url = await eventually(() => {
      const m = /serving (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.stderr());
      if (!m?.[1]) throw new Error(`no URL yet: ${cli.stderr()}`);
      return m[1];
    });
    // THEN a client using the written kubeconfig reaches it, with the CRDs installed and validation off
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    expect(kc.getCurrentCluster()?.server).toBe(url);
    expect((await kc.makeApiClient(CoreV1Api).readNamespace({ name: 'default' })).metadata?.name).toBe('default');
    const custom = kc.makeApiClient(CustomObjectsApi);
    await custom.createNamespacedCustomObject({ group: 'test.lattice.dev', version: 'v1', namespace: 'default', plural: 'widgets', body: { apiVersion: 'test.lattice.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 'not-in-the-enum' } } });
    // AND without the token it answers 401
    expect((await fetch(`${url}/api/v1/namespaces`)).status).toBe(401);
    // WHEN told to stop THEN it closes and exits 0, stdout untouched
    cli.stop();
    await done;
    expect(cli.exit()).toBe(0);
    expect(cli.stdout()).toBe('');
    expect(cli.stderr()).toContain('stopped');
    expect(await fetch(`${url}/healthz`).then(() => 'answered', () => 'refused')).toBe('refused');
    expect(cli.stderr()).not.toContain('cli-token');
  });

  it('prints a kubectl hint when no kubeconfig is asked for, and validates by default', async () => {
    // GIVEN the command without --kubeconfig WHEN it runs
    const cli = harness();
    const done = cli.run(['--log-level', 'silent', '--crds', TEST_CRDS]);
    const url = await eventually(() => {
      const m = /kubectl --server (http:\/\/127\.0\.0\.1:\d+) get namespaces/.exec(cli.stderr());
      if (!m?.[1]) throw new Error('no hint yet');
      return m[1];
    });
    // THEN the hint's URL works without a token, and custom resources are validated
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: 'c', server: url, skipTLSVerify: true }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    const invalid = await failure(kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ group: 'test.lattice.dev', version: 'v1', namespace: 'default', plural: 'widgets', body: { apiVersion: 'test.lattice.dev/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 'huge' } } }));
    expect(invalid.code).toBe(422);
    // WHEN told to stop THEN it exits 0
    cli.stop();
    await done;
    expect(cli.exit()).toBe(0);
  });

  it('exits 2 for an unreadable or empty token file and 1 for unreadable CRDs, without serving', async () => {
    // GIVEN a missing token file WHEN the command runs THEN it exits 2
    const missing = harness();
    await missing.run(['--token-file', join(dir, 'absent')]);
    expect(missing.exit()).toBe(2);
    expect(missing.stderr()).toContain('cannot read --token-file: ENOENT');
    // GIVEN an empty token file WHEN the command runs THEN it exits 2
    writeFileSync(join(dir, 'empty'), '  \n');
    const empty = harness();
    await empty.run(['--token-file', join(dir, 'empty')]);
    expect(empty.exit()).toBe(2);
    // GIVEN a CRD file that is not YAML WHEN the command runs THEN it exits 1 and never serves
    writeFileSync(join(dir, 'bad.yaml'), 'a: [unclosed\n');
    const badCrds = harness();
    await badCrds.run(['--crds', join(dir, 'bad.yaml')]);
    expect(badCrds.exit()).toBe(1);
    expect(badCrds.stderr()).toContain('invalid YAML');
    expect(badCrds.stderr()).not.toContain('serving');
  });

  it('rejects a port that is not a number as a usage error', async () => {
    // GIVEN a port that is not a number WHEN the command is parsed THEN commander reports a usage error
    const cli = harness();
    await expect(cli.run(['--port', 'http'])).rejects.toThrow(/TCP port/);
  });
});
