-- Health of a LatticeCluster (lattice.dev/v1alpha1), the spec object of the cluster stage (wave 0).
--
-- The spec object is healthy when the Lattice controller has accepted it and it is not failing, not when
-- the cluster is up: the cluster's progress shows on the CAPI Cluster and the addon Applications of the
-- later waves, and waiting here for the whole cluster would deadlock the sync. Waiting for acceptance is
-- deliberate: the controller copies the InfraProvider credentials into capi-<name> before CAPI needs them
-- in wave 1 (DESIGN 3, 5).
--  - no status, or status.observedGeneration behind metadata.generation: Progressing (kstatus);
--  - phase Failed, or condition Stalled=True: Degraded;
--  - phases Deleting and Unpivoting: Progressing;
--  - phases Pending, Provisioning, Pivoting, Pivoted, Ready: Healthy.
-- Messages are "<phase>: <detail>", the detail being status.message, else the Ready condition's message.
-- Argo CD reports an object with a deletionTimestamp as Progressing "Pending deletion" before running any
-- script (gitops-engine pkg/health GetResourceHealth).
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

local function nonEmpty(s)
  return s ~= nil and s ~= ""
end

local metadata = obj.metadata or {}
local status = obj.status
local generation = metadata.generation

if status == nil or status.observedGeneration == nil
  or (generation ~= nil and status.observedGeneration < generation) then
  if generation == nil then
    return { status = "Progressing", message = "Waiting for the Lattice controller to observe the spec" }
  end
  return { status = "Progressing", message = "Waiting for the Lattice controller to observe generation " .. tostring(generation) }
end

local phase = status.phase
local ready = find(status.conditions, "Ready")
local stalled = find(status.conditions, "Stalled")

local function say(text)
  if nonEmpty(phase) and nonEmpty(text) then
    return phase .. ": " .. text
  end
  if nonEmpty(phase) then
    return phase
  end
  return text or ""
end

local summary = nil
if nonEmpty(status.message) then
  summary = status.message
elseif ready ~= nil and nonEmpty(ready.message) then
  summary = ready.message
end

-- kstatus: Stalled=True means the controller cannot make progress without a change to the spec.
if stalled ~= nil and stalled.status == "True" then
  local why = stalled.message
  if not nonEmpty(why) then
    why = stalled.reason
  end
  if not nonEmpty(why) then
    why = summary
  end
  return { status = "Degraded", message = say(why) }
end
if phase == "Failed" then
  return { status = "Degraded", message = say(summary) }
end

if not nonEmpty(phase) then
  return { status = "Progressing", message = "Waiting for the Lattice controller to report a phase" }
end
if phase == "Deleting" or phase == "Unpivoting" then
  return { status = "Progressing", message = say(summary) }
end
if phase == "Pending" or phase == "Provisioning" or phase == "Pivoting" or phase == "Pivoted" or phase == "Ready" then
  return { status = "Healthy", message = say(summary) }
end
return { status = "Progressing", message = say("phase unknown to this health check") }
