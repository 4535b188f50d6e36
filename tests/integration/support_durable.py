"""Shared helpers for the durability / session acceptance tests (test_durability.py,
test_presence_recovery.py): tokens, connecting as a user, kill -9 / SIGTERM restarts of a ParleyServer on
the same data dir and port, paged history reads, a MongoDB-wire server for the `mongo` backend, a
throwaway PostgreSQL server for the `postgres` backend, and a small TCP proxy used to simulate a store outage
when the database server is not ours to stop.

Every wait here is bounded; every process started here is stopped by its PID.
"""

import os
import select
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import JWT_SECRET, REPO_ROOT
from jwtmint import mint
from wsclient import Client, ConnectionClosed, Timeout, WSError, ok

MONGO_SCRIPT = os.path.join(REPO_ROOT, "tests", "support", "mongo-server")
JONGODB_BIN = os.path.join(REPO_ROOT, "tests", "support", "node_modules", "@jongodb",
                           "memory-server-bin-linux-x64-gnu", "bin", "jongodb")

PG_SCRIPT = os.path.join(REPO_ROOT, "tests", "support", "pg-server")

# Errors a send may get while the store cannot take it: retry with the same cmid.
RETRYABLE = ("store_unavailable", "overloaded")
# What a client sees when the server (or the network) goes away under it.
CONN_ERRORS = (ConnectionClosed, WSError, OSError)


def token(sub, name=None):
    return mint(JWT_SECRET, sub=sub, name=name or sub.title())


def connect(srv, sub, codec="json", timeout=5.0, rcvbuf=None, **hello_fields):
    """A Client of srv that said hello as user `sub`; returns (client, hello ok map)."""
    c = Client(srv.port, codec=codec, timeout=timeout, rcvbuf=rcvbuf, name=f"{sub}/{codec}")
    srv.clients.append(c)
    r = ok(c.hello(token=token(sub), **hello_fields))
    return c, r


# ---- server restarts --------------------------------------------------------------------------------


def kill9(srv):
    """kill -9 parleyd (by its PID) and reap it. Its clients are dropped (they are dead anyway)."""
    if srv.proc is not None and srv.proc.poll() is None:
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)
    srv._reap()
    srv.close_clients()


def stop_term(srv):
    """SIGTERM parleyd and require a clean exit (0)."""
    rc = srv.terminate()
    srv.close_clients()
    assert rc == 0, f"parleyd exited with {rc} after SIGTERM:\n{srv.stderr()[-3000:]}"


def restart(srv, how="term"):
    """Stop (how = "term": SIGTERM; "kill": kill -9) and start again on the same conf.d, data dir and port."""
    if how == "kill":
        kill9(srv)
    else:
        stop_term(srv)
    srv.start()
    return srv


# ---- reading ------------------------------------------------------------------------------------------


def history_all(c, room, page=50, max_pages=500):
    """Every stored message of room, paging forwards from after=0. Checks each page's shape as it goes."""
    out = []
    after = 0
    for _ in range(max_pages):
        r = ok(c.request("history", room=room, after=after, limit=page))
        msgs = r["messages"]
        seqs = [m["seq"] for m in msgs]
        assert seqs == sorted(seqs), f"history page not in ascending seq order: {seqs}"
        assert all(s > after for s in seqs), f"history after={after} returned {seqs}"
        assert r["more"] == (len(msgs) == page), f"more={r['more']} with {len(msgs)} of limit {page}"
        out.extend(msgs)
        if not msgs or not r["more"]:
            return out
        after = seqs[-1]
    raise AssertionError(f"history of {room} did not end within {max_pages} pages")


def history_all_backwards(c, room, before=None, stop_at=1, page=50, max_pages=500):
    """Page backwards from `before` (None: the newest) until a page reaches seq <= stop_at or ends.
    Returns the messages in ascending order."""
    pages = []
    for _ in range(max_pages):
        fields = {"room": room, "limit": page}
        if before is not None:
            fields["before"] = before
        r = ok(c.request("history", **fields))
        msgs = r["messages"]
        seqs = [m["seq"] for m in msgs]
        assert seqs == sorted(seqs), f"history page not in ascending seq order: {seqs}"
        if before is not None:
            assert all(s < before for s in seqs), f"history before={before} returned {seqs}"
        assert r["more"] == (len(msgs) == page), f"more={r['more']} with {len(msgs)} of limit {page}"
        pages.insert(0, msgs)
        if not msgs or not r["more"] or seqs[0] <= stop_at:
            return [m for p in pages for m in p]
        before = seqs[0]
    raise AssertionError(f"history of {room} did not end within {max_pages} pages")


