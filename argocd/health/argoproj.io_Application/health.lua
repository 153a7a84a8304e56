-- Health of an Argo CD Application, so that an app-of-apps waits for its child Applications wave by wave.
-- Argo CD stopped assessing Application health in 1.8 (argoproj/argo-cd#3781); without a check a wave of
-- Applications does not wait at all. This is the script documented at
-- https://argo-cd.readthedocs.io/en/stable/operator-manual/health/#argocd-app (status.health.status and
-- message, Progressing until the child reports health), made nil-safe: a health block without a status
-- stays Progressing instead of becoming Unknown "invalid health status".
--
-- Runs without the Lua standard libraries (no useOpenLibs key): only the base library is used.

local hs = { status = "Progressing", message = "Waiting for the Application controller to assess health" }

local health = nil
if obj.status ~= nil then
  health = obj.status.health
end

if health ~= nil and health.status ~= nil then
  hs.status = health.status
  hs.message = ""
  if health.message ~= nil then
    hs.message = health.message
  end
end

return hs
