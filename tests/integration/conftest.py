"""Fixtures for Parley's integration tests: run the real parleyd binary on a free loopback port.

Environment:
  PARLEY_BIN       path of parleyd (default: <repo>/build/src/parleyd)
  PARLEY_SANITIZE  "1": fail a test whose server stderr shows an ASan/UBSan/LSan report
"""

import os
import signal
import socket
import subprocess
import time

import pytest

import wsclient

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PARLEY_BIN = os.environ.get("PARLEY_BIN") or os.path.join(REPO_ROOT, "build", "src", "parleyd")
SANITIZE = os.environ.get("PARLEY_SANITIZE") == "1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

JWT_SECRET = "integration-test-secret-0123456789"

STRING_KEYS = {"server.host", "server.data_dir", "server.web_root", "auth.jwt_secret"}

# Defaults for every test server; a test overrides any of them.
BASE_CONF = {
    "server.host": "127.0.0.1",
    "log.level": "info",
    "auth.allow_anonymous": True,
    "auth.jwt_secret": JWT_SECRET,
    "limits.hello_timeout": "3s",
    "limits.idle_timeout": "30s",
    # Every test client comes from 127.0.0.1: the per-address limits would make tests depend on each
    # other. The tests of those limits set them explicitly.
    "rate.connect_ip": "off",
    "limits.max_connections_per_ip": 0,
    "rate.send_ip": "off",
    # Tests send as fast as acks allow; the rate-limit tests set their own limits.
    "rate.send": "off",
    "rate.send_user": "off",
    "rate.join": "off",
    "rate.typing": "off",
}

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

_started_pids = set()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conf_value(key, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if key in STRING_KEYS:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def write_conf(conf_dir, conf, name="50-test.conf"):
    os.makedirs(conf_dir, exist_ok=True)
    path = os.path.join(conf_dir, name)
    with open(path, "w") as f:
        f.write("# written by tests/integration/conftest.py\n")
        for key, value in conf.items():
            f.write(f"{key} = {conf_value(key, value)}\n")
    return path


def normalize_conf(conf=None, **kw):
    """Merge a dict of dotted keys and kwargs in which "__" stands for "." (limits__max_frame)."""
    out = dict(conf or {})
    for k, v in kw.items():
        out[k.replace("__", ".")] = v
    return out


class ParleyServer:
    """One running parleyd."""

    def __init__(self, tmp_dir, conf, env=None):
        self.env = env
        self.tmp_dir = tmp_dir
        self.port = free_port()
        self.conf_dir = os.path.join(tmp_dir, "conf.d")
        self.data_dir = os.path.join(tmp_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        full = dict(BASE_CONF)
        full["server.port"] = self.port
        full["server.data_dir"] = self.data_dir
        full.update(conf)
        self.conf = full
        write_conf(self.conf_dir, full)
        self.stderr_path = os.path.join(tmp_dir, "parleyd.stderr")
        self.stdout_path = os.path.join(tmp_dir, "parleyd.stdout")
        self.proc = None
        self.returncode = None
        self.clients = []

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        if not os.access(PARLEY_BIN, os.X_OK):
            pytest.fail(f"parleyd not found or not executable at {PARLEY_BIN} (set PARLEY_BIN or build it)")
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        env = None
        if self.env:
            env = dict(os.environ)
            env.update(self.env)
        self.proc = subprocess.Popen([PARLEY_BIN, "-c", self.conf_dir], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, cwd=self.tmp_dir, env=env)
        _started_pids.add(self.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                self._reap()
                pytest.fail(f"parleyd exited with {self.proc.returncode} during start-up:\n{self.stderr()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"parleyd did not accept connections on port {self.port} within "
                            f"{START_TIMEOUT}s:\n{self.stderr()}")
            time.sleep(0.02)
        return self

    def client(self, codec="json", hello=True, token=None, **kw):
        """A connected Client; by default already past hello (as a guest, or with token)."""
        c = wsclient.Client(self.port, codec=codec, **kw)
        self.clients.append(c)
        if hello:
            r = c.hello(token=token)
            assert "ok" in r, f"hello failed: {r}"
        return c

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait (bounded). Returns the exit code, or None if it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self._reap()
                return None
        self._reap()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def _reap(self):
        self.returncode = self.proc.returncode
        _started_pids.discard(self.proc.pid)
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f and not f.closed:
                f.close()

    def close_clients(self):
        for c in self.clients:
            try:
                c.abort()
            except Exception:
                pass

    def sanitizer_reports(self):
        text = self.stderr()
        return [m for m in SANITIZER_MARKERS if m in text]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for i, srv in enumerate(getattr(item, "_parley_servers", [])):
            rep.sections.append((f"parleyd #{i} stderr (port {srv.port}, {srv.stderr_path})", srv.stderr()))


@pytest.fixture
def server_factory(tmp_path, request):
    """server_factory(conf_dict=None, start=True, env=None, **kw) -> a started ParleyServer (env: extra
    environment variables for parleyd). kwargs use "__" for ".":
    server_factory(limits__max_rooms_per_conn=2). Every server is stopped with SIGTERM at teardown and
    must exit 0 (and, with PARLEY_SANITIZE=1, without sanitizer reports)."""
    servers = []
    request.node._parley_servers = servers

    def make(conf=None, start=True, env=None, **kw):
        d = tmp_path / f"srv{len(servers)}"
        d.mkdir()
        srv = ParleyServer(str(d), normalize_conf(conf, **kw), env=env)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    problems = stop_servers(servers)
    if problems:
        pytest.fail("; ".join(problems))


def stop_servers(servers):
    """SIGTERM every server, wait (bounded), collect problems: exit code != 0, sanitizer reports."""
    problems = []
    for srv in servers:
        if srv.proc is None:
            continue
        already_exited = srv.proc.poll() is not None
        rc = srv.terminate()
        srv.close_clients()
        if rc is None:
            problems.append(f"parleyd (port {srv.port}) did not exit within {STOP_TIMEOUT}s of SIGTERM; killed")
        elif rc != 0:
            problems.append(f"parleyd (port {srv.port}) exited with {rc}"
                            + (" before teardown" if already_exited else " after SIGTERM"))
        if SANITIZE:
            found = srv.sanitizer_reports()
            if found:
                problems.append(f"parleyd (port {srv.port}) stderr has sanitizer reports: {found}")
    if problems:
        for srv in servers:
            print(f"---- parleyd stderr (port {srv.port}) ----\n{srv.stderr()}")
    return problems


@pytest.fixture
def server(server_factory):
    """A parleyd with the default test configuration."""
    return server_factory()


@pytest.fixture(scope="module")
def _module_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("shared")
    srv = ParleyServer(str(d), {})
    srv.start()
    yield srv
    problems = stop_servers([srv])
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def shared_server(_module_server, request):
    """One default-config parleyd shared by the tests of a module (for tests that leave no state that
    matters to others: use unique room names). Each test's clients are dropped at its end."""
    srv = _module_server
    assert srv.alive(), f"shared parleyd died:\n{srv.stderr()}"
    request.node._parley_servers = [srv]
    first = len(srv.clients)
    yield srv
    for c in srv.clients[first:]:
        try:
            c.abort()
        except Exception:
            pass
    del srv.clients[first:]
    assert srv.alive(), f"shared parleyd died during the test:\n{srv.stderr()}"


@pytest.fixture
def jwt_secret():
    return JWT_SECRET


def pytest_sessionfinish(session, exitstatus):
    # Never leave a process behind: kill (by PID) any parleyd this session started and did not reap.
    for pid in list(_started_pids):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        _started_pids.discard(pid)