def events_of(c, timeout, ev=None, room=None):
    """Read for `timeout` seconds (or until the connection closes) and return the buffered events
    (optionally only of kind ev / in room), removing them from the buffer."""
    try:
        c.drain(timeout)
    except CONN_ERRORS:
        pass
    got = [e for e in c.events if (ev is None or e.get("ev") == ev) and (room is None or e.get("room") == room)]
    for e in got:
        c.events.remove(e)
    return got


# ---- MongoDB-wire server ---------------------------------------------------------------------------


def unique_db(tag="it"):
    return f"parley_{tag}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def mongo_conf(uri, database):
    """conf.d keys for the mongo backend (values quoted: a URI may hold characters the parser cares about)."""
    return {"store.backend": "mongo", "store.mongo.uri": f'"{uri}"', "store.mongo.database": f'"{database}"'}


class MongoServer:
    """The MongoDB-wire emulator started with tests/support/mongo-server (or PARLEY_TEST_MONGO_URI's server,
    which is never stopped here). stop()/start() keep the port, so a parleyd keeps its URI."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.pidfile = os.path.join(work_dir, "mongo.pid")
        self.external = os.environ.get("PARLEY_TEST_MONGO_URI") or None
        self.uri = self.external
        self.port = None
        self.running = False

    def start(self, port=None):
        if self.external:
            self.running = True
            return self.uri
        args = [MONGO_SCRIPT, self.pidfile]
        if port is not None:
            args.append(f"--port={port}")
        deadline = time.monotonic() + 60
        while True:
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            if p.returncode == 0:
                break
            # the old socket may linger a moment after a stop: retry on the same port (bounded)
            if port is None or time.monotonic() > deadline:
                pytest.fail(f"cannot start the MongoDB-wire server: {p.stderr.strip()}")
            time.sleep(0.3)
        self.uri = p.stdout.strip().splitlines()[-1]
        hostport = self.uri.split("//", 1)[1].split("/", 1)[0]
        self.port = int(hostport.rsplit(":", 1)[1])
        self.running = True
        return self.uri

    def stop(self):
        if self.external or not self.running:
            self.running = False
            return
        subprocess.run([MONGO_SCRIPT, "stop", self.pidfile], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
        self.running = False

    def restart_same_port(self):
        return self.start(port=self.port)

    def base_uri(self):
        """The URI without its path/options: mongodb://HOST:PORT."""
        return self.uri.split("//", 1)[0] + "//" + self.uri.split("//", 1)[1].split("/", 1)[0]


# ---- PostgreSQL server ------------------------------------------------------------------------------


def pg_conf(uri, schema):
    """conf.d keys for the postgres backend: one schema per test (created by parleyd)."""
    return {"store.backend": "postgres", "store.postgres.uri": f'"{uri}"', "store.postgres.schema": f'"{schema}"'}


