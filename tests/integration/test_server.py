"""Process-level behaviour: shutdown, HTTP endpoints, connection limit, idle pings, command line."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import conftest
from conftest import PARLEY_BIN, REPO_ROOT, free_port, write_conf
from support_auth import sighup, write_extra
from wsclient import Client, Timeout, err_code, handshake_status, http_get, ok, parse_metrics


def run_cli(*args, timeout=10):
    if not os.access(PARLEY_BIN, os.X_OK):
        pytest.fail(f"parleyd not found at {PARLEY_BIN}")
    return subprocess.run([PARLEY_BIN, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# ---- shutdown -------------------------------------------------------------------------------------


def test_sigterm_closes_clients_with_1001_and_exits_0(server):
    a = server.client("json")
    b = server.client("msgpack")
    ok(a.join("bye"))
    ok(b.join("bye"))
    not_hello = Client(server.port, codec="json")
    server.clients.append(not_hello)
    server.proc.send_signal(signal.SIGTERM)
    for c in (a, b, not_hello):
        code, _ = c.expect_close(timeout=5)
        assert code == 1001, f"{c.name}: close code {code}, expected 1001"
    try:
        rc = server.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("parleyd did not exit within 10 s of SIGTERM")
    assert rc == 0, f"exit code {rc}"


def test_sigterm_with_no_clients_exits_0(server):
    assert server.terminate() == 0


def test_log_says_listening(server):
    deadline = time.monotonic() + 5
    while f"listening on 127.0.0.1:{server.port}" not in server.stderr():
        assert time.monotonic() < deadline, f"no 'listening on' line in stderr:\n{server.stderr()}"
        time.sleep(0.05)


# ---- HTTP -----------------------------------------------------------------------------------------


def test_healthz(shared_server):
    status, headers, body = http_get(shared_server.port, "/healthz")
    assert status == 200
    assert body.strip() == "ok"
    assert headers.get("content-type", "").startswith("text/plain")


def test_unknown_http_path_is_404_quickly(shared_server):
    t0 = time.monotonic()
    status, _, _ = http_get(shared_server.port, "/no-such-path-here")
    assert status == 404
    assert time.monotonic() - t0 < 2


def metrics(port):
    status, headers, body = http_get(port, "/metrics")
    assert status == 200, (status, body)
    assert headers.get("content-type", "").startswith("text/plain"), headers
    return body, parse_metrics(body)


def test_metrics(server):
    a = server.client("json")
    b = server.client("msgpack")
    ok(a.join("m"))
    ok(b.join("m"))
    ok(a.send("m", "counted"))
    b.next_event("message", room="m")
    assert err_code(a.request("no_such_op")) == "unknown_op"
    assert err_code(b.join("bad room")) == "bad_room"
    a.send_bytes(b"{oops")
    a.next_reply(re=None)

    text, m = metrics(server.port)
    for name in ("parley_connections", "parley_messages_total", "parley_frames_in_total",
                 "parley_bytes_out_total"):
        assert name in m, f"{name} missing from /metrics:\n{text}"
        assert re.search(rf"^# TYPE {name} (gauge|counter)$", text, re.M), f"no TYPE line for {name}"
    assert m["parley_connections"] == 2
    assert m["parley_messages_total"] >= 1
    assert m["parley_frames_in_total"] >= 8
    assert m["parley_bytes_out_total"] > 0
    assert m.get('parley_errors_total{code="unknown_op"}', 0) >= 1, text
    assert m.get('parley_errors_total{code="bad_room"}', 0) >= 1, text
    assert m.get('parley_errors_total{code="bad_frame"}', 0) >= 1, text

    # counters move
    ok(a.send("m", "again"))
    b.next_event("message", room="m")
    _, m2 = metrics(server.port)
    assert m2["parley_messages_total"] == m["parley_messages_total"] + 1
    assert m2["parley_frames_in_total"] > m["parley_frames_in_total"]

    a.close()
    deadline = time.monotonic() + 5
    while metrics(server.port)[1]["parley_connections"] != 1:
        assert time.monotonic() < deadline, "parley_connections did not drop after a close"
        time.sleep(0.05)


# ---- connection limit -----------------------------------------------------------------------------


def test_max_connections_refuses_with_503(server_factory):
    srv = server_factory(limits__max_connections=2)
    a = srv.client("json")
    b = srv.client("msgpack", hello=False)
    status, _, body = handshake_status(srv.port, ["parley.v1.json"])
    assert status == 503, (status, body)
    # the two connections are unaffected
    ok(a.ping())
    ok(b.ping())
    # HTTP endpoints still answer
    assert http_get(srv.port, "/healthz")[0] == 200
    # after one leaves, a new connection is accepted (the close is asynchronous: retry briefly)
    b.close()
    deadline = time.monotonic() + 5
    while True:
        status, _, _ = handshake_status(srv.port, ["parley.v1.msgpack"])
        if status == 101:
            break
        assert status == 503 and time.monotonic() < deadline, status
        time.sleep(0.05)


# ---- idle pings -----------------------------------------------------------------------------------


def test_idle_connections_are_pinged_and_silent_ones_closed(server_factory):
    srv = server_factory(limits__idle_timeout="1s")
    good = srv.client("json")
    mute = srv.client("msgpack")
    mute.ws.auto_pong = False
    t0 = time.monotonic()
    code = None
    # Both must be read concurrently: the good one answers pings only while it reads.
    while code is None:
        assert time.monotonic() - t0 < 8, "the connection that never answers pings was not closed"
        good.drain(0.05)
        try:
            code = mute.expect_close(timeout=0.05)[0]
        except Timeout:
            pass
    assert mute.ws.pings, "the server never pinged the idle connection before closing it"
    # the one that answers pongs is still there, a while later
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        good.drain(0.05)
    assert good.ws.pings, "the server never pinged the idle (but answering) connection"
    ok(good.ping())


# ---- configuration and command line ---------------------------------------------------------------


def project_version():
    with open(os.path.join(REPO_ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*parley\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else None


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    v = project_version()
    assert v and v in out, f"--version printed {out!r}, expected it to contain {v}"


GOOD = {
    "server.host": "127.0.0.1",
    "server.port": 18080,
    "auth.allow_anonymous": True,
    "auth.jwt_secret": "s3cret",
    "limits.max_frame": "64KiB",
    "limits.idle_timeout": "60s",
    "limits.hello_timeout": "500ms",
    "limits.out_queue_bytes": "1MiB",
    "log.level": "debug",
}


def test_check_accepts_a_good_config(tmp_path):
    write_conf(str(tmp_path), GOOD, name="10-good.conf")
    (tmp_path / "20-more.conf").write_text("# comment\n\nlimits.max_body = 8KiB   # trailing comment\n")
    r = run_cli("--check", "-c", str(tmp_path))
    assert r.returncode == 0, r.stderr


def test_check_accepts_an_empty_dir(tmp_path):
    r = run_cli("--check", "-c", str(tmp_path))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("line", [
    "no.such.key = 1",
    "limits.max_fram = 64KiB",
    "limits.max_frame = banana",
    "limits.max_frame = -5",
    "auth.allow_anonymous = maybe",
    "limits.idle_timeout = 5 parsecs",
    "server.port = 70000",
    "server.port = http",
    "log.level = loud",
    "limits.max_connections = 0",
    "just some words",
    'auth.jwt_secret = "unterminated',
], ids=["unknown-key", "typo-key", "bad-size", "negative-size", "bad-bool", "bad-duration", "port-range",
        "port-text", "bad-level", "zero-connections", "no-equals", "unterminated-quote"])
def test_check_rejects_bad_config_with_file_and_line(tmp_path, line):
    write_conf(str(tmp_path), GOOD, name="10-good.conf")  # line 1 is a comment, then 9 keys
    (tmp_path / "20-bad.conf").write_text("# fine\nlimits.max_body = 8KiB\n" + line + "\nlog.level = info\n")
    r = run_cli("--check", "-c", str(tmp_path))
    assert r.returncode != 0, f"--check accepted {line!r}"
    assert re.search(r"(^|/)20-bad\.conf:3: ", r.stderr, re.M), \
        f"stderr should name 20-bad.conf:3: for {line!r}, got {r.stderr!r}"


def test_check_missing_dir_fails(tmp_path):
    r = run_cli("--check", "-c", str(tmp_path / "does-not-exist"))
    assert r.returncode != 0


def test_conf_files_are_read_in_sorted_order_later_wins(server_factory, tmp_path):
    srv = server_factory(start=False)
    # 50-test.conf (written by the fixture) sets the real port; 90-late.conf overrides max_rooms and
    # 00-early.conf tries to set it first.
    with open(os.path.join(srv.conf_dir, "00-early.conf"), "w") as f:
        f.write("limits.max_rooms_per_conn = 5\nlimits.max_body = 1KiB\n")
    with open(os.path.join(srv.conf_dir, "90-late.conf"), "w") as f:
        f.write("limits.max_rooms_per_conn = 9\n")
    with open(os.path.join(srv.conf_dir, "95-ignored.txt"), "w") as f:
        f.write("this is not a conf file = and must be ignored\n")
    srv.start()
    c = srv.client("json", hello=False)
    limits = ok(c.hello())["limits"]
    assert limits["max_rooms"] == 9
    assert limits["max_body"] == 1024


# ---- command-line overrides: --set KEY=VALUE and -p PORT -------------------------------------------


def print_config(*args):
    """parleyd --print-config ARGS -> {key: value text}."""
    r = run_cli("--print-config", *args)
    assert r.returncode == 0, r.stderr
    return dict(line.split(" = ", 1) for line in r.stdout.splitlines())


def test_set_and_p_apply_after_the_conf_files_later_wins(tmp_path):
    write_conf(str(tmp_path), {"server.port": 7001, "limits.max_body": "2KiB", "log.level": "warn"})
    conf = print_config("-c", str(tmp_path))
    assert (conf["server.port"], conf["limits.max_body"], conf["log.level"]) == ("7001", "2KiB", "warn")
    conf = print_config("-c", str(tmp_path), "--set", "limits.max_body=3KiB", "--set", "log.level = debug",
                        "--set", 'auth.jwt_secret=a b"c=d', "-p", "7002")
    assert (conf["server.port"], conf["limits.max_body"], conf["log.level"]) == ("7002", "3KiB", "debug")
    assert conf["auth.jwt_secret"] == r'"a b\"c=d"', "the value is taken as written, '=' and quotes included"
    # repeated: the last one wins, whichever option spelled it; -c may come after them
    conf = print_config("-p", "7003", "--set", "server.port=7004", "--port", "7005", "-c", str(tmp_path))
    assert conf["server.port"] == "7005"
    assert print_config("-c", str(tmp_path), "--set", "server.port=7006", "-p", "7007")["server.port"] == "7007"


@pytest.mark.parametrize("args, message", [
    (["--set", "server.port=abc"], "--set server.port=abc: server.port: 'abc' is not an integer"),
    (["-p", "99999"], "-p 99999: server.port: '99999' is out of range"),
    (["--port", "x"], "--port x: server.port: 'x' is not an integer"),
    (["--set", "no.such.key=1"], "--set no.such.key=1: unknown key 'no.such.key'"),
    (["--set", "rooms.x.history=maybe"], "--set rooms.x.history=maybe: rooms.x.history: 'maybe' is not a bool"),
], ids=["set-bad-value", "p-range", "port-text", "set-unknown-key", "set-room-key"])
@pytest.mark.parametrize("mode", ["check", "run"])
def test_bad_override_is_refused_naming_the_option(tmp_path, args, message, mode):
    write_conf(str(tmp_path), {"server.port": free_port(), "server.data_dir": str(tmp_path / "data")})
    r = run_cli(*(["--check"] if mode == "check" else []), "-c", str(tmp_path), *args)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr


@pytest.mark.parametrize("arg", ["server.port", "=9000", "  =1"])
def test_set_without_key_and_value_is_a_usage_error(tmp_path, arg):
    r = run_cli("--check", "-c", str(tmp_path), "--set", arg)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"--set {arg}: expected KEY=VALUE" in r.stderr, r.stderr


def test_running_server_keeps_its_overrides_across_a_reload(server_factory, tmp_path, monkeypatch):
    # The conf file names another port and other limits; the command line wins, also after SIGHUP re-reads
    # the files (which change max_body meanwhile).
    srv = server_factory({"server.port": free_port(), "limits.max_rooms_per_conn": 9, "limits.max_body": "1KiB"},
                         start=False)
    wrapper = tmp_path / "parleyd-with-args"
    wrapper.write_text(f'#!/bin/sh\nexec "{conftest.PARLEY_BIN}" "$@" -p {srv.port} '
                       '--set limits.max_rooms_per_conn=2\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "PARLEY_BIN", str(wrapper))
    srv.start()  # waits for srv.port: the one given with -p
    limits = ok(srv.client("json", hello=False).hello())["limits"]
    assert (limits["max_rooms"], limits["max_body"]) == (2, 1024)

    write_extra(srv, ["limits.max_body = 2KiB", "limits.max_rooms_per_conn = 7"])
    log = sighup(srv)
    assert "configuration reloaded" in srv.stderr()[log:], srv.stderr()[log:]
    limits = ok(srv.client("json", hello=False).hello())["limits"]
    assert (limits["max_rooms"], limits["max_body"]) == (2, 2048)


def test_server_refuses_to_start_with_bad_config(tmp_path):
    write_conf(str(tmp_path), {"server.port": 1, "no.such.key": 1}, name="10-bad.conf")
    r = run_cli("-c", str(tmp_path), timeout=10)
    assert r.returncode != 0
    assert "10-bad.conf:3:" in r.stderr, r.stderr


def shipped_conf_d(tmp_path):
    """A copy of the conf.d files the repository ships (tracked by git), without a user's own files next to
    them (README suggests conf.d/50-local.conf); the copy's directory."""
    src = os.path.join(REPO_ROOT, "conf.d")
    r = subprocess.run(["git", "-C", REPO_ROOT, "ls-files", "--", "conf.d"], capture_output=True, text=True)
    names = [os.path.basename(p) for p in r.stdout.split()] if r.returncode == 0 and r.stdout.strip() else \
        [n for n in os.listdir(src) if n.endswith(".conf") and "local" not in n]
    dst = tmp_path / "conf.d"
    dst.mkdir()
    for n in names:
        shutil.copy(os.path.join(src, n), dst / n)
    return str(dst)


def test_check_accepts_the_shipped_conf_d(tmp_path):
    r = run_cli("--check", "-c", shipped_conf_d(tmp_path))
    assert r.returncode == 0, r.stderr
