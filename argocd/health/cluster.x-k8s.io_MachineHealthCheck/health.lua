-- Health of a Cluster API MachineHealthCheck, replacing Argo CD's built-in check for this kind.
--
-- The built-in check (argo-cd resource_customizations/cluster.x-k8s.io/MachineHealthCheck) reports Degraded
-- whenever currentHealthy differs from expectedMachines. CAPI counts a Machine as healthy only once it has a
-- Node (internal/controllers/machinehealthcheck: targets without a Node within nodeStartupTimeout are
-- neither healthy nor unhealthy), so every MachineHealthCheck of a pool that is still coming up would be
-- Degraded, and Degraded fails a multi-wave sync: the CNI wave (2), where the pools come up, could never
-- pass. Here Degraded means what it should: CAPI stopped remediating because too many Machines are
-- unhealthy (RemediationAllowed=False).
--  - annotated lattice.dev/pivoted-to: Healthy, the cluster manages itself (DESIGN 7);
--  - paused (cluster.x-k8s.io/paused annotation): Suspended;
--  - no status yet: Progressing;
--  - RemediationAllowed=False (v1beta2 status.conditions, v1beta1 status.conditions or
--    status.deprecated.v1beta1.conditions): Degraded with the condition's message;
--  - every expected Machine healthy: Healthy; otherwise Progressing "<n>/<m> machines healthy".
--
-- Runs without the Lua standard libraries (no useOpenLibs key): only the base library is used.

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

local metadata = obj.metadata or {}
local annotations = metadata.annotations or {}

if annotations["lattice.dev/pivoted-to"] ~= nil then
  return { status = "Healthy", message = "Pivoted to " .. annotations["lattice.dev/pivoted-to"] .. ": managed by the cluster itself" }
end
if annotations["cluster.x-k8s.io/paused"] ~= nil then
  return { status = "Suspended", message = "MachineHealthCheck is paused" }
end

local status = obj.status
if status == nil or status.currentHealthy == nil then
  return { status = "Progressing", message = "Waiting for the MachineHealthCheck to assess its Machines" }
end

local remediation = find(status.conditions, "RemediationAllowed")
if remediation == nil and status.deprecated ~= nil and status.deprecated.v1beta1 ~= nil then
  remediation = find(status.deprecated.v1beta1.conditions, "RemediationAllowed")
end
if remediation ~= nil and remediation.status == "False" then
  -- CAPI's message already says why ("Remediation is not allowed, the number of ... exceeds ...").
  if remediation.message ~= nil and remediation.message ~= "" then
    return { status = "Degraded", message = remediation.message }
  end
  return { status = "Degraded", message = "Remediation is not allowed: " .. (remediation.reason or "too many unhealthy Machines") }
end

local expected = status.expectedMachines or 0
local healthy = status.currentHealthy
local counts = tostring(healthy) .. "/" .. tostring(expected) .. " machines healthy"
if healthy >= expected then
  return { status = "Healthy", message = counts }
end
return { status = "Progressing", message = counts }