class PgServer:
    """A throwaway PostgreSQL started with tests/support/pg-server (or PARLEY_TEST_POSTGRES_URI's server,
    which is never stopped here). crash() stops it as a crash would (pg_ctl stop -m immediate); start()
    after it starts the same cluster again on the same port (its data kept), so a parleyd keeps its URI."""

    def __init__(self, work_dir, own=False):
        """own: start a server of our own even when PARLEY_TEST_POSTGRES_URI names one (to crash it)."""
        self.state = os.path.join(work_dir, "pg.state")
        self.external = None if own else (os.environ.get("PARLEY_TEST_POSTGRES_URI") or None)
        self.uri = self.external
        self.running = False

    def _run(self, *args, timeout=120):
        return subprocess.run([PG_SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)

    def start(self, must=True):
        """Start (or restart after crash()) the server; returns its URI. must=False: None if it cannot."""
        if not self.external:
            deadline = time.monotonic() + 60
            while True:
                p = self._run("start", self.state)
                if p.returncode == 0:
                    break
                # after a crash the port may not be free at once: the script retries, and so do we (bounded)
                if not os.path.exists(self.state) or time.monotonic() > deadline:
                    if not must:
                        return None
                    pytest.fail(f"cannot start PostgreSQL: {p.stderr.strip()}")
                time.sleep(0.3)
            self.uri = p.stdout.strip().splitlines()[-1]
        self.running = True
        return self.uri

    def crash(self):
        assert not self.external, "not ours to crash"
        p = self._run("crash", self.state)
        assert p.returncode == 0, p.stderr
        self.running = False

    def stop(self):
        if not self.external and os.path.exists(self.state):
            self._run("stop", self.state)
        self.running = False

    def psql(self, schema, sql):
        """Run sql in schema with psql; returns its rows as lists of strings."""
        p = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.uri, "-c",
                            f'SET search_path = "{schema}"', "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        assert p.returncode == 0, f"psql {sql!r}: {p.stderr}"
        return [line.split("\t") for line in p.stdout.splitlines() if line]


class TcpProxy:
    """A threaded TCP proxy 127.0.0.1:port -> target. down() closes the listener and every proxied
    connection; up() listens again on the same port. Used to take an external MongoDB 'down'."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = None
        self.lsock = None
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None

    def up(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port or 0))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.lsock = s
        self.stopping.clear()
        self.thread = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
        self.thread.start()

    def _accept_loop(self, lsock):
        while not self.stopping.is_set():
            try:
                r, _, _ = select.select([lsock], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                cs, _ = lsock.accept()
            except OSError:
                return
            try:
                ts = socket.create_connection(self.target, timeout=2)
            except OSError:
                cs.close()
                continue
            with self.lock:
                self.conns += [cs, ts]
            threading.Thread(target=self._pump, args=(cs, ts), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while not self.stopping.is_set():
                r, _, _ = select.select(socks, [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass

    def down(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass
            self.conns = []
        if self.thread:
            self.thread.join(2)


# ---- a client with an outbox ------------------------------------------------------------------------


class OutboxSender:
    """Sends body/cmid pairs to one room over a (replaceable) connection, pipelined up to `window`
    requests in flight. It remembers every cmid it has not seen acknowledged, so that after a reconnect
    it resends exactly those, with the same cmid (what the SDK's outbox does)."""

    def __init__(self, room, cmids, window=16):
        self.room = room
        self.todo = list(cmids)  # not sent yet on the current connection (resends first)
        self.inflight = {}  # request id -> cmid, on the current connection
        self.acks = {}  # cmid -> ack map (the first ack; later duplicates must agree)
        self.dups = 0
        self.retryable = 0
        self.codes = {}  # error code -> how many sends got it
        self.window = window
        self.client = None
        self.rid = 0

    def attach(self, client):
        """A fresh connection (already past hello and join): everything unacked goes first, in cmid order."""
        lost = list(self.inflight.values())
        self.inflight = {}
        self.client = client
        client.log = None
        self.todo = lost + [c for c in self.todo if c not in lost]

    @property
    def done(self):
        return not self.todo and not self.inflight

    def step(self, timeout=0.5):
        """Fill the window, then handle one reply. Raises CONN_ERRORS when the connection goes away."""
        c = self.client
        while self.todo and len(self.inflight) < self.window:
            cmid = self.todo.pop(0)
            self.rid += 1
            rid = f"s{self.rid}"
            self.inflight[rid] = cmid
            c.send_obj({"id": rid, "op": "send", "room": self.room, "body": {"n": cmid}, "cmid": cmid})
        if not self.inflight:
            return
        try:
            r = c.next_reply(timeout=timeout)
        except Timeout:
            return
        except CONN_ERRORS:
            # replies that arrived before the connection died still count
            while c.replies:
                self._handle(c.replies.popleft())
            raise
        c.events.clear()  # our own message events are not needed here
        self._handle(r)

    def _handle(self, r):
        rid = r.get("re")
        cmid = self.inflight.pop(rid, None)
        assert cmid is not None, f"reply to an unknown request: {r}"
        if "ok" in r:
            a = r["ok"]
            if a.get("duplicate"):
                self.dups += 1
            prev = self.acks.get(cmid)
            if prev is not None:
                assert (prev["seq"], prev["mid"]) == (a["seq"], a["mid"]), \
                    f"cmid {cmid} acknowledged twice with different messages: {prev} vs {a}"
            else:
                self.acks[cmid] = a
        else:
            code = r["err"]["code"]
            assert code in RETRYABLE, f"send {cmid} failed with {r}"
            self.retryable += 1
            self.codes[code] = self.codes.get(code, 0) + 1
            self.todo.insert(0, cmid)
            time.sleep(0.05)

