/**
 * client-node glue for the simulated API server, kept out of server.ts so that serving (the CLI) never
 * loads the Kubernetes client.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { ApiServer, KubeconfigOptions } from './server.js';

/** A client-node KubeConfig for a listening simulated server (token and CA included when configured). */
export function simKubeConfig(server: ApiServer, options: KubeconfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions(server.kubeconfigOptions(options));
  return kc;
}
