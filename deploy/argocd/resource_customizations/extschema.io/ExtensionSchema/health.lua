-- Argo CD health of an extschema.io ExtensionSchema, from the operator's kstatus conditions
-- (Ready always; Reconciling and Stalled only while True; reasons in docs/conditions.md).
--   Healthy      Ready=True for the current generation (status.observedGeneration == metadata.generation);
--                drift (InSync=False) is named in the message, it does not make the resource unhealthy
--   Progressing  everything that proceeds by itself: a new generation not yet observed, Reconciling=True
--                (applying, DependencyNotReady, ApprovalRequired, TargetNotFound, DatabaseUnavailable...),
--                and deletion while the finalizer runs (the finalizer is named)
--   Suspended    spec.suspend (reason Suspended)
--   Degraded     only Stalled=True: a failure a person must fix (Argo CD fails a sync on Degraded, so a
--                wait that heals by itself is never Degraded)
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c == nil then
    return ""
  end
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local ready = condition("Ready")

if obj.metadata.deletionTimestamp ~= nil then
  local finalizers = {}
  for _, f in ipairs(obj.metadata.finalizers or {}) do
    table.insert(finalizers, f)
  end
  hs.status = "Progressing"
  if #finalizers > 0 then
    hs.message = "Deleting: waiting for finalizer " .. table.concat(finalizers, ", ")
  else
    hs.message = "Deleting"
  end
  if ready ~= nil and ready.reason ~= nil then
    hs.message = hs.message .. " (" .. describe(ready) .. ")"
  end
  return hs
end

if obj.status == nil or ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the extschema operator to reconcile"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready.status == "True" then
  if ready.observedGeneration ~= nil and generation ~= nil and ready.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
    return hs
  end
  hs.status = "Healthy"
  hs.message = describe(ready)
  -- Drift (changed outside extschema) is reported, not a failure: the schema is applied and works.
  local inSync = condition("InSync")
  if inSync ~= nil and inSync.status == "False" then
    hs.message = hs.message .. "; not in sync with the database: " .. describe(inSync)
  end
  return hs
end

if ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready)
  return hs
end

if ready.reason == "ApprovalRequired" and obj.status.pendingPlan ~= nil and obj.status.pendingPlan.hash ~= nil then
  local plan = obj.status.pendingPlan
  hs.status = "Progressing"
  hs.message = "Waiting for approval of plan " .. plan.hash
  if plan.summary ~= nil then
    hs.message = hs.message .. " (" .. plan.summary .. ")"
  end
  hs.message = hs.message .. ": run the action 'approve' or set spec.approvedPlanHash"
  return hs
end

hs.status = "Progressing"
hs.message = describe(condition("Reconciling") or ready)
return hs
