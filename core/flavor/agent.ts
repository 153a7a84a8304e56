/**
 * The agent component (DESIGN §6): what runs in the child to dial home. The Argo CD agent Application
 * asks the plugin for it; Flux applies it as raw manifests through the child's kubeconfig. Its RBAC is
 * the least the agent's jobs need, each rule with its reason.
 */
import { MOVABLE_GROUPS } from '../move/graph.js';
import { Stage } from '../plan/stages.js';
import type { PlannedObject } from '../render/plan.js';
import { LABEL } from '../render/plan.js';
import type { Versions } from '../render/versions.js';
import type { LatticeCluster } from '../spec/model.js';

/** Where the agent lives in the child, and the names the controller and the agent agree on. */
export const AGENT = {
  namespace: 'lattice-system',
  name: 'lattice-agent',
  /**
   * Written by the controller into the child before the agent stage: cell endpoint, CA, one-time token.
   * The agent reads it through the API, not a volume: the token never lands on the pod's filesystem, and
   * the pod does not hang in ContainerCreating before the controller has written it.
   */
  bootstrapSecret: 'lattice-agent-bootstrap',
  /** Written by the agent: its key and the certificate the cell signed. */
  identitySecret: 'lattice-agent-identity',
  /** Written by the agent: its record of the pivot (pivot complete, move id, applied generation; agent/state.ts). */
  stateSecret: 'lattice-agent-state',
  heartbeatSeconds: 10,
} as const;

/** Cluster API groups the agent moves objects of (pivot and unpivot, DESIGN §7): the move's allowlist, one table. */
const CAPI_GROUPS = MOVABLE_GROUPS;

interface Rule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames?: readonly string[];
}

/** Cluster-wide rules: each line says which job needs it. */
const CLUSTER_RULES: readonly Rule[] = [
  // heartbeat health: nodes ready/total
  { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
  // the move receiver creates capi-<cluster> if it is missing
  { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch', 'create'] },
  // local spec sync: the agent keeps the child's own LatticeCluster and reports its status
  { apiGroups: ['lattice.dev'], resources: ['latticeclusters', 'latticeclusters/status'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
  // pivot (create paused, unpause) and unpivot (stream back, delete its copies)
  { apiGroups: CAPI_GROUPS, resources: ['*'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
  // find the CAPI kinds to move, as clusterctl does (CRDs labelled cluster.x-k8s.io/provider)
  { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: ['get', 'list', 'watch'] },
  // heartbeat health: addon workloads
  { apiGroups: ['apps'], resources: ['deployments', 'daemonsets', 'statefulsets'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
];

/** Rules in lattice-system: its own Secrets and its leader Lease, nothing else. */
const AGENT_NAMESPACE_RULES: readonly Rule[] = [
  // bootstrap: read the parent's endpoint and token; keep the identity; pivot: keep the child-local pivot record
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'watch', 'update', 'patch'], resourceNames: [AGENT.bootstrapSecret, AGENT.identitySecret, AGENT.stateSecret] },
  // create cannot be limited by name (the name is not known to RBAC before the object exists)
  { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

/** Rules in capi-<cluster>: the Secrets and ConfigMaps that move with the CAPI objects. */
const CAPI_NAMESPACE_RULES: readonly Rule[] = [
  { apiGroups: [''], resources: ['secrets', 'configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
];

/** The agent component of one cluster, in apply order. */
export function planAgent(cluster: LatticeCluster, versions: Versions): PlannedObject[] {
  const name = cluster.metadata.name;
  const capiNamespace = `capi-${name}`;
  const labels = { [LABEL.managedBy]: 'lattice', [LABEL.cluster]: name, 'app.kubernetes.io/name': AGENT.name };
  const api = (kind: string): string => {
    const v = versions.apiVersions[kind];
    if (!v) throw new Error(`templates/versions.yaml has no apiVersion for ${kind}`);
    return v;
  };
  const objects: PlannedObject[] = [];
  const add = (template: string, kind: string, objName: string, namespace: string | undefined, fields: Record<string, unknown>) => {
    const meta = { name: objName, ...(namespace !== undefined ? { namespace } : {}), labels };
    objects.push({ stage: Stage.agent, template: `agent/${template}`, apiVersion: api(kind), kind, name: objName, ...(namespace !== undefined ? { namespace } : {}), context: { apiVersion: api(kind), kind, meta, ...fields } });
  };
  const subjects = [{ kind: 'ServiceAccount', name: AGENT.name, namespace: AGENT.namespace }];
  const roleRef = (kind: string, refName: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name: refName });

  add('namespace.yaml.njk', 'Namespace', AGENT.namespace, undefined, {});
  add('namespace.yaml.njk', 'Namespace', capiNamespace, undefined, {});
  add('service-account.yaml.njk', 'ServiceAccount', AGENT.name, AGENT.namespace, {});
  add('role.yaml.njk', 'ClusterRole', AGENT.name, undefined, { rules: CLUSTER_RULES });
  add('role-binding.yaml.njk', 'ClusterRoleBinding', AGENT.name, undefined, { roleRef: roleRef('ClusterRole', AGENT.name), subjects });
  add('role.yaml.njk', 'Role', AGENT.name, AGENT.namespace, { rules: AGENT_NAMESPACE_RULES });
  add('role-binding.yaml.njk', 'RoleBinding', AGENT.name, AGENT.namespace, { roleRef: roleRef('Role', AGENT.name), subjects });
  add('role.yaml.njk', 'Role', AGENT.name, capiNamespace, { rules: CAPI_NAMESPACE_RULES });
  add('role-binding.yaml.njk', 'RoleBinding', AGENT.name, capiNamespace, { roleRef: roleRef('Role', AGENT.name), subjects });
  add('config.yaml.njk', 'ConfigMap', AGENT.name, AGENT.namespace, {
    config: JSON.stringify({ cluster: name, heartbeatSeconds: AGENT.heartbeatSeconds, bootstrapSecret: AGENT.bootstrapSecret, identitySecret: AGENT.identitySecret }),
  });
  add('deployment.yaml.njk', 'Deployment', AGENT.name, AGENT.namespace, {
    selector: { 'app.kubernetes.io/name': AGENT.name },
    serviceAccount: AGENT.name,
    image: cluster.spec.latticeImage ?? versions.images.lattice,
    configMap: AGENT.name,
  });
  return objects;
}
