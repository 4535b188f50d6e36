"""Hooks over the real parleyd: Lua scripts and C plugins at every hook point, priorities, fail policies,
the Lua sandbox, hot reload (SIGHUP and the admin endpoint), the plugin ABI checks, and the shipped
moderation scripts and msgpolicy plugin (docs/hooks.md, scripts/moderation/README.md,
plugins/msgpolicy/README.md; issue 6 "Acceptance")."""

import os
import subprocess
import threading
import time

import pytest

from conftest import JWT_SECRET, PARLEY_BIN, REPO_ROOT
from jwtmint import mint
from support_auth import (http_request, log_lines, metric, q, sighup, start_with_conf, wait_for, wait_log,
                          write_extra)
from wsclient import Client, ConnectionClosed, Timeout, ok

BUILD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(PARLEY_BIN)))
TEST_PLUGIN_DIR = os.path.join(BUILD_DIR, "tests", "plugins")
MSGPOLICY_SO = os.path.join(BUILD_DIR, "plugins", "msgpolicy", "msgpolicy.so")
MODERATION = os.path.join(REPO_ROOT, "scripts", "moderation")
REFUSED = "refused: a server hook failed"


def plugin_path(name):
    return os.path.join(TEST_PLUGIN_DIR, name + ".so")


@pytest.fixture(scope="session")
def hookall_so(tmp_path_factory):
    """tests/plugins/hookall.c as built by CMake; built here with cc when the build dir predates it."""
    p = plugin_path("hookall")
    if os.path.exists(p):
        return p
    out = str(tmp_path_factory.mktemp("plugin") / "hookall.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-fvisibility=hidden",
                    "-I", os.path.join(REPO_ROOT, "include"),
                    os.path.join(REPO_ROOT, "tests", "plugins", "hookall.c"), "-o", out],
                   check=True, timeout=60)
    return out


# The Lua twin of tests/plugins/hookall.c: one handler per hook point, decision from the options.
HOOKALL_LUA = r'''
local points = {"on_connect", "on_auth", "on_join", "on_message", "on_typing",
                "on_leave", "on_disconnect", "on_offline"}
local notification = {on_leave = true, on_disconnect = true, on_offline = true}
local reason = parley.option_string("reason", "rejected by " .. parley.name)
local rewrite = parley.option_string("rewrite", '"rewritten"')
local log_room = parley.option_string("log_room", "")
for _, p in ipairs(points) do
  local mode = parley.option_string(p, "pass")
  parley.hook(p, function(e)
    if notification[p] then
      if log_room ~= "" then
        parley.publish(log_room, {hook = p, by = parley.name, user = e.user, room = e.room})
      end
      return nil
    end
    if log_room ~= "" and e.room == log_room then return nil end
    if mode == "allow" then return true
    elseif mode == "reject" then return false, reason
    elseif mode == "error" then error("deliberate failure in " .. p)
    elseif mode == "rewrite" then
      if p == "on_message" then return {body = parley.decode(rewrite)} end
      return {name = rewrite}
    end
    return nil
  end)
end
'''


@pytest.fixture
def hookall_lua(tmp_path):
    p = tmp_path / "hookall.lua"
    p.write_text(HOOKALL_LUA)
    return str(p)


@pytest.fixture
def handler_lines(hookall_lua, hookall_so):
    """handler_lines(kind, name, priority, **options) -> conf.d lines for one hookall handler."""
    def make(kind, name, priority=0, **options):
        if kind == "lua":
            sec, path = "scripts", hookall_lua
        else:
            sec, path = "plugins", hookall_so
            options.setdefault("name", name)
        lines = [f"{sec}.{name}.path = {q(path)}", f"{sec}.{name}.priority = {priority}"]
        lines += [f"{sec}.{name}.{k} = {q(v)}" for k, v in options.items()]
        return lines
    return make


