-- greeter.lua: a complete script. Rejects banned words, trims long messages, welcomes joiners.
local banned = parley.wordset(parley.option_list("banned", ""))
local max_len = parley.option_number("max_len", 1000, 10, 100000)

parley.hook("on_message", function(e)
  local text = type(e.body) == "table" and e.body.text or e.body
  if type(text) ~= "string" then return nil end           -- not ours: pass
  if banned:find(text) then return false, "watch your language" end
  if #text > max_len then
    if type(e.body) == "table" then
      e.body.text = text:sub(1, max_len)
      return { body = e.body }                             -- rewrite an object body
    end
    return text:sub(1, max_len)                            -- rewrite a string body
  end
  return nil
end)

parley.hook("on_join", function(e)
  local n = parley.kv.incr("joins:" .. e.room)
  if n == 1 then parley.publish(e.room, { text = "first visitor: " .. e.name }) end
end, 10)

parley.timer(60000, function()
  parley.log("info", "joins so far: " .. #parley.kv.keys("joins:") .. " rooms")
  return 60000                                             -- run again in a minute
end)
