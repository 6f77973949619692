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
-- With spec.targetSelector (many databases): status.rollout.phase Paused is Degraded (where it paused);
-- targets waiting for approval are Progressing with each distinct plan hash and its targets; a running
-- rollout is Progressing with status.targetsReady; Healthy names the targets ready.
local hs = {}
local MAX_NAMED = 5 -- targets named per waiting plan; more are counted

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

local fleet = obj.spec ~= nil and obj.spec.targetSelector ~= nil
local rollout = obj.status.rollout
local targetsReady = obj.status.targetsReady

if fleet and rollout ~= nil and rollout.phase == "Paused" then
  hs.status = "Degraded"
  hs.message = "Rollout paused"
  if rollout.pausedAt ~= nil then
    hs.message = hs.message .. " at target " .. rollout.pausedAt
  end
  if rollout.message ~= nil and rollout.message ~= "" then
    hs.message = hs.message .. ": " .. rollout.message
  end
  if targetsReady ~= nil then
    hs.message = hs.message .. " (targets ready: " .. targetsReady .. ")"
  end
  hs.message = hs.message .. "; fix it, then set the annotation extschema.io/resume to a new value"
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
  if fleet and targetsReady ~= nil then
    hs.message = hs.message .. " (targets ready: " .. targetsReady .. ")"
  end
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

-- The plans targets wait with, one per distinct hash (targets at the same base share it), in order.
local function waiting()
  local plans, byHash = {}, {}
  for _, t in ipairs(obj.status.targets or {}) do
    local plan = t.pendingPlan
    if plan ~= nil and plan.hash ~= nil then
      local entry = byHash[plan.hash]
      if entry == nil then
        entry = {hash = plan.hash, summary = plan.summary, targets = {}}
        byHash[plan.hash] = entry
        table.insert(plans, entry)
      end
      table.insert(entry.targets, t.name)
    end
  end
  return plans
end

if fleet then
  local plans = waiting()
  if #plans > 0 then
    local parts = {}
    for _, p in ipairs(plans) do
      local text = p.hash
      -- The summary carries one target's data counts: shown only when the plan is that one target's.
      if p.summary ~= nil and #p.targets == 1 then
        text = text .. " (" .. p.summary .. ")"
      end
      local names = {}
      for i, name in ipairs(p.targets) do
        if i > MAX_NAMED then
          table.insert(names, "and " .. tostring(#p.targets - MAX_NAMED) .. " more")
          break
        end
        table.insert(names, name)
      end
      table.insert(parts, text .. " on " .. table.concat(names, ", "))
    end
    hs.status = "Progressing"
    hs.message = "Waiting for approval of plan " .. table.concat(parts, "; plan ")
    if targetsReady ~= nil then
      hs.message = hs.message .. " (targets ready: " .. targetsReady .. ")"
    end
    local them = "the hash"
    if #plans > 1 then
      them = "the hashes"
    end
    hs.message = hs.message .. ": run the action 'approve' or add " .. them .. " to spec.approvedPlanHashes"
    return hs
  end
  if rollout ~= nil and rollout.phase == "Progressing" then
    hs.status = "Progressing"
    hs.message = "Rolling out"
    if targetsReady ~= nil then
      hs.message = hs.message .. " (targets ready: " .. targetsReady .. ")"
    end
    if rollout.message ~= nil and rollout.message ~= "" then
      hs.message = hs.message .. ": " .. rollout.message
    end
    return hs
  end
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
