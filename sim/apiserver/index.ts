/**
 * The simulated Kubernetes API server: see sim/README.md for what it does and does not simulate.
 * `simKubeConfig` (client-node glue) is in ./client.js and test helpers in ./testing.js, so that importing
 * this module never loads @kubernetes/client-node.
 */
export { createApiServer, type ApiServer, type ApiServerOptions, type KubeconfigOptions, type KubeconfigParts } from './server.js';
export { loadCrdFiles } from './crds.js';
export { requestInfo, type RequestInfo } from './http.js';
export { ApiError, type Status, type FieldError } from './errors.js';
export type { KubeObject, ObjectMeta, OwnerReference } from './objects.js';
export type { ResourceType, ServedVersion } from './resources.js';
export type { Store, StoredEvent, WatchEventType, WatchSink } from './store.js';
