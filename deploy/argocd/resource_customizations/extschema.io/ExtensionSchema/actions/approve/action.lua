-- Approve exactly the plans the operator is waiting for. One database (targetRef or none):
-- spec.approvedPlanHash := status.pendingPlan.hash. spec.targetSelector: every distinct hash of
-- status.targets[].pendingPlan (one per base: targets at the same base share it) is added to
-- spec.approvedPlanHashes, keeping the hashes already there (they may approve targets of a later wave).
-- The operator applies a plan only while its hash still matches; a newer plan needs a new approval.
-- (With self-heal on, commit the same approvals to Git, or Argo CD reverts the change.)
local MAX_HASHES = 64 -- the CRD's maxItems of spec.approvedPlanHashes
if obj.status == nil then
  return obj
end
if obj.spec.targetSelector == nil then
  if obj.status.pendingPlan ~= nil and obj.status.pendingPlan.hash ~= nil then
    obj.spec.approvedPlanHash = obj.status.pendingPlan.hash
  end
  return obj
end
local pending, seen = {}, {}
local function add(hash)
  if hash ~= nil and not seen[hash] then
    seen[hash] = true
    table.insert(pending, hash)
  end
end
for _, t in ipairs(obj.status.targets or {}) do
  if t.pendingPlan ~= nil then
    add(t.pendingPlan.hash)
  end
end
if obj.status.pendingPlan ~= nil then
  add(obj.status.pendingPlan.hash)
end
if #pending == 0 then
  return obj
end
local hashes, listed = {}, {}
for _, h in ipairs(obj.spec.approvedPlanHashes or {}) do
  if not listed[h] then
    listed[h] = true
    table.insert(hashes, h)
  end
end
for _, h in ipairs(pending) do
  if not listed[h] then
    listed[h] = true
    table.insert(hashes, h)
  end
end
-- Over the bound: the oldest approvals that no target waits with make room (their plans ran or changed).
while #hashes > MAX_HASHES do
  local dropped = false
  for i, h in ipairs(hashes) do
    if not seen[h] then
      table.remove(hashes, i)
      dropped = true
      break
    end
  end
  if not dropped then
    break
  end
end
obj.spec.approvedPlanHashes = hashes
return obj
