-- mute.lua: a mute list kept in parley.kv (it survives script reloads), managed by message commands.
--
-- A moderator sends a message "/mute <user> [minutes]" or "/unmute <user>" in any room; the command is not
-- delivered (the moderator gets it back as the error reason, e.g. "muted bob for 10 min"). A muted user's
-- messages and typing are refused with "you are muted" until the time is up (0 minutes: until unmuted).
--
-- Options:
--   moderators = "alice carol"   user ids allowed to mute and unmute
--   minutes    = 10              default duration of /mute (0: until /unmute)
--   field      = text            for object bodies, the string field holding the command
local moderators = {}
for _, u in ipairs(parley.option_list("moderators", "")) do moderators[u] = true end
local default_minutes = parley.option_number("minutes", 10, 0, 525600)
local field = parley.option_string("field", "text")
local kv = parley.kv

local function muted(user)
  local until_ms = kv.get("muted:" .. user)
  if until_ms == nil then return false end
  if until_ms ~= 0 and parley.now() >= until_ms then
    kv.del("muted:" .. user)
    return false
  end
  return true
end

local function command(user, text)
  if not moderators[user] or text:sub(1, 1) ~= "/" then return nil end
  local parts = {}
  for w in text:gmatch("%S+") do -- simple patterns only: see "Pattern budget" in docs/hooks.md
    parts[#parts + 1] = w
    if #parts > 3 then return nil end
  end
  local cmd, target, minutes = parts[1]:sub(2), parts[2], parts[3]
  if not target then return nil end
  if cmd == "mute" then
    local m = tonumber(minutes) or default_minutes
    kv.set("muted:" .. target, m > 0 and parley.now() + math.floor(m * 60000) or 0)
    parley.log("info", user .. " muted " .. target)
    return m > 0 and ("muted %s for %d min"):format(target, m) or ("muted %s"):format(target)
  elseif cmd == "unmute" then
    kv.del("muted:" .. target)
    parley.log("info", user .. " unmuted " .. target)
    return "unmuted " .. target
  end
  return nil
end

parley.hook("on_message", function(e)
  local text = e.body
  if type(text) == "table" then text = text[field] end
  if type(text) == "string" then
    local reply = command(e.user, text)
    if reply then return false, reply end
  end
  if muted(e.user) then return false, "you are muted" end
  return nil
end, 100) -- before other filters: a muted user's message needs no further checks

parley.hook("on_typing", function(e)
  if muted(e.user) then return false, "you are muted" end
  return nil
end)
