-- Health of a KubeadmControlPlane (controlplane.cluster.x-k8s.io, v1beta1 and v1beta2 status shapes) for
-- Lattice's sync waves (DESIGN 4, 4.1). Argo CD has no built-in check for it, so without this one the
-- infrastructure wave would not wait for the control plane at all.
--
-- The gate of the infrastructure wave is "control plane initialized (API reachable)", not "Ready": the
-- next wave installs the CNI, and no node turns Ready before it. So:
--  - Healthy once initialized and available (v1beta2 Available condition: etcd quorum and control plane
--    components healthy; v1beta1 status.initialized), reporting the replica counts;
--  - Progressing while scaling or rolling out (replicas against spec.replicas, upToDate/updated and ready
--    replicas), EXCEPT while no replica is Ready yet: readyReplicas counts Machines whose Node is Ready, so
--    zero means the CNI is not there, and waiting then for anything that needs a Ready node (a scale-up
--    held by preflight checks, a rollout, v1beta1 status.ready, which KCP sets when readyReplicas > 0)
--    would deadlock the sync.
--  - Degraded only on real failure: failureReason/failureMessage (v1beta1 contract; kept under
--    status.deprecated.v1beta1 in v1beta2) or a v1beta1 Ready condition False with severity Error.
--    ControlPlaneComponentsHealthy and EtcdClusterHealthy are not read: they turn False with severity Error
--    while a new member joins (kubernetes-sigs/cluster-api#4057).
-- A pivoted shadow (DESIGN 7) is Healthy; a paused one that is not a shadow is Suspended. Argo CD reports an
-- object with a deletionTimestamp as Progressing "Pending deletion" before running any script
-- (gitops-engine pkg/health GetResourceHealth).
--
-- Runs without the Lua standard libraries (no useOpenLibs key): only the base library is used.

local KIND = "KubeadmControlPlane"
local V1BETA1 = "controlplane.cluster.x-k8s.io/v1beta1"

local function find(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

-- A condition's message, else its reason, else nil.
local function detail(c)
  if c == nil then
    return nil
  end
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return nil
end

local function withDetail(text, more)
  if more == nil or more == "" then
    return text
  end
  return text .. ": " .. more
end

local function nonEmpty(s)
  return s ~= nil and s ~= ""
end

local metadata = obj.metadata or {}
local annotations = metadata.annotations or {}
local spec = obj.spec or {}

-- Lattice pivot (DESIGN 7): after the move the parent keeps the git-managed objects as paused, inert
-- shadows annotated with the cluster that now manages them.
local pivotedTo = annotations["lattice.dev/pivoted-to"]
if nonEmpty(pivotedTo) then
  return { status = "Healthy", message = "Pivoted to " .. pivotedTo .. ": managed by the cluster itself" }
end

-- CAPI pausing: the cluster.x-k8s.io/paused annotation on the object, or the owning Cluster's spec.paused,
-- which v1beta2 controllers report in a Paused condition.
if annotations["cluster.x-k8s.io/paused"] ~= nil then
  return { status = "Suspended", message = KIND .. " is paused (cluster.x-k8s.io/paused annotation)" }
end

local status = obj.status
if status == nil then
  return { status = "Progressing", message = "Waiting for the " .. KIND .. " controller to report status" }
end

-- v1beta1 keeps CAPI conditions (with severity) in status.conditions and the new metav1 conditions and
-- counters in status.v1beta2; v1beta2 has the metav1 conditions in status.conditions and the old ones, with
-- failureReason/failureMessage, in status.deprecated.v1beta1 (CAPI v1.11 "improve status" proposal).
local v1beta1 = obj.apiVersion == V1BETA1
local conditions = nil
local legacy = nil
local failureReason = nil
local failureMessage = nil
local upToDate = nil
if v1beta1 then
  legacy = status.conditions
  if status.v1beta2 ~= nil then
    conditions = status.v1beta2.conditions
  end
  failureReason = status.failureReason
  failureMessage = status.failureMessage
  upToDate = status.updatedReplicas
else
  conditions = status.conditions
  if status.deprecated ~= nil and status.deprecated.v1beta1 ~= nil then
    legacy = status.deprecated.v1beta1.conditions
    failureReason = status.deprecated.v1beta1.failureReason
    failureMessage = status.deprecated.v1beta1.failureMessage
  end
  upToDate = status.upToDateReplicas
end

local paused = find(conditions, "Paused")
if paused ~= nil and paused.status == "True" then
  return { status = "Suspended", message = withDetail(KIND .. " is paused", detail(paused)) }
end

if nonEmpty(failureReason) and nonEmpty(failureMessage) then
  return { status = "Degraded", message = failureReason .. ": " .. failureMessage }
end
if nonEmpty(failureMessage) then
  return { status = "Degraded", message = failureMessage }
end
if nonEmpty(failureReason) then
  return { status = "Degraded", message = failureReason }
end
local ready = find(legacy, "Ready")
if ready ~= nil and ready.status == "False" and ready.severity == "Error" then
  return { status = "Degraded", message = withDetail("Ready is False with severity Error", detail(ready)) }
end

-- kstatus: a status older than the spec says nothing about the spec.
if status.observedGeneration ~= nil and metadata.generation ~= nil and status.observedGeneration < metadata.generation then
  return { status = "Progressing", message = "Waiting for the " .. KIND .. " controller to observe generation " .. tostring(metadata.generation) }
end

local initialization = status.initialization or {}
local initialized = initialization.controlPlaneInitialized == true or status.initialized == true
if not initialized then
  local why = detail(find(conditions, "Initialized")) or detail(find(legacy, "Available"))
  return { status = "Progressing", message = withDetail("Waiting for the control plane to be initialized", why) }
end

local available = find(conditions, "Available")
if available ~= nil and available.status ~= "True" then
  return { status = "Progressing", message = withDetail("Control plane not available", detail(available)) }
end

local desired = spec.replicas or 1
local replicas = status.replicas or 0
local readyReplicas = status.readyReplicas or 0
if upToDate == nil then
  upToDate = replicas
end

-- A rollout surges above spec.replicas, so it is checked before a scale-down.
local work = nil
if upToDate < replicas then
  work = "rolling out: " .. tostring(upToDate) .. "/" .. tostring(desired) .. " replicas up to date"
elseif replicas > desired then
  work = "scaling down: " .. tostring(replicas) .. " replicas, " .. tostring(desired) .. " desired"
elseif replicas < desired then
  work = "scaling up: " .. tostring(replicas) .. "/" .. tostring(desired) .. " replicas"
elseif readyReplicas < replicas then
  work = "waiting for replicas: " .. tostring(readyReplicas) .. "/" .. tostring(replicas) .. " ready"
end

if work ~= nil and readyReplicas == 0 then
  return { status = "Healthy", message = "Control plane initialized; " .. work .. "; no replica can be Ready before the CNI is installed" }
end
if work ~= nil then
  return { status = "Progressing", message = "Control plane " .. work }
end
return { status = "Healthy", message = "Control plane available: " .. tostring(readyReplicas) .. "/" .. tostring(desired) .. " replicas ready" }
