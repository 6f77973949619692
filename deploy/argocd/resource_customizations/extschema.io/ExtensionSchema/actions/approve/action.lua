-- Approve exactly the plan the operator is waiting for: spec.approvedPlanHash := status.pendingPlan.hash.
-- The operator applies the plan only while its hash still matches; a newer plan needs a new approval.
-- (With self-heal on, commit the same spec.approvedPlanHash to Git, or Argo CD reverts the change.)
if obj.status ~= nil and obj.status.pendingPlan ~= nil and obj.status.pendingPlan.hash ~= nil then
  obj.spec.approvedPlanHash = obj.status.pendingPlan.hash
end
return obj
