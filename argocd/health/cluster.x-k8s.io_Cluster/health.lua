-- Health of a Cluster API Cluster (cluster.x-k8s.io, v1beta1 and v1beta2 status shapes) for Lattice's
-- sync waves (DESIGN 4, 4.1).
--
-- The Cluster is applied in the infrastructure wave. What the next wave (the CNI, then the workers) needs
-- is a reachable API server, so the Cluster is Healthy once its control plane is initialized, not once it
-- is Ready/Available: nodes cannot turn Ready before the CNI exists, and waiting for that would deadlock.
-- Upstream's check (argo-cd resource_customizations/cluster.x-k8s.io/Cluster) waits for phase Provisioned,
-- which CAPI sets before the API server is up, and in Argo CD <= 3.5.1 reports Degraded for any Ready=False,
-- even severity Info during provisioning, which fails a multi-wave sync.
--
-- Order: pivoted shadow (Healthy) > paused (Suspended) > real failure (Degraded) > control plane
-- initialized (Healthy) > Progressing. Argo CD reports an object with a deletionTimestamp as Progressing
-- "Pending deletion" before running any script (gitops-engine pkg/health GetResourceHealth).
--
-- Runs without the Lua standard libraries (no useOpenLibs key): only the base library is used.

local V1BETA1 = "cluster.x-k8s.io/v1beta1"

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

local function isTrue(conditions, conditionType)
  local c = find(conditions, conditionType)
  return c ~= nil and c.status == "True"
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
local status = obj.status or {}

-- Lattice pivot (DESIGN 7): after the move the parent keeps the git-managed objects as paused, inert
-- shadows annotated with the cluster that now manages them.
local pivotedTo = annotations["lattice.dev/pivoted-to"]
if nonEmpty(pivotedTo) then
  return { status = "Healthy", message = "Pivoted to " .. pivotedTo .. ": managed by the cluster itself" }
end

-- CAPI pausing (cluster.x-k8s.io book, "Pausing"): spec.paused, a bool in v1beta1 and v1beta2, or the
-- cluster.x-k8s.io/paused annotation, whose presence alone pauses.
if spec.paused == true then
  return { status = "Suspended", message = "Cluster is paused (spec.paused)" }
end
if annotations["cluster.x-k8s.io/paused"] ~= nil then
  return { status = "Suspended", message = "Cluster is paused (cluster.x-k8s.io/paused annotation)" }
end

-- v1beta1 keeps CAPI conditions (with severity) in status.conditions and the new metav1 conditions in
-- status.v1beta2.conditions; v1beta2 has the metav1 conditions in status.conditions and the old ones, with
-- failureReason/failureMessage, in status.deprecated.v1beta1 (CAPI v1.11 "improve status" proposal).
local conditions = nil
local legacy = nil
local failureReason = nil
local failureMessage = nil
if obj.apiVersion == V1BETA1 then
  legacy = status.conditions
  if status.v1beta2 ~= nil then
    conditions = status.v1beta2.conditions
  end
  failureReason = status.failureReason
  failureMessage = status.failureMessage
else
  conditions = status.conditions
  if status.deprecated ~= nil and status.deprecated.v1beta1 ~= nil then
    legacy = status.deprecated.v1beta1.conditions
    failureReason = status.deprecated.v1beta1.failureReason
    failureMessage = status.deprecated.v1beta1.failureMessage
  end
end

-- Real failures only. failureReason/failureMessage are CAPI's terminal errors (v1beta1 contract). A
-- v1beta1 condition False with severity Error is an error by CAPI's definition; Info and Warning are
-- normal while provisioning. Ready summarizes the other conditions with their worst severity.
if nonEmpty(failureReason) and nonEmpty(failureMessage) then
  return { status = "Degraded", message = failureReason .. ": " .. failureMessage }
end
if nonEmpty(failureMessage) then
  return { status = "Degraded", message = failureMessage }
end
if nonEmpty(failureReason) then
  return { status = "Degraded", message = failureReason }
end
if status.phase == "Failed" then
  return { status = "Degraded", message = "Cluster phase is Failed" }
end
local ready = find(legacy, "Ready")
if ready ~= nil and ready.status == "False" and ready.severity == "Error" then
  return { status = "Degraded", message = withDetail("Ready is False with severity Error", detail(ready)) }
end

local initialization = status.initialization or {}
local initialized = initialization.controlPlaneInitialized == true or status.controlPlaneReady == true
  or isTrue(conditions, "ControlPlaneInitialized") or isTrue(legacy, "ControlPlaneInitialized")
if initialized then
  if isTrue(conditions, "Available") then
    return { status = "Healthy", message = "Cluster is available" }
  end
  if isTrue(legacy, "Ready") then
    return { status = "Healthy", message = "Cluster is ready" }
  end
  if nonEmpty(status.phase) then
    return { status = "Healthy", message = "Control plane initialized (phase " .. status.phase .. ")" }
  end
  return { status = "Healthy", message = "Control plane initialized" }
end

local infrastructureReady = initialization.infrastructureProvisioned == true or status.infrastructureReady == true
  or isTrue(conditions, "InfrastructureReady") or isTrue(legacy, "InfrastructureReady")
if not infrastructureReady then
  local why = detail(find(conditions, "InfrastructureReady")) or detail(find(legacy, "InfrastructureReady"))
  return { status = "Progressing", message = withDetail("Waiting for the infrastructure to be provisioned", why) }
end
local why = detail(find(conditions, "ControlPlaneInitialized")) or detail(find(legacy, "ControlPlaneInitialized"))
return { status = "Progressing", message = withDetail("Waiting for the control plane to be initialized", why) }