def write_script(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def script_lines(name, path, priority=None, **options):
    lines = [f"scripts.{name}.path = {q(path)}"]
    if priority is not None:
        lines.append(f"scripts.{name}.priority = {priority}")
    lines += [f"scripts.{name}.{k} = {q(v)}" for k, v in options.items()]
    return lines


def connect(srv, codec="json", name=None):
    c = Client(srv.port, codec=codec, name=name)
    srv.clients.append(c)
    return c


def login(srv, sub, name=None, codec="json"):
    c = connect(srv, codec, name=sub)
    ok(c.hello(token=mint(JWT_SECRET, sub=sub, name=name or sub.title(), exp_in=600)))
    return c


def rejected(reply):
    assert "err" in reply, f"expected an error reply, got {reply}"
    assert reply["err"]["code"] == "rejected", reply
    return reply["err"]["msg"]


# ---- one action per decision point -------------------------------------------------------------------


def attempt(srv, point):
    """Do what `point` hooks and report what the client sees:
    ("ok", detail) | ("rejected", reason) | ("closed", (code, reason)) | ("dropped", None)."""
    if point == "on_connect":
        c = connect(srv, name="conn")
        try:
            code, reason = c.expect_close(timeout=0.4)
            return "closed", (code, reason)
        except Timeout:
            pass
        try:
            r = c.hello(token=mint(JWT_SECRET, sub="cuser", exp_in=600))
        except ConnectionClosed as e:
            return "closed", (e.code, e.reason)
        ok(r)
        return "ok", None
    if point == "on_auth":
        c = connect(srv, name="auth")
        r = c.hello(token=mint(JWT_SECRET, sub="auser", name="Auth User", exp_in=600))
        if "ok" in r:
            return "ok", r["ok"]["user"]
        return "rejected", rejected(r)
    if point == "on_join":
        c = login(srv, "juser")
        r = c.join("hk-room")
        if "ok" in r:
            return "ok", None
        msg = rejected(r)
        ok(c.ping())  # the connection stays open
        return "rejected", msg
    if point == "on_message":
        sender, receiver = login(srv, "msender"), login(srv, "mreceiver", codec="msgpack")
        ok(sender.join("hk-room"))
        ok(receiver.join("hk-room"))
        r = sender.send("hk-room", "original body")
        if "ok" in r:
            seen = receiver.next_event("message", room="hk-room")["body"]
            assert sender.next_event("message", room="hk-room")["body"] == seen
            stored = [m["body"] for m in ok(receiver.request("history", room="hk-room"))["messages"]]
            assert stored == [seen], (stored, seen)
            return "ok", seen
        msg = rejected(r)
        receiver.no_event("message", room="hk-room", timeout=0.2)
        assert ok(receiver.request("history", room="hk-room"))["messages"] == []
        ok(sender.ping())
        return "rejected", msg
    if point == "on_typing":
        typist, watcher = login(srv, "tuser"), login(srv, "twatcher")
        ok(typist.join("hk-room"))
        ok(watcher.join("hk-room"))
        r = typist.request("typing", room="hk-room", active=True)
        assert "ok" in r or r["err"]["code"] == "rejected", r
        try:
            ev = watcher.next_event("typing", room="hk-room", timeout=1.0)
            assert [u["id"] for u in ev["users"]] == ["tuser"], ev
            return "ok", None
        except Timeout:
            return "dropped", None
    raise AssertionError(point)


def expect_rejected(outcome, point, reason):
    kind, detail = outcome
    if point == "on_connect":
        assert outcome == ("closed", (1008, reason)), outcome
    elif point == "on_typing":
        assert kind == "dropped", outcome
    else:
        assert outcome == ("rejected", reason), outcome


DECISION_POINTS = ["on_connect", "on_auth", "on_join", "on_message", "on_typing"]
KINDS = ["lua", "c"]


@pytest.mark.parametrize("point", DECISION_POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_allow_decides_and_stops_the_chain(server_factory, handler_lines, kind, point):
    # "allow" at the higher priority wins over a lower "reject": the chain stops at the first decision.
    lines = (handler_lines(kind, "hi", 10, **{point: "allow"}) +
             handler_lines(kind, "lo", 5, **{point: "reject", "reason": "lo says no"}))
    srv = start_with_conf(server_factory, lines)
    kind_, _ = attempt(srv, point)
    assert kind_ == "ok"


@pytest.mark.parametrize("point", DECISION_POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_reject_with_reason(server_factory, handler_lines, kind, point):
    srv = start_with_conf(server_factory, handler_lines(kind, "rj", 0, **{point: "reject",
                                                                         "reason": f"no {point} today"}))
    expect_rejected(attempt(srv, point), point, f"no {point} today")
    assert srv.alive()


@pytest.mark.parametrize("point", DECISION_POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_priority_order(server_factory, handler_lines, kind, point):
    # Two rejecting handlers: the higher effective priority decides (both ways round), and one that
    # allows at a lower priority is never asked.
    lines = (handler_lines(kind, "first", 7, **{point: "reject", "reason": "first decides"}) +
             handler_lines(kind, "second", 3, **{point: "reject", "reason": "second decides"}))
    srv = start_with_conf(server_factory, lines)
    expect_rejected(attempt(srv, point), point, "first decides")

    lines = (handler_lines(kind, "first", 3, **{point: "reject", "reason": "first decides"}) +
             handler_lines(kind, "second", 7, **{point: "reject", "reason": "second decides"}) +
             handler_lines(kind, "third", 5, **{point: "allow"}))
    srv = start_with_conf(server_factory, lines)
    expect_rejected(attempt(srv, point), point, "second decides")

    lines = (handler_lines(kind, "first", 3, **{point: "reject", "reason": "first decides"}) +
             handler_lines(kind, "third", 5, **{point: "allow"}))
    srv = start_with_conf(server_factory, lines)
    assert attempt(srv, point)[0] == "ok"


@pytest.mark.parametrize("point", DECISION_POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_fail_open_skips_the_failing_handler(server_factory, handler_lines, kind, point):
    lines = handler_lines(kind, "broken", 10, **{point: "error"}) + [f"hooks.{point}.fail = open"]
    srv = start_with_conf(server_factory, lines)
    assert attempt(srv, point)[0] == "ok"
    if point != "on_typing":
        # ... and the next handler is asked
        lines = (handler_lines(kind, "broken", 10, **{point: "error"}) +
                 handler_lines(kind, "next", 5, **{point: "reject", "reason": "next one decided"}) +
                 [f"hooks.{point}.fail = open"])
        srv = start_with_conf(server_factory, lines)
        expect_rejected(attempt(srv, point), point, "next one decided")


@pytest.mark.parametrize("point", DECISION_POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_fail_closed_refuses(server_factory, handler_lines, kind, point):
    lines = (handler_lines(kind, "broken", 10, **{point: "error"}) +
             handler_lines(kind, "next", 5, **{point: "allow"}) + [f"hooks.{point}.fail = closed"])
    srv = start_with_conf(server_factory, lines)
    expect_rejected(attempt(srv, point), point, REFUSED)
    if kind == "lua":
        wait_log(srv, "deliberate failure in " + point)
    assert srv.alive()


@pytest.mark.parametrize("kind", KINDS)
def test_on_auth_fail_policy_defaults_to_closed(server_factory, handler_lines, kind):
    srv = start_with_conf(server_factory, handler_lines(kind, "broken", 0, on_auth="error"))
    assert attempt(srv, "on_auth") == ("rejected", REFUSED)


@pytest.mark.parametrize("kind", KINDS)
def test_on_message_rewrite_is_seen_by_everyone_and_stored(server_factory, handler_lines, kind):
    lines = handler_lines(kind, "rw", 0, on_message="rewrite", rewrite='{"text": "[redacted]", "by": "hook"}')
    srv = start_with_conf(server_factory, lines)
    outcome = attempt(srv, "on_message")
    assert outcome == ("ok", {"text": "[redacted]", "by": "hook"})


@pytest.mark.parametrize("kind", KINDS)
def test_on_auth_rewrite_changes_the_display_name(server_factory, handler_lines, kind):
    srv = start_with_conf(server_factory, handler_lines(kind, "rn", 0, on_auth="rewrite", rewrite="Renamed One"))
    a = connect(srv, name="a")
    assert ok(a.hello(token=mint(JWT_SECRET, sub="ren", name="Original", exp_in=600)))["user"] == \
        {"id": "ren", "name": "Renamed One"}
    b = connect(srv, name="b")
    ok(b.hello(token=mint(JWT_SECRET, sub="other", name="Other", exp_in=600)))
    ok(b.join("rn-room"))
    ok(a.join("rn-room"))
    assert b.next_event("join", room="rn-room")["user"] == {"id": "ren", "name": "Renamed One"}
    ok(a.send("rn-room", "hi"))
    assert b.next_event("message", room="rn-room")["from"] == {"id": "ren", "name": "Renamed One"}


def test_lua_on_auth_can_rewrite_the_user_id(server_factory, tmp_path):
    path = write_script(tmp_path, "ids.lua", '''
parley.hook("on_auth", function(e)
  if e.user == "alias" then return {user = "real-user", name = "Real " .. e.name} end
end)
''')
    srv = start_with_conf(server_factory, script_lines("ids", path))
    c = connect(srv)
    assert ok(c.hello(token=mint(JWT_SECRET, sub="alias", name="A", exp_in=600)))["user"] == \
        {"id": "real-user", "name": "Real A"}


def test_lua_event_fields(server_factory, tmp_path):
    path = write_script(tmp_path, "fields.lua", '''
local function dump(e, keys)
  local t = {}
  for _, k in ipairs(keys) do t[k] = e[k] == nil and "<nil>" or tostring(e[k]) end
  return parley.encode(t)
end
parley.hook("on_join", function(e)
  if e.room == "fields-join" then return false, dump(e, {"hook", "user", "name", "room", "ip", "body"}) end
end)
parley.hook("on_message", function(e)
  if e.room == "fields-msg" then return false, dump(e, {"user", "name", "room", "ip", "body"}) end
end)
parley.hook("on_message", function(e)
  if e.room == "fields-conn" then return false, tostring(e.conn ~= nil) end
end)
''')
    import json
    srv = start_with_conf(server_factory, script_lines("fields", path))
    c = login(srv, "fuser", name="F User")
    got = json.loads(rejected(c.join("fields-join")))
    assert got.pop("hook") in ("on_join", "join")
    assert got == {"user": "fuser", "name": "F User", "room": "fields-join",
                   "ip": "127.0.0.1", "body": "<nil>"}
    ok(c.join("fields-msg"))
    got = json.loads(rejected(c.send("fields-msg", "plain text")))
    assert got == {"user": "fuser", "name": "F User", "room": "fields-msg", "ip": "127.0.0.1",
                   "body": "plain text"}
    ok(c.join("fields-conn"))
    assert rejected(c.send("fields-conn", 1)) == "true"


def test_handler_priority_adds_to_section_priority_and_mixes_lua_and_c(server_factory, tmp_path, hookall_so):
    # lua "a": section 0 + handler 50 = 50; plugin "p": 20; lua "b": section 30 + handler 0 = 30.
    a = write_script(tmp_path, "a.lua", 'parley.hook("on_message", function(e) '
                                        'if e.body == "x" then return false, "a at 50" end end, 50)\n')
    b = write_script(tmp_path, "b.lua", 'parley.hook("on_message", function(e) return false, "b at 30" end)\n')
    lines = (script_lines("a", a, 0) + script_lines("b", b, 30) +
             [f"plugins.p.path = {q(hookall_so)}", "plugins.p.priority = 20", "plugins.p.name = p",
              "plugins.p.on_message = reject", 'plugins.p.reason = "p at 20"'])
    srv = start_with_conf(server_factory, lines)
    c = login(srv, "prio")
    ok(c.join("prio-room"))
    assert rejected(c.send("prio-room", "x")) == "a at 50"
    assert rejected(c.send("prio-room", "y")) == "b at 30"
    # lower b below the plugin: live on SIGHUP
    write_extra(srv, script_lines("a", a, 0) + script_lines("b", b, 10) +
                [f"plugins.p.path = {q(hookall_so)}", "plugins.p.priority = 20", "plugins.p.name = p",
                 "plugins.p.on_message = reject", 'plugins.p.reason = "p at 20"'])
    sighup(srv)
    assert rejected(c.send("prio-room", "y")) == "p at 20"


# ---- notifications: on_leave, on_disconnect, on_offline ------------------------------------------------


def log_events(watcher, timeout=0.6):
    """Drain the log room; return its message bodies."""
    watcher.drain(timeout)
    out = []
    for e in list(watcher.events):
        if e.get("ev") == "message" and e.get("room") == "hooklog":
            out.append(e["body"])
            watcher.events.remove(e)
    return out


def count(bodies, hook, user):
    return sum(1 for b in bodies if b.get("hook") == hook and b.get("user") == user)


class HookLog:
    """What the notification handlers published into the log room, as seen by a watcher."""

    def __init__(self, watcher):
        self.watcher = watcher
        self.seen = []

    def pull(self, timeout):
        self.seen += log_events(self.watcher, timeout)

    def count(self, hook, user):
        return count(self.seen, hook, user)

    def wait(self, hook, user, n, timeout=4.0):
        """Wait (bounded) until `hook` was seen n times for user; then assert it is exactly n."""
        deadline = time.monotonic() + timeout
        while self.count(hook, user) < n and time.monotonic() < deadline:
            self.pull(0.05)
        assert self.count(hook, user) == n, (hook, user, n, self.seen)


@pytest.mark.parametrize("kind", KINDS)
def test_notifications_leave_disconnect_offline_exactly_once(server_factory, handler_lines, kind):
    srv = start_with_conf(server_factory, handler_lines(kind, "notes", 0, log_room="hooklog"),
                          {"session.resume_ttl": "1s"})
    watcher = login(srv, "watcher")
    ok(watcher.join("hooklog"))
    log = HookLog(watcher)

    # on_leave: the user leaves a room (nina2, her second tab, is in another room)
    nina1, nina2 = login(srv, "nina"), login(srv, "nina")
    ok(nina1.join("n-room"))
    ok(nina2.join("n-other"))
    ok(nina1.leave("n-room"))
    log.wait("on_leave", "nina", 1)
    assert [b.get("room") for b in log.seen if b.get("hook") == "on_leave"] == ["n-room"], log.seen

    # on_disconnect per connection; no on_offline while another tab is open
    nina1.close()
    log.wait("on_disconnect", "nina", 1)
    nina2.close(1000)   # ends the session at once: the user's last one
    log.wait("on_disconnect", "nina", 2)
    log.wait("on_offline", "nina", 1)

    # a dropped connection: offline after session.resume_ttl, once
    omar = login(srv, "omar")
    ok(omar.join("n-room"))
    omar.abort()
    # a dropped and resumed session never goes offline
    pia = login(srv, "pia")
    token = None
    for f in pia.log:
        if isinstance(f, dict) and "ok" in f and "resume_token" in f["ok"]:
            token = f["ok"]["resume_token"]
    pia.abort()
    pia2 = connect(srv, name="pia2")
    r = ok(pia2.hello(token=mint(JWT_SECRET, sub="pia", exp_in=600), resume=token))
    assert r["resumed"] is True
    log.wait("on_offline", "omar", 1, timeout=5)
    log.pull(0.3)
    assert log.count("on_offline", "pia") == 0, log.seen
    pia2.close(1000)
    log.wait("on_offline", "pia", 1)
    log.pull(1.2)   # longer than session.resume_ttl: no late duplicates
    for user in ("nina", "omar", "pia"):
        assert log.count("on_offline", user) == 1, (user, log.seen)
    assert log.count("on_offline", "watcher") == 0


# ---- the real test plugins ---------------------------------------------------------------------------


def test_good_test_plugin(server_factory):
    srv = start_with_conf(server_factory, [f"plugins.good.path = {q(plugin_path('good'))}",
                                           "plugins.good.deny = verboten", "plugins.good.delay_ms = 5"])
    wait_log(srv, "good plugin ready, deny=verboten")
    a, b = login(srv, "ga"), login(srv, "gb")
    for c in (a, b):
        ok(c.join("g-room"))
    assert rejected(a.send("g-room", "this is verboten")) == "plugin says no"
    ok(a.send("g-room", "shout"))
    assert b.next_event("message", room="g-room")["body"] == "SHOUT"
    assert [m["body"] for m in ok(b.request("history", room="g-room"))["messages"]] == ["SHOUT"]
    # on_auth rewrite of the display name; PARLEY_ERROR with on_auth's default fail policy (closed)
    c = connect(srv)
    assert ok(c.hello(token=mint(JWT_SECRET, sub="anon-user", name="anon", exp_in=600)))["user"]["name"] == "guest"
    c = connect(srv)
    assert rejected(c.hello(token=mint(JWT_SECRET, sub="brk", name="broken", exp_in=600))) == REFUSED
    # the timer published {"tick":1} into "timers" as the server
    wait_for(lambda: ok(a.request("history", room="timers"))["messages"], 3, what="the timer's message")
    assert ok(a.request("history", room="timers"))["messages"][0]["body"] == {"tick": 1}


def test_msgpolicy_plugin(server_factory):
    lines = [f"plugins.media.path = {q(MSGPOLICY_SO)}", 'plugins.media.rooms = "media-* lobby"',
             "plugins.media.max_bytes = 64", "plugins.media.require_string = true",
             'plugins.media.deny = "http://, <script"',
             f"plugins.chat.path = {q(MSGPOLICY_SO)}", 'plugins.chat.rooms = "chat-*"',
             "plugins.chat.max_bytes = 20"]
    srv = start_with_conf(server_factory, lines)
    a, b = login(srv, "mpa"), login(srv, "mpb")
    for room in ("media-1", "chat-1", "other"):
        ok(a.join(room))
        ok(b.join(room))
    assert rejected(a.send("media-1", "x" * 100)) == "message too large for this room"
    assert rejected(a.send("media-1", {"text": "hi"})) == "only text messages in this room"
    assert rejected(a.send("media-1", "see http://evil")) == "message refused by room policy"
    assert rejected(a.send("media-1", "<script>alert(1)")) == "message refused by room policy"
    ok(a.send("media-1", "fine"))
    assert b.next_event("message", room="media-1")["body"] == "fine"
    # the second instance has its own options
    assert rejected(a.send("chat-1", "y" * 30)) == "message too large for this room"
    ok(a.send("chat-1", {"o": 1}))
    # rooms not covered
    ok(a.send("other", "z" * 1000))
    # options are re-read on reload
    write_extra(srv, [line.replace("max_bytes = 20", "max_bytes = 4KiB") for line in lines])
    sighup(srv)
    ok(a.send("chat-1", "y" * 30))


@pytest.mark.parametrize("bad,words", [
    ("bad_magic", ["magic"]),
    ("bad_abi", ["ABI"]),
    ("bad_size", ["size"]),
    ("no_symbol", ["parley_plugin"]),
    ("init_fail", ["init"]),
])
def test_abi_mismatch_is_refused_with_a_clear_log_line_and_the_server_runs_on(server_factory, bad, words):
    lines = [f"plugins.bad.path = {q(plugin_path(bad))}", "plugins.bad.optional = true",
             f"plugins.good.path = {q(plugin_path('good'))}"]
    srv = start_with_conf(server_factory, lines)
    line = wait_log(srv, "plugin bad:")
    refusals = [l for l in log_lines(srv, "plugin bad:") if "refused" in l]
    assert refusals, srv.stderr()
    for w in words:
        assert w in refusals[0], refusals[0]
    assert bad in refusals[0], refusals[0]  # names the file
    assert line
    # the server runs on, the good plugin works
    a = login(srv, "abi")
    ok(a.join("abi-room"))
    ok(a.send("abi-room", "shout"))
    assert a.next_event("message", room="abi-room")["body"] == "SHOUT"
    assert metric(srv.port, "parley_hook_loaded", kind="plugin", name="bad") == 0


def test_bad_plugin_added_on_reload_is_refused_and_the_server_runs_on(server_factory):
    srv = start_with_conf(server_factory, [])
    a = login(srv, "rl")
    ok(a.join("rl-room"))
    write_extra(srv, [f"plugins.bad.path = {q(plugin_path('bad_abi'))}",
                      "plugins.missing.path = /nonexistent/parley/plugin.so"])
    start = sighup(srv)
    wait_log(srv, "plugin bad:", start=start)
    wait_log(srv, "plugin missing:", start=start)
    assert "ABI" in [l for l in log_lines(srv, "plugin bad:", start) if "refused" in l][0]
    ok(a.send("rl-room", "still up"))
    assert a.next_event("message", room="rl-room")["body"] == "still up"


# ---- the Lua sandbox ---------------------------------------------------------------------------------

LOOP_LUA = '''
parley.hook("on_message", function(e)
  if e.body == "loop" then while true do end end
  if e.body == "ploop" then while true do pcall(function() while true do end end) end end
  if e.body == "coloop" then
    local co = coroutine.wrap(function() while true do end end)
    co()
  end
  if e.body == "ping" then return "pong" end
end)
'''


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_infinite_loop_is_stopped_within_budget_and_the_next_message_flows(server_factory, tmp_path, policy):
    path = write_script(tmp_path, "loop.lua", LOOP_LUA)
    srv = start_with_conf(server_factory, script_lines("loop", path) + [f"hooks.on_message.fail = {policy}"])
    a, b = login(srv, "la"), login(srv, "lb")
    for c in (a, b):
        ok(c.join("loop-room"))
    for body in ("loop", "ploop", "coloop"):
        t0 = time.monotonic()
        r = a.send("loop-room", body)
        elapsed = time.monotonic() - t0
        assert elapsed < 1.0, f"{body}: the budget took {elapsed:.3f}s"
        if policy == "open":
            ok(r)
            assert b.next_event("message", room="loop-room")["body"] == body
        else:
            assert rejected(r) == REFUSED
        # the next message still flows, and the script still works
        ok(a.send("loop-room", "ping"))
        assert b.next_event("message", room="loop-room")["body"] == "pong"
    assert metric(srv.port, "parley_hook_budget_kills_total", kind="lua", name="loop") >= 3
    assert metric(srv.port, "parley_hook_errors_total", kind="lua", name="loop") >= 3
    assert log_lines(srv, "script loop:"), srv.stderr()


ESCAPES_LUA = r'''
parley.hook("on_message", function(e)
  if e.body == "gc" then  -- a finalizer that never ends: Lua runs it with hooks off
    setmetatable({}, {__gc = function() while true do end end})
    for i = 1, 100000 do local t = {i} end
  end
  if e.body == "gmatch" then  -- '^' does not anchor gmatch: quadratic
    local s = ("^"):rep(30000)
    for m in s:gmatch("^.-b") do end
  end
  if e.body == "upper" then  -- 4 MiB built in C per call, a few instructions each
    local s = "x" for i = 1, 19 do s = s .. s end
    while true do local t = s:upper() end
  end
  if e.body == "ping" then return "pong" end
end)
'''


@pytest.mark.parametrize("instructions", [5000, 1000000])
def test_work_in_c_is_bounded_and_healthz_stays_responsive(server_factory, tmp_path, instructions):
    """Finalizers, pattern and string functions cannot hold the loop: each call ends within a bounded time,
    /healthz answers meanwhile, and SIGTERM at teardown stops the server (exit 0) with the state closed."""
    path = write_script(tmp_path, "esc.lua", ESCAPES_LUA)
    srv = start_with_conf(server_factory, script_lines("esc", path) + [f"hooks.lua.instructions = {instructions}"])
    a, b = login(srv, "ea"), login(srv, "eb")
    for c in (a, b):
        ok(c.join("esc-room"))
    stop = threading.Event()
    slowest = [0.0]

    def probe():
        while not stop.is_set():
            t0 = time.monotonic()
            assert http_request(srv.port, "GET", "/healthz")[0] == 200
            slowest[0] = max(slowest[0], time.monotonic() - t0)
            time.sleep(0.02)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    try:
        for body in ("gc", "gmatch", "upper"):
            t0 = time.monotonic()
            ok(a.send("esc-room", body))  # fail open: the stopped handler is skipped
            elapsed = time.monotonic() - t0
            assert elapsed < 1.5, f"{body}: the call took {elapsed:.3f}s"
            assert b.next_event("message", room="esc-room")["body"] == body
            ok(a.send("esc-room", "ping"))
            assert b.next_event("message", room="esc-room")["body"] == "pong"
    finally:
        stop.set()
        t.join(timeout=30)
    assert slowest[0] < 1.5, f"/healthz took {slowest[0]:.3f}s"
    assert metric(srv.port, "parley_hook_errors_total", kind="lua", name="esc") >= 3
    assert any("__gc metamethods are not allowed" in l for l in log_lines(srv, "script esc:")), srv.stderr()


def test_memory_bomb_hits_the_cap(server_factory, tmp_path):
    path = write_script(tmp_path, "bomb.lua", '''
parley.hook("on_message", function(e)
  if e.body == "bomb" then
    local t = {}
    for i = 1, 100000000 do t[i] = ("x"):rep(200) .. i end
  end
  if e.body == "global-bomb" then
    hoard = hoard or {}
    for i = 1, 100000000 do hoard[#hoard + 1] = ("y"):rep(200) .. i end
  end
  if e.body == "ping" then return "pong" end
end)
''')
    srv = start_with_conf(server_factory, script_lines("bomb", path) +
                          ["hooks.lua.memory = 2MiB", "hooks.lua.instructions = 500000000"])
    rss0 = srv.rss_kb()
    a, b = login(srv, "ma"), login(srv, "mb")
    for c in (a, b):
        ok(c.join("bomb-room"))
    for body in ("bomb", "global-bomb", "bomb"):
        t0 = time.monotonic()
        ok(a.send("bomb-room", body))
        assert time.monotonic() - t0 < 3
        assert b.next_event("message", room="bomb-room")["body"] == body
        ok(a.send("bomb-room", "ping"))
        assert b.next_event("message", room="bomb-room")["body"] == "pong"
    assert metric(srv.port, "parley_hook_budget_kills_total", kind="lua", name="bomb") >= 3
    assert metric(srv.port, "parley_hook_memory_bytes", kind="lua", name="bomb") <= 2 * 1024 * 1024
    assert any("memory" in l for l in log_lines(srv, "script bomb:")), srv.stderr()
    assert srv.rss_kb() - rss0 < 64 * 1024, "the server's memory grew by more than 64 MiB"


SANDBOX_LUA = '''parley.log("info", "sandbox globals: " .. table.concat({type(os), type(io), type(require),
  type(debug), type(package), type(dofile), type(loadfile), type(collectgarbage), type(string.dump)}, ","))
local f, err = load("\\27LuaT\\0\\25\\147\\13\\10\\26\\10\\4\\8\\8\\120\\86\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\40\\119\\64\\1", "=bc", "b")
parley.log("info", "sandbox bytecode: " .. tostring(f) .. " / " .. tostring(err))
local g, err2 = load("\\27LuaT\\0\\25\\147\\13\\10\\26\\10")
parley.log("info", "sandbox bytecode default mode: " .. tostring(g) .. " / " .. tostring(err2))
local h = load("return 40 + 2")
parley.log("info", "sandbox text chunk: " .. tostring(h and h()))
parley.hook("on_message", function(e)
  if e.body == "os" then os.execute("touch MARKER") end
  if e.body == "io" then io.open("MARKER", "w") end
  if e.body == "require" then require("os") end
  if e.body == "debug" then debug.getinfo(1) end
  if e.body == "dofile" then dofile("MARKER") end
  if e.body == "bytecode" then assert(load("\\27LuaT\\0\\25\\147\\13\\10\\26\\10")) end
  if e.body == "kaboom" then error("kaboom here") end
end)
'''
# line numbers of the handler's statements above
SANDBOX_LINES = {w: next(i + 1 for i, line in enumerate(SANDBOX_LUA.splitlines()) if f'e.body == "{w}"' in line)
                 for w in ("os", "io", "require", "debug", "dofile", "bytecode", "kaboom")}


def test_sandbox_has_no_os_io_require_debug_or_bytecode(server_factory, tmp_path):
    marker = tmp_path / "srv0" / "MARKER"
    text = SANDBOX_LUA.replace("MARKER", str(marker))
    path = write_script(tmp_path, "sb.lua", text)
    assert text.splitlines()[SANDBOX_LINES["os"] - 1].strip().startswith('if e.body == "os"')
    srv = start_with_conf(server_factory, script_lines("sb", path))
    line = wait_log(srv, "sandbox globals:")
    assert line.split("sandbox globals: ")[1].strip() == ",".join(["nil"] * 9), line
    assert "script sb:" in line
    # refused as binary before it is parsed (a parsed truncated chunk would say "truncated")
    for what in ("sandbox bytecode:", "sandbox bytecode default mode:"):
        msg = wait_log(srv, what).split(what)[1].strip()
        assert msg.startswith("nil / ") and "truncated" not in msg, msg
    assert wait_log(srv, "sandbox text chunk:").endswith("42")
    a, b = login(srv, "sa"), login(srv, "sb")
    for c in (a, b):
        ok(c.join("sb-room"))
    for body, lineno in SANDBOX_LINES.items():
        start = len(srv.stderr())
        ok(a.send("sb-room", body))   # on_message fails open: the message flows
        assert b.next_event("message", room="sb-room")["body"] == body
        # logged as "script NAME: on_message: path/to/file.lua:LINE: message"
        # (Lua shortens long chunk names from the left: match the file name and the line)
        err_line = wait_log(srv, f"sb.lua:{lineno}:", start=start)
        assert "script sb:" in err_line and "on_message" in err_line, err_line
    assert "kaboom here" in wait_log(srv, f"sb.lua:{SANDBOX_LINES['kaboom']}:")
    assert not marker.exists()
    assert metric(srv.port, "parley_hook_errors_total", kind="lua", name="sb") >= len(SANDBOX_LINES)


def test_error_at_load_of_an_optional_script_is_logged_and_the_server_runs_on(server_factory, tmp_path):
    # (not optional, the start fails: tests/integration/test_check.py)
    path = write_script(tmp_path, "bad.lua", 'local x = 1\nlocal y = nil + x\n')
    srv = start_with_conf(server_factory, script_lines("bad", path) + ["scripts.bad.optional = true"])
    line = wait_log(srv, "script bad:")
    assert "bad.lua:2:" in line, line
    c = login(srv, "after")
    ok(c.join("r"))
    ok(c.send("r", "hello"))
    assert metric(srv.port, "parley_hook_load_failures_total", kind="lua", name="bad") >= 1


# ---- reload ------------------------------------------------------------------------------------------

RW_V1 = 'parley.hook("on_message", function(e) if type(e.body) == "string" then return "v1|" .. e.body end end)\n'
RW_V2 = 'parley.hook("on_message", function(e) if type(e.body) == "string" then return "v2|" .. e.body end end)\n'
RW_BROKEN = 'parley.hook("on_message", function(e) return x x end)\n'


def replace_file(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def test_reload_under_live_traffic_changes_behaviour_without_loss(server_factory, tmp_path):
    path = write_script(tmp_path, "rw.lua", RW_V1)
    srv = start_with_conf(server_factory, script_lines("rw", path))
    room = "live-room"
    sender, receiver, other = login(srv, "sender"), login(srv, "receiver", codec="msgpack"), login(srv, "other")
    for c in (sender, receiver, other):
        ok(c.join(room))
    sender.log = None
    acks, errors = [], []
    stop = threading.Event()

    def send_loop():
        i = 0
        try:
            while not stop.is_set():
                i += 1
                r = sender.send(room, f"m{i}", cmid=f"live-{i}")
                if "ok" in r:
                    acks.append((r["ok"]["seq"], f"m{i}"))
                else:
                    errors.append(r)
                # the sender's own copies are not needed
                sender.events.clear()
                time.sleep(0.003)  # live traffic, not a flood: keep the non-reading clients' queues small
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    t = threading.Thread(target=send_loop, daemon=True)
    t.start()
    wait_for(lambda: len(acks) >= 20, 5, what="traffic")
    replace_file(path, RW_V2)
    start = sighup(srv)
    wait_log(srv, "script rw:", start=start)
    n_at_v2 = len(acks)
    wait_for(lambda: len(acks) >= n_at_v2 + 20, 5, what="traffic after the reload")
    replace_file(path, RW_BROKEN)
    start = sighup(srv)
    keep = wait_log(srv, "keeping the previously loaded version", start=start)
    assert "script rw:" in keep and "rw.lua" in keep, keep
    n_at_broken = len(acks)
    wait_for(lambda: len(acks) >= n_at_broken + 20, 5, what="traffic after the broken reload")
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive()
    assert errors == [], errors[:5]

    # every acked message delivered once, in order, seqs gapless from 1
    seqs = [s for s, _ in acks]
    assert seqs == list(range(1, len(seqs) + 1)), seqs[:10]
    got = receiver.messages(room, len(acks), timeout=10)
    assert [m["seq"] for m in got] == seqs
    bodies = [m["body"] for m in got]
    for (seq, sent), body in zip(acks, bodies):
        assert body in (f"v1|{sent}", f"v2|{sent}"), (seq, sent, body)
    versions = [b[:2] for b in bodies]
    first_v2 = versions.index("v2")
    assert set(versions[:first_v2]) == {"v1"} and set(versions[first_v2:]) == {"v2"}, versions
    assert first_v2 <= n_at_v2 + 5   # the switch happened at the reload
    receiver.no_event("message", room=room, timeout=0.2)
    # nobody was disconnected
    for c in (sender, receiver, other):
        assert c.closed is None
        ok(c.ping())
    assert len(other.messages(room, len(acks), timeout=10)) == len(acks)
    # the broken version is not running: v2 still rewrites
    ok(other.send(room, "after"))
    assert receiver.next_event("message", room=room)["body"] == "v2|after"


def test_broken_replacement_keeps_the_old_version(server_factory, tmp_path):
    path = write_script(tmp_path, "keep.lua", RW_V1)
    srv = start_with_conf(server_factory, script_lines("keep", path))
    c = login(srv, "k")
    ok(c.join("k-room"))
    replace_file(path, RW_BROKEN)
    start = sighup(srv)
    line = wait_log(srv, "keeping the previously loaded version", start=start)
    assert "script keep:" in line and "keep.lua:1:" in line, line
    ok(c.send("k-room", "x"))
    assert c.next_event("message", room="k-room")["body"] == "v1|x"
    # a missing file also keeps it
    os.remove(path)
    start = sighup(srv)
    wait_log(srv, "keeping the previously loaded version", start=start)
    ok(c.send("k-room", "y"))
    assert c.next_event("message", room="k-room")["body"] == "v1|y"
    # metrics count the failures and still say loaded
    assert metric(srv.port, "parley_hook_load_failures_total", kind="lua", name="keep") >= 2
    assert metric(srv.port, "parley_hook_loaded", kind="lua", name="keep") == 1


def test_removed_section_is_unloaded_and_new_section_loaded_on_sighup(server_factory, tmp_path):
    path1 = write_script(tmp_path, "one.lua", RW_V1)
    path2 = write_script(tmp_path, "two.lua", RW_V2)
    srv = start_with_conf(server_factory, script_lines("one", path1))
    c = login(srv, "u")
    ok(c.join("s-room"))
    write_extra(srv, script_lines("two", path2))
    start = sighup(srv)
    wait_log(srv, "script one:", start=start)
    ok(c.send("s-room", "z"))
    assert c.next_event("message", room="s-room")["body"] == "v2|z"


def test_admin_reload_endpoint(server_factory, tmp_path):
    path = write_script(tmp_path, "adm.lua", RW_V1)
    srv = start_with_conf(server_factory, script_lines("adm", path) + ['hooks.admin_key = "s3cret-admin-key"'])
    c = login(srv, "adm")
    ok(c.join("a-room"))
    replace_file(path, RW_V2)
    assert http_request(srv.port, "POST", "/api/admin/reload")[0] == 401
    assert http_request(srv.port, "POST", "/api/admin/reload",
                        headers={"Authorization": "Bearer wrong-key"})[0] == 401
    assert http_request(srv.port, "POST", "/api/admin/reload",
                        headers={"Authorization": "s3cret-admin-key"})[0] == 401
    ok(c.send("a-room", "before"))
    assert c.next_event("message", room="a-room")["body"] == "v1|before"
    status, body = http_request(srv.port, "POST", "/api/admin/reload",
                                headers={"Authorization": "Bearer s3cret-admin-key"})
    assert status == 200, body
    ok(c.send("a-room", "after"))
    assert c.next_event("message", room="a-room")["body"] == "v2|after"
    assert c.closed is None

    plain = server_factory()  # hooks.admin_key unset: no endpoint
    assert http_request(plain.port, "POST", "/api/admin/reload",
                        headers={"Authorization": "Bearer "})[0] == 404
    assert http_request(plain.port, "POST", "/api/admin/reload",
                        headers={"Authorization": "Bearer s3cret-admin-key"})[0] == 404


# ---- the shipped moderation scripts ------------------------------------------------------------------


def moderation(name):
    return os.path.join(MODERATION, name + ".lua")


def test_profanity_reject(server_factory):
    srv = start_with_conf(server_factory, script_lines(
        "profanity", moderation("profanity"), 10, words="darn, heck dang", reason="mind your language",
        rooms="public-* lobby"))
    a, b = login(srv, "pa"), login(srv, "pb")
    for room in ("lobby", "public-1", "private-1"):
        ok(a.join(room))
        ok(b.join(room))
    assert rejected(a.send("lobby", "oh darn it")) == "mind your language"
    assert rejected(a.send("public-1", "HECK no")) == "mind your language"
    assert rejected(a.send("lobby", {"text": "dang", "n": 1})) == "mind your language"
    ok(a.send("lobby", "darned heckle"))   # whole words only
    assert b.next_event("message", room="lobby")["body"] == "darned heckle"
    ok(a.send("private-1", "darn"))        # room not covered
    assert b.next_event("message", room="private-1")["body"] == "darn"
    assert [m["body"] for m in ok(b.request("history", room="lobby"))["messages"]] == ["darned heckle"]
    assert metric(srv.port, "parley_hook_rejects_total", kind="lua", name="profanity") == 3


def test_profanity_mask(server_factory):
    srv = start_with_conf(server_factory, script_lines(
        "profanity", moderation("profanity"), 10, words="darn heck", mode="mask"))
    a, b = login(srv, "pa"), login(srv, "pb")
    for c in (a, b):
        ok(c.join("m-room"))
    ok(a.send("m-room", "oh darn, HECK!"))
    assert b.next_event("message", room="m-room")["body"] == "oh ****, ****!"
    ok(a.send("m-room", {"text": "heck no", "x": 1}))
    assert b.next_event("message", room="m-room")["body"] == {"text": "**** no", "x": 1}
    ok(a.send("m-room", "clean"))
    assert b.next_event("message", room="m-room")["body"] == "clean"
    assert [m["body"] for m in ok(b.request("history", room="m-room"))["messages"]] == \
        ["oh ****, ****!", {"text": "**** no", "x": 1}, "clean"]


def test_slowmode(server_factory):
    srv = start_with_conf(server_factory, script_lines(
        "slowmode", moderation("slowmode"), None, interval="1", rooms="slow-*", exempt="mod1"))
    u, mod = login(srv, "user1"), login(srv, "mod1")
    for c in (u, mod):
        ok(c.join("slow-1"))
        ok(c.join("slow-2"))
        ok(c.join("fast"))
    ok(u.send("slow-1", "first"))
    reason = rejected(u.send("slow-1", "second"))
    assert reason.startswith("slow mode: wait ") and reason.endswith(" s"), reason
    assert 0 < float(reason.split()[3]) <= 1.0
    ok(u.send("slow-2", "other room is independent"))
    ok(u.send("fast", "a"))
    ok(u.send("fast", "b"))       # not covered
    ok(mod.send("slow-1", "x"))
    ok(mod.send("slow-1", "y"))   # exempt
    time.sleep(1.05)
    ok(u.send("slow-1", "later"))


def test_links(server_factory):
    srv = start_with_conf(server_factory, script_lines(
        "links", moderation("links"), None, max_links="1", allow="example.com docs.rs"))
    a = login(srv, "la")
    ok(a.join("l-room"))
    assert rejected(a.send("l-room", "see http://a.org and https://b.org")) == "too many links (2, at most 1)"
    assert rejected(a.send("l-room", "www.a.org and www.b.org")) == "too many links (2, at most 1)"
    ok(a.send("l-room", "one http://a.org link"))
    ok(a.send("l-room", "http://a.org and https://docs.example.com/x and https://docs.rs/y"))
    ok(a.send("l-room", {"text": "no links"}))
    srv2 = start_with_conf(server_factory, script_lines("links", moderation("links"), None, max_links="0"))
    b = login(srv2, "lb")
    ok(b.join("l-room"))
    assert rejected(b.send("l-room", "http://a.org")) == "links are not allowed here"


def test_mute(server_factory):
    srv = start_with_conf(server_factory, script_lines(
        "mute", moderation("mute"), None, moderators="alice carol", minutes="10"))
    alice, bob, dave = login(srv, "alice"), login(srv, "bob"), login(srv, "dave")
    for c in (alice, bob, dave):
        ok(c.join("mute-room"))
    assert rejected(alice.send("mute-room", "/mute bob 30")) == "muted bob for 30 min"
    assert rejected(bob.send("mute-room", "hello?")) == "you are muted"
    # typing of a muted user is refused too: nobody sees it
    r = bob.request("typing", room="mute-room", active=True)
    assert "ok" in r or r["err"]["code"] == "rejected", r
    dave.no_event("typing", room="mute-room", timeout=0.6)
    # not a moderator: the command is an ordinary message
    ok(dave.send("mute-room", "/mute alice"))
    ok(alice.send("mute-room", "hi all"))
    # the list lives in parley.kv: it survives a reload
    sighup(srv)
    assert rejected(bob.send("mute-room", "and now?")) == "you are muted"
    assert rejected(alice.send("mute-room", "/unmute bob")) == "unmuted bob"
    ok(bob.send("mute-room", "free"))
    bodies = [m["body"] for m in ok(dave.request("history", room="mute-room"))["messages"]]
    assert bodies == ["/mute alice", "hi all", "free"]


# ---- the parley API over the real server: kick, kv, timer, publish -------------------------------------

API_LUA = '''
parley.hook("on_message", function(e)
  if type(e.body) ~= "string" then return nil end
  local target = e.body:match("^/kick (%S+)$")
  if target then
    local done, err = parley.kick(target, "kicked by " .. e.user)
    return false, "kicked " .. target .. " " .. tostring(done) .. " " .. tostring(err)
  end
  if e.body == "/count" then return false, "count " .. tostring(parley.kv.incr("n")) end
  if e.body == "/later" then
    local room = e.room
    parley.timer(100, function() parley.publish(room, {text = "timer fired"}) end)
    return false, "scheduled"
  end
end)
'''


def test_lua_api_kick_kv_timer(server_factory, tmp_path):
    path = write_script(tmp_path, "api.lua", API_LUA)
    srv = start_with_conf(server_factory, script_lines("api", path))
    mod, v1, v2, bystander = login(srv, "mod"), login(srv, "victim"), login(srv, "victim"), login(srv, "by")
    for c in (mod, v1, v2, bystander):
        ok(c.join("api-room"))
    assert rejected(mod.send("api-room", "/kick victim")) == "kicked victim true nil"
    for v in (v1, v2):
        assert v.expect_close(timeout=3)[0] == 4003
    ok(bystander.ping())
    assert rejected(mod.send("api-room", "/count")) == "count 1"
    assert rejected(mod.send("api-room", "/count")) == "count 2"
    sighup(srv)  # parley.kv survives a reload of the script
    assert rejected(mod.send("api-room", "/count")) == "count 3"
    assert rejected(mod.send("api-room", "/later")) == "scheduled"
    assert bystander.next_event("message", room="api-room", timeout=3)["body"] == {"text": "timer fired"}


# ---- the documentation's example script ----------------------------------------------------------------


def test_docs_greeter_example_runs_as_documented(server_factory):
    """docs/hooks.md's complete script is scripts/examples/greeter.lua, loads with the doc's configuration
    and does what its comment says: rejects banned words, trims long messages, welcomes the first joiner."""
    import re
    doc = open(os.path.join(REPO_ROOT, "docs", "hooks.md")).read()
    block = re.search(r"```lua\n(-- greeter\.lua.*?)```", doc, re.S).group(1)
    path = os.path.join(REPO_ROOT, "scripts", "examples", "greeter.lua")
    with open(path) as f:
        assert f.read() == block, "scripts/examples/greeter.lua differs from the script in docs/hooks.md"
    conf = re.search(r"```\n# conf.d/60-scripts.conf\n(.*?)```", doc, re.S).group(1).splitlines()
    assert "scripts.greeter.path = scripts/examples/greeter.lua" in conf
    lines = [l.replace("scripts/examples/greeter.lua", q(path)) for l in conf]
    srv = start_with_conf(server_factory, lines)
    rc = subprocess.run([PARLEY_BIN, "--check", "-c", srv.conf_dir], capture_output=True, text=True, timeout=60)
    assert rc.returncode == 0, rc.stderr
    a = login(srv, "alice", name="Alice")
    ok(a.join("lobby"))
    b = login(srv, "bob")
    ok(b.join("lobby"))  # not the first visitor: nothing published
    # the welcome is published when the join hook returns (it may reach the room before alice is in it)
    bodies = wait_for(lambda: [m["body"] for m in a.call("history", room="lobby", limit=10)["messages"]],
                      what="the welcome in the history")
    assert bodies == [{"text": "first visitor: Alice"}], bodies
    assert rejected(a.send("lobby", "I like Spam a lot")) == "watch your language"
    ok(a.send("lobby", "x" * 600))
    assert b.next_event("message", room="lobby")["body"] == "x" * 500
    ok(a.send("lobby", {"text": "y" * 600, "n": 1}))
    assert b.next_event("message", room="lobby")["body"] == {"text": "y" * 500, "n": 1}
    ok(a.send("lobby", "hello"))
    assert b.next_event("message", room="lobby")["body"] == "hello"
