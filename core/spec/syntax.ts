/**
 * Kubernetes name and label syntax as regular expressions. The same strings appear in the CRD's CEL rules
 * (a test checks they do), written without backslashes so they read the same in RE2, JavaScript and YAML.
 */

/** RFC 1123 DNS label, as used for namespaces and pool ids (length checked separately: at most 63). */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

/** Qualified name (label and taint keys): optional DNS-subdomain prefix and '/', then a name of at most 63. */
export const LABEL_KEY = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';

/** Bounds the prefix of a qualified name to 253 characters (RE2 has no look-ahead, so a second expression). */
export const LABEL_KEY_PREFIX_LENGTH = '^([^/]{1,253}/)?[^/]+$';

/** Label value: empty, or at most 63 characters starting and ending with a letter or digit. */
export const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$';

/** What a label key looks like, for messages. */
export const LABEL_KEY_SYNTAX = "[prefix/]name, name at most 63 characters of letters, digits, '-', '_', '.'";

/** What a label value looks like, for messages. */
export const LABEL_VALUE_SYNTAX = "empty, or at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit";

/** Longest cluster name: the namespace `capi-<name>` must stay a 63-character DNS label. */
export const MAX_CLUSTER_NAME = 63 - 'capi-'.length;

const re = (s: string) => new RegExp(s);
const dnsLabel = re(DNS_LABEL);
const labelKey = re(LABEL_KEY);
const labelKeyPrefix = re(LABEL_KEY_PREFIX_LENGTH);
const labelValue = re(LABEL_VALUE);

export const isDnsLabel = (s: string, max = 63): boolean => s.length <= max && dnsLabel.test(s);
export const isLabelKey = (s: string): boolean => labelKey.test(s) && labelKeyPrefix.test(s);
export const isLabelValue = (s: string): boolean => labelValue.test(s);

/**
 * Label keys a kubelet may not set on its own Node (NodeRestriction admission): anything under
 * kubernetes.io or k8s.io except the kubelet.kubernetes.io and node.kubernetes.io namespaces and a
 * few well-known labels. The CRD's NODE_LABEL_RESTRICTED rule uses the same expressions.
 */
const RESERVED_LABEL = /^([^/]*[.])?(kubernetes[.]io|k8s[.]io)\//;
const KUBELET_LABEL = /^([^/]*[.])?(kubelet|node)[.]kubernetes[.]io\//;
const KUBELET_WELL_KNOWN = new Set(['kubernetes.io/arch', 'kubernetes.io/os', 'kubernetes.io/hostname', 'topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'node.kubernetes.io/instance-type']);

/**
 * Label keys Cluster API copies from a Machine to its Node (research/capi.md B.6): the only way to get
 * node-role labels, which no kubelet may set.
 */
const CAPI_SYNCED_LABEL = /^(node-role|([^/]*[.])?node-restriction)[.]kubernetes[.]io\/|^([^/]*[.])?node[.]cluster[.]x-k8s[.]io\//;

/** True for a pool label that must reach the Node through the Machine, not the kubelet. */
export const isCapiSyncedLabel = (key: string): boolean => CAPI_SYNCED_LABEL.test(key);

/** True for a pool label neither the kubelet nor Cluster API can put on a Node. */
export const isRestrictedNodeLabel = (key: string): boolean =>
  RESERVED_LABEL.test(key) && !KUBELET_LABEL.test(key) && !KUBELET_WELL_KNOWN.has(key) && !isCapiSyncedLabel(key);
