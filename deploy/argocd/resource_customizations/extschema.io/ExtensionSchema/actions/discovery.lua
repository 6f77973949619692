-- The actions Argo CD offers on an ExtensionSchema: 'approve' only while a plan waits for approval
-- (status.pendingPlan, or with spec.targetSelector any status.targets[].pendingPlan).
local actions = {}
local pending = obj.status ~= nil and obj.status.pendingPlan ~= nil and obj.status.pendingPlan.hash ~= nil
if obj.status ~= nil and obj.status.targets ~= nil then
  for _, t in ipairs(obj.status.targets) do
    if t.pendingPlan ~= nil and t.pendingPlan.hash ~= nil then
      pending = true
    end
  end
end
actions["approve"] = {["disabled"] = not pending}
return actions
