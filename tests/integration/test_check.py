"""`parleyd --check` and start-up with scripts and plugins (docs/hooks.md "Checking a configuration"):
--check loads every script and opens every plugin and fails, naming file:line, when one would not run,
when a section has an option its script or plugin does not declare, or when a room glob can never match a
room name; at start-up a script or plugin that fails to load is fatal unless its section is optional."""

import os
import subprocess

import pytest

from conftest import BASE_CONF, PARLEY_BIN, REPO_ROOT, free_port, write_conf
from support_auth import q, start_with_conf
from wsclient import ok

BUILD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(PARLEY_BIN)))
TEST_PLUGIN_DIR = os.path.join(BUILD_DIR, "tests", "plugins")
MODERATION = os.path.join(REPO_ROOT, "scripts", "moderation")


def plugin_path(name):
    return os.path.join(TEST_PLUGIN_DIR, name + ".so")


def check(tmp_path, lines):
    """Run parleyd --check on a conf dir holding `lines` in 60-extra.conf: (exit code, stderr, conf file)."""
    conf = tmp_path / "conf.d"
    conf.mkdir(exist_ok=True)
    extra = conf / "60-extra.conf"
    extra.write_text("# written by tests/integration/test_check.py\n" + "".join(l + "\n" for l in lines))
    p = subprocess.run([PARLEY_BIN, "--check", "-c", str(conf)], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr, str(extra)


def script(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


GOOD_LUA = ('local max_len = parley.option_number("max_len", 500)\n'
            'local rooms = parley.option_globs("rooms", "*")\n'
            'parley.timer(1000, function() end)\n'
            'parley.hook("on_message", function(e) return nil end)\n')


def test_a_good_configuration_passes(tmp_path):
    lines = [f"scripts.g.path = {q(script(tmp_path, 'g.lua', GOOD_LUA))}", "scripts.g.max_len = 20",
             "scripts.g.rooms = \"lobby support-* dm:?*\"", "scripts.g.optional = false",
             f"plugins.p.path = {q(plugin_path('good'))}", "plugins.p.deny = spam",
             # init_fail's init fails, but --check does not run plugin code
             f"plugins.i.path = {q(plugin_path('init_fail'))}",
             f"scripts.profanity.path = {q(os.path.join(MODERATION, 'profanity.lua'))}",
             "scripts.profanity.words = \"darn heck\"", "scripts.profanity.rooms = \"chat-*\"",
             f"scripts.links.path = {q(os.path.join(MODERATION, 'links.lua'))}", "scripts.links.max_links = 0",
             "rooms.media-*.max_count = 100"]
    rc, err, _ = check(tmp_path, lines)
    assert rc == 0, err
    assert "configuration ok" in err


@pytest.mark.parametrize("case", ["missing_script", "syntax", "load_error", "missing_so", "no_symbol",
                                  "bad_abi", "typo", "plugin_typo", "script_glob", "room_glob",
                                  "optional_value"])
def test_check_fails_naming_the_place(tmp_path, case):
    bad_syntax = script(tmp_path, "syntax.lua", 'local x = 1\nparley.hook("on_message", function(e) return x x end)\n')
    bad_load = script(tmp_path, "load.lua", 'local x = 1\n\nlocal y = nil + x\n')
    good = script(tmp_path, "g.lua", GOOD_LUA)
    lines, want = {
        "missing_script": ([f"scripts.m.path = {q(str(tmp_path / 'nope.lua'))}"],
                           ["script m:", "nope.lua: No such file or directory"]),
        "syntax": ([f"scripts.s.path = {q(bad_syntax)}"], ["script s:", "syntax.lua:2:"]),
        "load_error": ([f"scripts.l.path = {q(bad_load)}"], ["script l:", "load.lua:3:", "arithmetic"]),
        "missing_so": ([f"plugins.m.path = {q(str(tmp_path / 'nope.so'))}"], ["plugin m: refused: dlopen", "nope.so"]),
        "no_symbol": ([f"plugins.n.path = {q(plugin_path('no_symbol'))}"], ["plugin n: refused:", "parley_plugin"]),
        "bad_abi": ([f"plugins.b.path = {q(plugin_path('bad_abi'))}"], ["plugin b: refused:", "ABI 42"]),
        "typo": ([f"scripts.g.path = {q(good)}", "scripts.g.max_mgs = 20"],
                 ["60-extra.conf:3: scripts.g.max_mgs: unknown option (script g reads: max_len, rooms)"]),
        "plugin_typo": ([f"plugins.p.path = {q(plugin_path('good'))}", "plugins.p.denny = spam"],
                        ["60-extra.conf:3: plugins.p.denny: unknown option (plugin p reads: deny, delay_ms)"]),
        "script_glob": ([f"scripts.g.path = {q(good)}", 'scripts.g.rooms = "lobby chat/*"'],
                        ["60-extra.conf:3: scripts.g.rooms: room glob 'chat/*' can never match a room name"]),
        "room_glob": (["rooms.chat room.history = false"], ["rooms.chat room: the room glob can never match"]),
        "optional_value": ([f"scripts.g.path = {q(good)}", "scripts.g.optional = maybe"],
                           ["60-extra.conf:3: scripts.g.optional: 'maybe' is not a bool"]),
    }[case]
    rc, err, extra = check(tmp_path, lines)
    assert rc == 1, err
    assert "configuration ok" not in err
    for w in want:
        assert w in err, err
    if case in ("typo", "plugin_typo", "script_glob", "optional_value"):
        assert extra in err, err  # file:line of the assignment


@pytest.mark.parametrize("kind", ["script", "plugin"])
def test_start_fails_when_a_required_script_or_plugin_does_not_load(tmp_path, kind):
    if kind == "script":
        lines = [f"scripts.bad.path = {q(script(tmp_path, 'bad.lua', 'local x = 1 +'))}"]
    else:
        lines = [f"plugins.bad.path = {q(plugin_path('bad_abi'))}"]
    conf = dict(BASE_CONF)
    conf["server.port"] = free_port()
    conf["server.data_dir"] = str(tmp_path / "data")
    write_conf(str(tmp_path / "conf.d"), conf)
    (tmp_path / "conf.d" / "60-extra.conf").write_text("".join(l + "\n" for l in lines))
    p = subprocess.run([PARLEY_BIN, "-c", str(tmp_path / "conf.d")], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert p.returncode != 0, p.stderr
    assert f"{kind} bad:" in p.stderr, p.stderr
    assert "optional = true" in p.stderr, p.stderr
    assert "listening" not in p.stderr, p.stderr


def test_start_succeeds_without_an_optional_script(server_factory, tmp_path):
    lines = [f"scripts.bad.path = {q(script(tmp_path, 'bad.lua', 'local x = 1 +'))}",
             "scripts.bad.optional = true",
             f"plugins.gone.path = {q(str(tmp_path / 'gone.so'))}", "plugins.gone.optional = on"]
    srv = start_with_conf(server_factory, lines)
    c = srv.client()
    ok(c.join("r"))
    ok(c.send("r", "still up"))
    assert "script bad:" in srv.stderr()


def test_shipped_msgpolicy_plugin_declares_its_options(tmp_path):
    """plugins/msgpolicy exports parley_plugin_options: a misspelt option is reported, the right one passes."""
    so = os.path.join(BUILD_DIR, "plugins", "msgpolicy", "msgpolicy.so")
    rc, err, extra = check(tmp_path, [f"plugins.mp.path = {q(so)}", "plugins.mp.max_bytse = 10"])
    assert rc == 1
    assert f"{extra}:3: plugins.mp.max_bytse: unknown option" in err, err
    rc, err, _ = check(tmp_path, [f"plugins.mp.path = {q(so)}", "plugins.mp.max_bytes = 10",
                                  "plugins.mp.rooms = \"chat-*\"", "plugins.mp.deny = spam",
                                  "plugins.mp.require_string = true"])
    assert rc == 0, err
