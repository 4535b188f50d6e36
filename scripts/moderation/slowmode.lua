-- slowmode.lua: at most one message per user per `interval` seconds in the covered rooms.
--
-- Options:
--   interval = 5               seconds between two messages of one user in one room (0.1 .. 86400)
--   rooms    = "*"             room globs (blank-separated)
--   exempt   = "alice bob"     user ids never slowed (moderators, bots)
local interval_ms = math.floor(parley.option_number("interval", 5, 0.1, 86400) * 1000)
local exempt = {}
for _, u in ipairs(parley.option_list("exempt", "")) do exempt[u] = true end
local rooms = parley.option_globs("rooms", "*")
local function covers(room) return parley.match(rooms, room) end

local last, count = {}, 0 -- "room\0user" -> ms of the last accepted message

local function prune(now)
  local n = 0
  for k, t in pairs(last) do
    if now - t >= interval_ms then last[k] = nil else n = n + 1 end
  end
  count = n
end

parley.hook("on_message", function(e)
  if exempt[e.user] or not covers(e.room) then return nil end
  local now = parley.now()
  local key = e.room .. "\0" .. e.user
  local prev = last[key]
  if prev and now - prev < interval_ms then
    return false, ("slow mode: wait %.1f s"):format((interval_ms - (now - prev)) / 1000)
  end
  if not prev then
    count = count + 1
    if count > 10000 then prune(now) end
  end
  last[key] = now
  return nil
end)
