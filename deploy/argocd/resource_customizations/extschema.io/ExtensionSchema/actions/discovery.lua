-- The actions Argo CD offers on an ExtensionSchema: 'approve' only while a plan waits for approval.
local actions = {}
local pending = obj.status ~= nil and obj.status.pendingPlan ~= nil and obj.status.pendingPlan.hash ~= nil
actions["approve"] = {["disabled"] = not pending}
return actions
