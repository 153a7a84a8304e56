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
  /**
   * The identity proxied requests run as (M9): the agent impersonates it, so what Argo CD or Flux may do in
   * the child through the parent's proxy is this account's ClusterRole, never the agent's own rights.
   */
  proxyServiceAccount: 'lattice-proxy',
} as const;

/** Cluster API groups the agent moves objects of (pivot and unpivot, DESIGN §7): the move's allowlist, one table. */
const CAPI_GROUPS = MOVABLE_GROUPS;

export interface Rule {
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
  // the API proxy: proxied requests run as lattice-proxy, and only as it
  { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['impersonate'], resourceNames: [AGENT.proxyServiceAccount] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

/**
 * The custom API groups each addon of templates/versions.yaml installs (its CRDs), by addon id: the proxy's
 * identity may write resources of these groups, because charts ship some of their own custom resources and
 * Lattice renders others (cert-manager ClusterIssuers). A test keeps this table in step with the catalog.
 */
export const ADDON_API_GROUPS: Readonly<Record<string, readonly string[]>> = {
  'cilium': ['cilium.io'],
  'cert-manager': ['cert-manager.io', 'acme.cert-manager.io'],
  'istio-base': ['networking.istio.io', 'security.istio.io', 'telemetry.istio.io', 'extensions.istio.io', 'gateway.networking.k8s.io'],
  'istiod': [],
  'istio-cni': [],
  'ztunnel': [],
  'external-secrets': ['external-secrets.io', 'generators.external-secrets.io'],
  'vmagent': ['operator.victoriametrics.com'],
  'victoria-metrics': ['operator.victoriametrics.com'],
  'keda': ['keda.sh', 'eventing.keda.sh'],
  'velero': ['velero.io'],
  'node-feature-discovery': ['nfd.k8s-sigs.io'],
  'nvidia-device-plugin': [],
  'hami': [],
  'cluster-api-operator': ['operator.cluster.x-k8s.io'],
};

const WRITE = ['create', 'update', 'patch', 'delete'];

/**
 * What Argo CD or Flux in the parent may do in the child through the API proxy, once the child manages
 * itself (M9): read everything (Argo CD's cluster cache and both engines' health checks list what they
 * manage), and write the kinds addon charts and the agent component consist of. Never the Cluster API
 * groups: after the pivot the agent applies the child's own Cluster API objects (spec sync), and nothing
 * coming through the parent may change them. `bind` and `escalate` are unavoidable for charts that ship
 * ClusterRoles and bindings (cilium, cert-manager, istio...), and they let the holder grant itself more:
 * this role is as strong as what it installs, which is why it is a separate identity from the agent's.
 */
export function proxyClusterRules(addonGroups: Readonly<Record<string, readonly string[]>> = ADDON_API_GROUPS): Rule[] {
  const custom = [...new Set(Object.values(addonGroups).flat())].sort();
  return [
    { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['namespaces', 'serviceaccounts', 'services', 'configmaps', 'secrets', 'persistentvolumeclaims'], verbs: WRITE },
    { apiGroups: ['apps'], resources: ['deployments', 'daemonsets', 'statefulsets'], verbs: WRITE },
    { apiGroups: ['batch'], resources: ['jobs', 'cronjobs'], verbs: WRITE },
    { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings', 'clusterroles', 'clusterrolebindings'], verbs: [...WRITE, 'bind', 'escalate'] },
    { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: WRITE },
    { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations', 'validatingadmissionpolicies', 'validatingadmissionpolicybindings'], verbs: WRITE },
    { apiGroups: ['apiregistration.k8s.io'], resources: ['apiservices'], verbs: WRITE },
    { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: WRITE },
    { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies', 'ingressclasses'], verbs: WRITE },
    { apiGroups: ['scheduling.k8s.io'], resources: ['priorityclasses'], verbs: WRITE },
    { apiGroups: ['storage.k8s.io'], resources: ['storageclasses', 'csidrivers'], verbs: WRITE },
    { apiGroups: ['node.k8s.io'], resources: ['runtimeclasses'], verbs: WRITE },
    { apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], verbs: WRITE },
    { apiGroups: custom, resources: ['*'], verbs: WRITE },
  ];
}

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
  const proxySubjects = [{ kind: 'ServiceAccount', name: AGENT.proxyServiceAccount, namespace: AGENT.namespace }];
  add('service-account.yaml.njk', 'ServiceAccount', AGENT.proxyServiceAccount, AGENT.namespace, {});
  add('role.yaml.njk', 'ClusterRole', AGENT.proxyServiceAccount, undefined, { rules: proxyClusterRules() });
  add('role-binding.yaml.njk', 'ClusterRoleBinding', AGENT.proxyServiceAccount, undefined, { roleRef: roleRef('ClusterRole', AGENT.proxyServiceAccount), subjects: proxySubjects });
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
