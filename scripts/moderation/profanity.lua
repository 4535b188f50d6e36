-- profanity.lua: reject or mask messages that contain a listed word.
--
-- Options (conf.d, scripts.<name>.<option>):
--   words   = "darn heck ..."   words, separated by blanks or commas, matched as whole words, ASCII case-
--                               insensitively (a word: letters, digits, non-ASCII; see parley.wordset)
--   mode    = reject | mask     reject the send, or replace each banned word by '*' of the same length
--   rooms   = "*"               room globs (blank-separated) the filter covers; "*" = every room
--   field   = text              for object bodies, the string field that is checked ({"text": "..."})
--   reason  = "..."             text of the error the sender gets in reject mode
-- parley.wordset matches whole words in C: linear in the message, no garbage per message.
local words = parley.wordset(parley.option_list("words", ""))
local nwords = #words
local mode = parley.option_string("mode", "reject")
if mode ~= "reject" and mode ~= "mask" then
  parley.log("warn", "mode must be reject or mask, not '" .. mode .. "'; using reject")
  mode = "reject"
end
local field = parley.option_string("field", "text")
local reason = parley.option_string("reason", "message contains a banned word")

-- Room globs, matched as conf.d matches rooms.<glob> keys.
local rooms = parley.option_globs("rooms", "*")
local function covers(room) return parley.match(rooms, room) end

local function has_banned(text)
  return words:find(text) ~= nil
end

local function mask(text)
  return (words:mask(text, "*"))
end

parley.hook("on_message", function(e)
  if not covers(e.room) then return nil end
  local body = e.body
  local text = body
  if type(body) == "table" then text = body[field] end
  if type(text) ~= "string" or not has_banned(text) then return nil end
  if mode == "reject" then return false, reason end
  if type(body) == "string" then return mask(body) end
  body[field] = mask(text)
  return { body = body }
end)

parley.log("info", ("%d words, mode %s"):format(nwords, mode))
