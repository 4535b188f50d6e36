#!/usr/bin/env python3
"""Run every example built by tests/embed/run.sh and check its behaviour over real sockets.

Each check starts the example (or the installed parleyd with the example's conf.d) on a free port with a
fresh data directory, talks to it with tests/integration/wsclient.py, and stops it with a signal,
checking that it drains and exits 0. Writes JUnit XML (--junit)."""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from xml.sax.saxutils import quoteattr

ap = argparse.ArgumentParser()
ap.add_argument("--root", required=True)
ap.add_argument("--prefix", required=True)
ap.add_argument("--bins", required=True)
ap.add_argument("--junit")
args = ap.parse_args()
sys.path.insert(0, os.path.join(args.root, "tests", "integration"))
import wsclient as W  # noqa: E402

WORK = tempfile.mkdtemp(prefix="parley-embed-check-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Proc:
    """A background process with its output in a file."""

    def __init__(self, name, argv, cwd=None):
        self.name = name
        self.out_path = os.path.join(WORK, f"{name}-{time.monotonic_ns()}.log")
        self.out = open(self.out_path, "w")
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(args.prefix, "lib"))
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, cwd=cwd, env=env)

    def output(self):
        self.out.flush()
        with open(self.out_path) as f:
            return f.read()

    def wait_port(self, port, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"{self.name} exited early ({self.p.returncode}):\n{self.output()}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name}: port {port} not listening:\n{self.output()}")

    def wait_output(self, pattern, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no output matching {pattern!r}:\n{self.output()}")

    def stop(self, sig=signal.SIGTERM, timeout=10, expect_rc=0):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s:\n{self.output()}")
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError(f"{self.name} exited {rc}, expected {expect_rc}:\n{self.output()}")
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def bin_(name):
    return os.path.join(args.bins, name)


def datadir():
    return tempfile.mkdtemp(dir=WORK, prefix="data-")


def client(port):
    c = W.Client(port)
    W.ok(c.hello())
    return c


def err_msg(reply):
    W.err_code(reply)
    return reply["err"]["msg"]


# ---- the checks ------------------------------------------------------------------------------------

def check_minimal(variant):
    port = free_port()
    p = Proc(f"embed-minimal-{variant}", [bin_(f"embed-minimal-{variant}"), str(port), datadir()])
    try:
        p.wait_port(port)
        a, b = client(port), client(port)
        W.ok(a.join("lobby"))
        W.ok(b.join("lobby"))
        W.ok(a.send("lobby", "hello from a"))
        ev = b.next_event("message", room="lobby")
        assert ev["body"] == "hello from a" and ev["seq"] == 1, ev
        p.p.send_signal(signal.SIGTERM)
        code, _ = a.expect_close()
        assert code == 1001, f"clients are closed with 1001 on stop, got {code}"
        p.stop()
    finally:
        p.kill()


def check_hooks(variant):
    port = free_port()
    p = Proc(f"embed-hooks-{variant}", [bin_(f"embed-hooks-{variant}"), str(port), datadir()])
    try:
        p.wait_port(port)
        c, watcher = client(port), client(port)
        assert "staff rooms are for staff" in err_msg(c.join("staff-room")), "on_join rejects guests"
        for room in ("support", "lobby"):
            W.ok(c.join(room))
        W.ok(watcher.join("support-audit"))
        W.ok(watcher.join("lobby"))
        assert "no spam here" in err_msg(c.send("lobby", "buy spam now")), "on_message rejects"
        W.ok(c.send("lobby", "oh darn it"))
        ev = watcher.next_event("message", room="lobby")
        assert ev["body"] == "oh **** it", f"on_message rewrites: {ev}"
        W.ok(c.send("support", "my printer is on fire"))
        ev = watcher.next_event("message", room="support-audit")
        assert ev["body"] == {"from": c.user["id"], "body": "my printer is on fire"}, f"routing: {ev}"
        assert ev["from"]["id"] == "parley", ev
        watcher.no_event("message", room="support-audit", timeout=0.3)  # exactly one copy
        p.stop(signal.SIGINT)
        out = p.output()
        assert "stopped: 1 rejected, 1 rewritten, 1 routed" in out, out
    finally:
        p.kill()


def check_publisher(variant):
    port = free_port()
    # forever until SIGINT: a client sees ticks and itself in the presence count
    p = Proc(f"embed-publisher-{variant}", [bin_(f"embed-publisher-{variant}"), str(port), "100", "0", datadir()])
    try:
        p.wait_port(port)
        c = client(port)
        W.ok(c.join("ticks"))
        evs = c.messages("ticks", 3)
        ticks = [e["body"]["tick"] for e in evs]
        assert ticks == list(range(ticks[0], ticks[0] + 3)), f"consecutive ticks: {ticks}"
        assert all(e["from"]["id"] == "parley" for e in evs), evs
        assert evs[-1]["body"]["present"] >= 1, f"presence read by the app counts the client: {evs[-1]}"
        p.stop(signal.SIGINT)
        out = p.output()
        assert "loop closed: ok" in out, out
    finally:
        p.kill()
    # COUNT ticks then it stops by itself and the caller's loop closes cleanly
    port = free_port()
    p = Proc(f"embed-publisher-{variant}-count", [bin_(f"embed-publisher-{variant}"), str(port), "50", "5",
                                                  datadir()])
    try:
        assert p.p.wait(15) == 0, p.output()
        out = p.output()
        assert "tick 5 -> ticks" in out and "stopped after 5 ticks" in out and "loop closed: ok" in out, out
    finally:
        p.kill()


def check_bot():
    port, data = free_port(), datadir()
    server = Proc("bot-server", [bin_("embed-minimal-find_package"), str(port), data])
    bot = None
    try:
        server.wait_port(port)
        bot = Proc("client-bot", [bin_("client-bot-cmake"), "127.0.0.1", str(port), "lobby", "bot"])
        bot.wait_output(r"joined lobby at seq")
        c = client(port)
        W.ok(c.join("lobby"))
        W.ok(c.send("lobby", "hello @bot, are you there?"))
        ev = c.next_event("message", room="lobby", timeout=5)
        while ev["from"]["id"] == c.user["id"]:
            ev = c.next_event("message", room="lobby", timeout=5)
        assert ev["body"].startswith(f"hi {c.user['name']}, you said: hello @bot"), ev
        W.ok(c.send("lobby", "no mention here"))
        c.next_event("message", room="lobby", body="no mention here")  # our own message, and no answer:
        c.no_event("message", room="lobby", timeout=0.3)
        # restart the server: the bot reconnects and rejoins with since
        server.stop()
        bot.wait_output(r"reconnecting in")
        server = Proc("bot-server-2", [bin_("embed-minimal-find_package"), str(port), data])
        server.wait_port(port)
        m = bot.wait_output(r"(?s)reconnecting in.*joining lobby \(since (\d+)\)", timeout=15)
        assert int(m.group(1)) >= 3, f"rejoin with since = last seq seen: {m.group(0)[-40:]}"
        bot.wait_output(r"(?s)since [1-9].*joined lobby at seq")
        c2 = client(port)
        W.ok(c2.join("lobby"))
        W.ok(c2.send("lobby", "@bot still alive?"))
        for _ in range(5):
            ev = c2.next_event("message", room="lobby", timeout=5)
            if ev["from"]["id"] != c2.user["id"]:
                break
        assert "you said: @bot still alive?" in ev["body"], ev
        bot.stop()
        server.stop()
    finally:
        if bot:
            bot.kill()
        server.kill()


def conf_copy(example, extra=""):
    """The example's conf.d with relative paths made absolute (so it runs from a temporary dir)."""
    src = os.path.join(args.root, "examples", example, "conf.d")
    dst = tempfile.mkdtemp(dir=WORK, prefix=f"conf-{example}-")
    base = os.path.join(args.root, "examples", example)
    for name in sorted(os.listdir(src)):
        text = open(os.path.join(src, name)).read()
        text = re.sub(r"(?m)^((?:scripts|plugins)\.\w+\.path\s*=\s*)(\S+)",
                      lambda m: m.group(1) + os.path.normpath(os.path.join(base, m.group(2))), text)
        open(os.path.join(dst, name), "w").write(text)
    port = free_port()
    open(os.path.join(dst, "99-test.conf"), "w").write(
        f'server.port = {port}\nserver.data_dir = "{datadir()}"\n{extra}')
    return dst, port


def check_lua():
    conf, port = conf_copy("lua-moderation")
    p = Proc("lua-moderation", [os.path.join(args.prefix, "bin", "parleyd"), "-c", conf])
    try:
        p.wait_port(port)
        c = client(port)
        W.ok(c.join("lobby"))
        assert "mind your language" in err_msg(c.send("lobby", "what the heck")), "profanity.lua rejects"
        err_msg(c.send("lobby", "see http://evil.test/x"))  # links.lua: no links
        W.ok(c.send("lobby", "see https://example.com/ok"))  # allow-listed host
        W.ok(c.send("lobby", "a clean message"))
        W.ok(c.join("slow-1"))
        W.ok(c.send("slow-1", "first"))
        assert "slow mode" in err_msg(c.send("slow-1", "second")), "slowmode.lua"
        p.stop()
    finally:
        p.kill()


def check_plugin():
    so = os.path.join(args.bins, "msgpolicy.so")
    assert os.path.exists(so), "examples/c-plugin built msgpolicy.so"
    conf, port = conf_copy("c-plugin")
    # the conf.d expects build/msgpolicy.so next to it: point it at the one built against the prefix
    with open(os.path.join(conf, "99-test.conf"), "a") as f:
        f.write(f'plugins.policy.path = "{so}"\nplugins.quiet.path = "{so}"\n')
    p = Proc("c-plugin", [os.path.join(args.prefix, "bin", "parleyd"), "-c", conf])
    try:
        p.wait_port(port)
        c = client(port)
        W.ok(c.join("lobby"))
        W.ok(c.join("quiet-1"))
        assert "too large" in err_msg(c.send("lobby", "x" * 100)), "max_bytes"
        assert "refused by room policy" in err_msg(c.send("lobby", "go to http://x.test")), "deny"
        assert "only text" in err_msg(c.send("quiet-1", {"a": 1})), "require_string"
        W.ok(c.send("quiet-1", "fine"))
        W.ok(c.send("lobby", {"a": 1}))
        p.stop()
    finally:
        p.kill()


CHECKS = []
for v in ("find_package", "cmake_pkgconfig", "cc_pkgconfig"):
    CHECKS.append((f"embed-minimal ({v}): chat between two clients, 1001 on stop", lambda v=v: check_minimal(v)))
    CHECKS.append((f"embed-hooks ({v}): join gate, reject, rewrite, routing", lambda v=v: check_hooks(v)))
    CHECKS.append((f"embed-publisher ({v}): ticks arrive, presence, clean loop close",
                   lambda v=v: check_publisher(v)))
CHECKS.append(("embed-publisher (static): ticks arrive, clean loop close", lambda: check_publisher("static")))
CHECKS.append(("client-bot: answers mentions, reconnects and rejoins with since", check_bot))
CHECKS.append(("lua-moderation: shipped scripts reject over sockets", check_lua))
CHECKS.append(("c-plugin: msgpolicy built against the prefix enforces its policy", check_plugin))

results = []
for name, fn in CHECKS:
    t0 = time.monotonic()
    try:
        fn()
        results.append((name, None, time.monotonic() - t0))
        print(f"ok    {name}")
    except Exception:  # noqa: BLE001 - report every failure and go on
        msg = traceback.format_exc()
        results.append((name, msg, time.monotonic() - t0))
        print(f"FAIL  {name}\n{msg}")
    sys.stdout.flush()

if args.junit:
    with open(args.junit, "w") as f:
        fails = sum(1 for r in results if r[1])
        f.write(f'<testsuite name="embed-examples" tests="{len(results)}" failures="{fails}">\n')
        for name, msg, dt in results:
            f.write(f'<testcase classname="embed" name={quoteattr(name)} time="{dt:.2f}"')
            if msg:
                f.write(f'><failure message="failed">{msg.replace("&", "&amp;").replace("<", "&lt;")}'
                        "</failure></testcase>\n")
            else:
                f.write("/>\n")
        f.write("</testsuite>\n")
shutil.rmtree(WORK, ignore_errors=True)
sys.exit(1 if any(r[1] for r in results) else 0)
