-- links.lua: limit links per message.
--
-- Options:
--   max_links = 1              links allowed in one message (0: none)
--   allow     = "example.com"  hosts (and their subdomains) that do not count
--   rooms     = "*"            room globs (blank-separated)
--   field     = text           for object bodies, the string field that is checked
local max_links = math.floor(parley.option_number("max_links", 1, 0, 1000))
local field = parley.option_string("field", "text")
local allow = {}
for _, h in ipairs(parley.option_list("allow", "")) do allow[h:lower()] = true end
local rooms = parley.option_globs("rooms", "*")
local function covers(room) return parley.match(rooms, room) end

local function allowed(host)
  host = host:lower()
  while host do
    if allow[host] then return true end
    local dot = host:find(".", 1, true)
    host = dot and host:sub(dot + 1) or nil
  end
  return false
end

local function count_links(text)
  local n = 0
  -- scheme links and bare www. hosts
  for host in text:gmatch("[Hh][Tt][Tt][Pp][Ss]?://([%w%.%-]+)") do
    if not allowed(host) then n = n + 1 end
  end
  for host in text:gmatch("[Ww][Ww][Ww]%.[%w%.%-]+") do
    local before = text:find(host, 1, true)
    local scheme = before and before > 3 and text:sub(before - 3, before - 1) == "://"
    if not scheme and not allowed(host) then n = n + 1 end
  end
  return n
end

parley.hook("on_message", function(e)
  if not covers(e.room) then return nil end
  local text = e.body
  if type(text) == "table" then text = text[field] end
  if type(text) ~= "string" then return nil end
  local n = count_links(text)
  if n > max_links then
    if max_links == 0 then return false, "links are not allowed here" end
    return false, ("too many links (%d, at most %d)"):format(n, max_links)
  end
  return nil
end)
