"""Durable history and message consistency, against every store backend (issue 3 "Acceptance";
docs/protocol.md "send", "history", "join"; docs/storage.md).

Every test runs with SQLite (the default), with the MongoDB backend against the MongoDB-wire emulator started
by tests/support/mongo-server (or the server in PARLEY_TEST_MONGO_URI), and with the PostgreSQL backend
against a throwaway server started by tests/support/pg-server (or the server in PARLEY_TEST_POSTGRES_URI).
Each MongoDB test uses its own database and keeps it small (the emulator's inserts slow down past a few
hundred documents); each PostgreSQL test uses its own schema.
"""

import collections
import os
import random
import sqlite3
import threading
import time

import pytest

from support_durable import (CONN_ERRORS, RETRYABLE, MongoServer, OutboxSender, PgServer, TcpProxy, connect,
                             events_of, history_all, history_all_backwards, mongo_conf, pg_conf, restart,
                             unique_db)
from wsclient import err_code, http_get, ok, parse_metrics

MSG_FIELDS = {"ev", "room", "seq", "mid", "ts", "from", "body", "cmid"}


@pytest.fixture(scope="module")
def mongo(tmp_path_factory):
    m = MongoServer(str(tmp_path_factory.mktemp("mongo")))
    m.start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    pg = PgServer(str(tmp_path_factory.mktemp("pg")))
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "sqlite-merging", "mongo", "postgres"])
def backend(request):
    """(name, conf dict) of the store backend under test. sqlite-merging: an inbox of 32 rows, so that new
    messages move from the inbox to the messages table every 16 sends, during every test (kills included)."""
    if request.param == "mongo":
        m = request.getfixturevalue("mongo")
        return "mongo", mongo_conf(m.uri, unique_db("dur"))
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres")
        schema = unique_db("dur")
        request.node.pg_schema = schema
        return "postgres", pg_conf(pg.uri, schema)
    if request.param == "sqlite-merging":
        return "sqlite", {"store.backend": "sqlite", "store.sqlite.inbox_rows": 32}
    return "sqlite", {"store.backend": "sqlite"}


def send_n(c, room, prefix, n, start=1):
    return [ok(c.send(room, f"{prefix}{i}", cmid=f"{prefix}-{i}")) for i in range(start, start + n)]


# ---- crash test -------------------------------------------------------------------------------------


def test_kill9_at_random_moments_loses_no_acknowledged_message(server_factory, backend):
    """A client sends N messages as fast as acks allow (16 in flight) while parleyd is kill -9'd at random
    moments, several times; after each restart (same data) the client reconnects and resends every message
    it has no ack for, with the same cmid. At the end history holds every message exactly once, seqs 1..N
    without a gap, each acknowledged message under the seq and mid its ack named."""
    name, conf = backend
    n = {"sqlite": 3000, "postgres": 1500}.get(name, 150)
    kills = 3 if name == "mongo" else 5
    seed = int(os.environ.get("PARLEY_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print(f"crash test: backend={name} n={n} kills={kills} seed={seed}")
    srv = server_factory(conf, **{"log.level": "warn"})
    room = "crash"
    cmids = [f"c-{i}" for i in range(1, n + 1)]
    out = OutboxSender(room, cmids, window=16)

    # one kill in each of `kills` equal slices of [10%, 90%] of the acks, at a random point of the slice,
    # plus a random few milliseconds: the server is always in the middle of a pipelined burst
    lo, hi = int(n * 0.1), int(n * 0.9)
    width = (hi - lo) // kills
    thresholds = [lo + i * width + rng.randrange(width) for i in range(kills)]
    killed = threading.Event()
    restarted = threading.Event()
    restarted.set()
    stop = threading.Event()
    kill_log = []

    def killer():
        for th in thresholds:
            if not restarted.wait(60) or stop.is_set():
                return
            while len(out.acks) < th:
                if stop.wait(0.001):
                    return
            time.sleep(rng.uniform(0, 0.01))
            if stop.is_set():
                return
            restarted.clear()
            kill_log.append((th, len(out.acks)))
            os.kill(srv.proc.pid, 9)
            killed.set()

    # an observer in the room (its own user) that reconnects after every kill and joins with since = the
    # last seq it has: it must see every seq exactly once, in order (live, or replayed after a restart)
    obs = {"last": 0, "problems": [], "reconnects": 0}

    def observer():
        c = None
        while not stop.is_set():
            try:
                if c is None:
                    c, _ = connect(srv, "observer", timeout=5)
                    c.log = None
                    ok(c.join(room, since=obs["last"]))
                    obs["reconnects"] += 1
                for e in events_of(c, 0.1, ev="message", room=room):
                    if e["seq"] != obs["last"] + 1:
                        obs["problems"].append(f"observer got seq {e['seq']} after {obs['last']}")
                    obs["last"] = max(obs["last"], e["seq"])
                if c.closed:
                    c = None
            except (AssertionError, AttributeError, *CONN_ERRORS):
                # (AttributeError: the main thread aborted this client's socket while restarting parleyd)
                c = None
                stop.wait(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    ot = threading.Thread(target=observer, daemon=True)
    ot.start()
    deadline = time.monotonic() + (120 if name == "mongo" else 90)
    need_connect = True
    client = None
    try:
        while not out.done:
            assert time.monotonic() < deadline, \
                f"not done in time: {len(out.acks)}/{n} acked, kills so far {kill_log}"
            try:
                if need_connect:
                    client, _ = connect(srv, "crasher", timeout=10)
                    ok(client.join(room))
                    out.attach(client)
                    need_connect = False
                out.step()
            except CONN_ERRORS as e:
                assert killed.wait(10), f"connection lost though nobody killed parleyd: {e!r}\n{srv.stderr()[-2000:]}"
                killed.clear()
                srv.proc.wait(10)
                srv._reap()
                srv.close_clients()
                srv.start()
                restarted.set()
                need_connect = True
        # the observer catches up (bounded)
        t_end = time.monotonic() + 30
        while obs["last"] < n and time.monotonic() < t_end:
            time.sleep(0.05)
    finally:
        stop.set()
        restarted.set()
        t.join(5)
        ot.join(5)
    assert len(kill_log) == kills, f"only {len(kill_log)} of {kills} kills happened: {kill_log}"
    print(f"kills at acks {kill_log}; duplicates on resend: {out.dups}; retryable errors: {out.retryable}; "
          f"observer joined {obs['reconnects']} times, last seq {obs['last']}")
    assert not obs["problems"], "observer saw a gap or a duplicate:\n" + "\n".join(obs["problems"][:20])
    assert obs["last"] == n, f"observer stopped at seq {obs['last']} of {n}"

    def check(c):
        msgs = history_all(c, room, page=200)
        seqs = [m["seq"] for m in msgs]
        assert seqs == list(range(1, len(seqs) + 1)), f"seqs not 1..n without gap: {seqs[:5]}…"
        counts = collections.Counter(m["cmid"] for m in msgs)
        dup = [k for k, v in counts.items() if v != 1]
        assert not dup, f"cmids stored more than once: {dup[:10]}"
        assert set(counts) == set(cmids), f"missing cmids: {sorted(set(cmids) - set(counts))[:10]}"
        assert len(msgs) == n
        for m in msgs:
            assert set(m) == MSG_FIELDS, m
            a = out.acks[m["cmid"]]
            assert (m["seq"], m["mid"], m["ts"]) == (a["seq"], a["mid"], a["ts"]), (m, a)
            assert m["body"] == {"n": m["cmid"]}
            assert m["from"]["id"] == "crasher"
        assert ok(c.join(room))["seq"] == n

    check(client)
    # and once more after a clean restart: what was checked is what is on disk / in the database
    restart(srv, "term")
    c, _ = connect(srv, "crasher", timeout=10)
    check(c)


# ---- restart keeps seq ----------------------------------------------------------------------------------


def test_restart_keeps_seq(server_factory, backend):
    _, conf = backend
    srv = server_factory(conf)
    a, _ = connect(srv, "ann")
    ok(a.join("keep"))
    assert [x["seq"] for x in send_n(a, "keep", "a", 3)] == [1, 2, 3]
    restart(srv, "term")
    a, _ = connect(srv, "ann")
    assert ok(a.join("keep"))["seq"] == 3
    assert [x["seq"] for x in send_n(a, "keep", "b", 3)] == [4, 5, 6]
    restart(srv, "kill")
    a, _ = connect(srv, "ann")
    assert ok(a.join("keep"))["seq"] == 6
    assert ok(a.send("keep", "c", cmid="c-1"))["seq"] == 7
    msgs = history_all(a, "keep")
    assert [m["seq"] for m in msgs] == list(range(1, 8))
    assert [m["cmid"] for m in msgs] == ["a-1", "a-2", "a-3", "b-1", "b-2", "b-3", "c-1"]
    # another room is independent and starts at 1
    ok(a.join("keep2"))
    assert ok(a.send("keep2", "x", cmid="k2-1"))["seq"] == 1


# ---- dedupe ---------------------------------------------------------------------------------------------


def test_resend_same_cmid_after_reconnect_and_restart_is_a_duplicate(server_factory, backend):
    _, conf = backend
    srv = server_factory(conf)
    ann, h = connect(srv, "ann")
    bob, _ = connect(srv, "bob")
    ok(ann.join("dd"))
    ok(bob.join("dd"))
    first = ok(ann.send("dd", "one", cmid="k-1"))
    ev = bob.next_event("message", room="dd")
    assert (ev["seq"], ev["mid"], ev["cmid"]) == (first["seq"], first["mid"], "k-1")

    # the connection drops (ack "lost"); a new connection resends with the same cmid
    ann.abort()
    ann2, _ = connect(srv, "ann", codec="msgpack", resume=h["resume_token"])
    ok(ann2.join("dd", since=first["seq"]))
    again = ok(ann2.send("dd", "one (retry, other body)", cmid="k-1"))
    assert again.get("duplicate") is True, again
    assert {k: again[k] for k in ("room", "seq", "mid", "ts")} == {k: first[k] for k in ("room", "seq", "mid", "ts")}
    bob.no_event("message", room="dd", timeout=0.5)
    ann2.no_event("message", room="dd", timeout=0.1)
    nxt = ok(ann2.send("dd", "two", cmid="k-2"))
    assert nxt["seq"] == first["seq"] + 1 and "duplicate" not in nxt
    assert bob.next_event("message", room="dd")["seq"] == nxt["seq"]
    bob.no_event("message", room="dd", timeout=0.3)

    # across a kill -9 too
    restart(srv, "kill")
    bob, _ = connect(srv, "bob")
    ok(bob.join("dd", since=nxt["seq"]))
    ann3, _ = connect(srv, "ann")
    ok(ann3.join("dd", since=nxt["seq"]))
    for cmid, orig in (("k-1", first), ("k-2", nxt)):
        r = ok(ann3.send("dd", "retry after restart", cmid=cmid))
        assert r.get("duplicate") is True and (r["seq"], r["mid"], r["ts"]) == (orig["seq"], orig["mid"], orig["ts"])
    bob.no_event("message", room="dd", timeout=0.5)
    # the same cmid from another user is another message
    other = ok(bob.send("dd", "bob's", cmid="k-1"))
    assert other["seq"] == nxt["seq"] + 1 and "duplicate" not in other
    msgs = history_all(bob, "dd")
    assert [(m["seq"], m["cmid"], m["from"]["id"]) for m in msgs] == \
        [(1, "k-1", "ann"), (2, "k-2", "ann"), (3, "k-1", "bob")]
    assert msgs[0]["body"] == "one"


# ---- history paging ------------------------------------------------------------------------------------


def check_paging(c, room, n, acks):
    def page(**kw):
        r = ok(c.request("history", room=room, **kw))
        assert r["room"] == room
        for m in r["messages"]:
            assert set(m) == MSG_FIELDS and m["ev"] == "message" and m["room"] == room, m
            a = acks[m["seq"] - 1]
            assert (m["mid"], m["ts"], m["cmid"], m["body"]) == (a["mid"], a["ts"], f"h-{m['seq']}", f"h{m['seq']}")
        return [m["seq"] for m in r["messages"]], r["more"]

    # newest first pages, backwards, limit 5: 19-23, 14-18, 9-13, 4-8, 1-3
    before = None
    got = []
    for _ in range(10):
        kw = {"limit": 5}
        if before is not None:
            kw["before"] = before
        seqs, more = page(**kw)
        got.append((seqs, more))
        if not more:
            break
        before = seqs[0]
    assert got == [([19, 20, 21, 22, 23], True), ([14, 15, 16, 17, 18], True), ([9, 10, 11, 12, 13], True),
                   ([4, 5, 6, 7, 8], True), ([1, 2, 3], False)], got
    # forwards from after=0, limit 5
    after = 0
    got = []
    for _ in range(10):
        seqs, more = page(after=after, limit=5)
        got.append((seqs, more))
        if not more:
            break
        after = seqs[-1]
    assert got == [([1, 2, 3, 4, 5], True), ([6, 7, 8, 9, 10], True), ([11, 12, 13, 14, 15], True),
                   ([16, 17, 18, 19, 20], True), ([21, 22, 23], False)], got
    # pages at the ring's edge (ring_size 4: seqs 20..23 in memory) and across it
    assert page(limit=4) == ([20, 21, 22, 23], True)
    assert page(limit=6) == ([18, 19, 20, 21, 22, 23], True)
    assert page(before=22, limit=3) == ([19, 20, 21], True)
    assert page(after=18, limit=3) == ([19, 20, 21], True)
    assert page(after=21, limit=3) == ([22, 23], False)
    assert page(after=22, limit=1) == ([23], True)
    assert page(after=23, limit=5) == ([], False)
    assert page(before=1, limit=5) == ([], False)
    # both bounds: after < seq < before
    assert page(after=5, before=10, limit=50) == ([6, 7, 8, 9], False)
    assert page(after=5, before=10, limit=2) == ([6, 7], True)
    assert page(before=10, limit=2) == ([8, 9], True)
    assert page(after=19, before=23, limit=50) == ([20, 21, 22], False)
    # a page larger than everything
    seqs, more = page(limit=100)
    assert seqs == list(range(1, n + 1)) and more is False
    # helpers agree
    assert [m["seq"] for m in history_all(c, room, page=7)] == list(range(1, n + 1))
    assert [m["seq"] for m in history_all_backwards(c, room, page=7)] == list(range(1, n + 1))


def test_history_pages_both_directions_from_ring_and_store(server_factory, backend):
    _, conf = backend
    srv = server_factory(conf, **{"history.ring_size": 4})
    a, _ = connect(srv, "ann")
    ok(a.join("hp"))
    n = 23
    acks = [ok(a.send("hp", f"h{i}", cmid=f"h-{i}")) for i in range(1, n + 1)]
    assert [x["seq"] for x in acks] == list(range(1, n + 1))
    b, _ = connect(srv, "bob", codec="msgpack")
    ok(b.join("hp"))
    check_paging(a, "hp", n, acks)
    check_paging(b, "hp", n, acks)
    # after a restart the ring is cold: the same pages come from the store
    restart(srv, "term")
    a, _ = connect(srv, "ann")
    check_paging(a, "hp", n, acks)
    # history of a room this connection never joined / that has no messages
    seqs = ok(a.request("history", room="hp-empty"))
    assert seqs["messages"] == [] and seqs["more"] is False


# ---- ephemeral rooms -------------------------------------------------------------------------------------


def test_ephemeral_rooms_deliver_live_store_nothing_and_restart_seq(server_factory, backend, request):
    name, conf = backend
    srv = server_factory(conf, **{"rooms.tick-*.history": "off"})
    a, _ = connect(srv, "ann")
    b, _ = connect(srv, "bob", codec="msgpack")
    for c in (a, b):
        ok(c.join("tick-1"))
        ok(c.join("durable-1"))
    acks = [ok(a.send("tick-1", {"px": i}, cmid=f"t-{i}")) for i in range(1, 6)]
    assert [x["seq"] for x in acks] == [1, 2, 3, 4, 5]
    evs = b.messages("tick-1", 5)
    assert [e["seq"] for e in evs] == [1, 2, 3, 4, 5]
    assert [e["body"] for e in evs] == [{"px": i} for i in range(1, 6)]
    assert [(e["mid"], e["ts"]) for e in evs] == [(x["mid"], x["ts"]) for x in acks]
    # recovery by since works from memory while the server runs
    c, _ = connect(srv, "carl")
    r = ok(c.join("tick-1", since=2))
    assert r["seq"] == 5 and r["recovered"] is True and r["replayed"] == 3
    assert [e["seq"] for e in c.messages("tick-1", 3)] == [3, 4, 5]
    ok(a.send("durable-1", "kept", cmid="d-1"))

    restart(srv, "term")
    if name == "sqlite":
        db = sqlite3.connect(os.path.join(srv.data_dir, "parley.db"))
        try:
            rows = db.execute("SELECT count(*) FROM messages WHERE room LIKE 'tick-%'").fetchone()[0]
            heads = db.execute("SELECT count(*) FROM rooms WHERE room LIKE 'tick-%'").fetchone()[0]
            kept = db.execute("SELECT count(*) FROM messages WHERE room = 'durable-1'").fetchone()[0]
        finally:
            db.close()
        assert (rows, heads, kept) == (0, 0, 1), "an ephemeral room wrote to the store"
    if name == "postgres":
        pg = request.getfixturevalue("postgres")
        got = pg.psql(request.node.pg_schema,
                      "SELECT (SELECT count(*) FROM messages WHERE room LIKE 'tick-%'), "
                      "(SELECT count(*) FROM rooms WHERE room LIKE 'tick-%'), "
                      "(SELECT count(*) FROM messages WHERE room = 'durable-1')")
        assert got == [["0", "0", "1"]], f"an ephemeral room wrote to the store: {got}"
    a, _ = connect(srv, "ann")
    b, _ = connect(srv, "bob")
    h = ok(a.request("history", room="tick-1", limit=50))
    assert h["messages"] == [] and h["more"] is False
    assert ok(a.join("tick-1"))["seq"] == 0
    ok(b.join("tick-1"))
    assert ok(a.send("tick-1", "again", cmid="t-after"))["seq"] == 1
    assert b.next_event("message", room="tick-1")["seq"] == 1
    # the same cmid is accepted again after the restart: nothing about it was stored
    # (and the durable room next to it kept its message)
    assert [m["cmid"] for m in history_all(a, "durable-1")] == ["d-1"]


# ---- store outage (MongoDB) -----------------------------------------------------------------------------


def test_mongo_outage_send_fails_clearly_live_features_keep_working_and_recovers(server_factory, tmp_path):
    m = MongoServer(str(tmp_path))
    m.start()
    proxy = None
    try:
        if m.external:
            # not ours to stop: put a proxy in front of it and take the proxy down instead
            hostport = m.uri.split("//", 1)[1].split("/", 1)[0].split(",")[0]
            if "@" in m.uri.split("//", 1)[1].split("/", 1)[0] or "," in m.uri.split("//", 1)[1].split("/", 1)[0]:
                pytest.skip("PARLEY_TEST_MONGO_URI has credentials or several hosts: cannot proxy it")
            host, port = hostport.rsplit(":", 1)
            proxy = TcpProxy(host, int(port))
            proxy.up()
            uri = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true"
        else:
            uri = m.uri
        srv = server_factory(mongo_conf(uri, unique_db("outage")), **{"typing.interval": "0s"})
        ann, _ = connect(srv, "ann")
        bob, _ = connect(srv, "bob")
        st = bob.call("presence", users=["carl"])  # watch carl
        assert [(x["user"]["id"], x["online"]) for x in st["users"]] == [("carl", False)]
        for c in (ann, bob):
            ok(c.join("chat"))
            ok(c.join("lounge"))
        first = ok(ann.send("chat", "before", cmid="o-1"))
        assert bob.next_event("message", room="chat")["seq"] == first["seq"]
        bob.events.clear()
        ann.events.clear()

        # the store goes away
        if proxy:
            proxy.down()
        else:
            m.stop()
        t0 = time.monotonic()
        r = ann.request("send", room="chat", body="during", cmid="o-2", _timeout=15)
        took = time.monotonic() - t0
        assert "err" in r and err_code(r) in RETRYABLE, f"send during the outage: {r}"
        assert took < 10, f"send took {took:.1f}s to fail"
        print(f"send failed after {took:.2f}s with {r['err']}")
        bob.no_event("message", room="chat", timeout=0.3)

        # live features do not need the store: typing, presence (room list, watched user online), ping
        ok(ann.request("typing", room="lounge", active=True))
        ev = bob.next_event("typing", room="lounge", timeout=3)
        assert [u["id"] for u in ev["users"]] == ["ann"]
        # (no-echo to the typist is checked in test_presence_recovery.py)
        members = ok(bob.request("presence", room="lounge", _timeout=5))["members"]
        assert sorted(x["user"]["id"] for x in members) == ["ann", "bob"]
        carl, _ = connect(srv, "carl")
        ev = bob.next_event("presence", timeout=5)
        assert ev["user"]["id"] == "carl" and ev["online"] is True
        assert "ok" in carl.request("ping", _timeout=3)
        ok(ann.request("typing", room="lounge", active=False))
        ev = bob.next_event("typing", room="lounge", timeout=3)
        assert ev["users"] == []

        # the store comes back (on the same port; the emulator is in memory, so its data is gone)
        if proxy:
            proxy.up()
        else:
            m.restart_same_port()
        deadline = time.monotonic() + 20
        while True:
            r = ann.request("send", room="chat", body="during", cmid="o-2", _timeout=15)
            if "ok" in r:
                break
            assert err_code(r) in RETRYABLE, r
            assert time.monotonic() < deadline, f"sends still fail 20s after the store came back: {r}"
            time.sleep(0.2)
        ack = r["ok"]
        print(f"after the outage: first ack {ack}")
        if proxy:
            # the data survived the outage: the room simply continues, and the retried send is delivered once
            assert ack["seq"] == first["seq"] + 1
            ev = bob.next_event("message", room="chat", timeout=5)
            assert (ev["seq"], ev["mid"], ev["cmid"]) == (ack["seq"], ack["mid"], "o-2")
            bob.no_event("message", room="chat", timeout=0.3)  # the failed tries reached nobody
            nxt = ok(ann.send("chat", "after", cmid="o-3"))
            assert nxt["seq"] == ack["seq"] + 1
            assert bob.next_event("message", room="chat")["seq"] == nxt["seq"]
        # (the emulator restarted empty: "chat" lost its stored messages, so its seqs are not checked here)
        # a room that was never in memory (its head must be read from the store) works too
        ok(ann.request("join", room="fresh", _timeout=10))
        ok(bob.request("join", room="fresh", _timeout=10))
        fs = [ok(ann.send("fresh", f"hi{i}", cmid=f"o-f{i}")) for i in range(3)]
        assert [x["seq"] for x in fs] == [1, 2, 3]
        assert [e["seq"] for e in bob.messages("fresh", 3)] == [1, 2, 3]
        assert [x["cmid"] for x in history_all(bob, "fresh")] == ["o-f0", "o-f1", "o-f2"]
    finally:
        if proxy:
            proxy.down()
        m.stop()


# ---- store outage (PostgreSQL) ------------------------------------------------------------------------


def test_postgres_crash_mid_load_fails_sends_clearly_then_reconnects_and_stores_every_retry_once(
        server_factory, tmp_path):
    """The database server is stopped as a crash would stop it (pg_ctl stop -m immediate) while a client
    pipelines sends (16 in flight), and started again 2 s later. Meanwhile sends fail at once with
    store_unavailable (never hang, never crash parleyd); the client retries each with its cmid; parleyd's
    connections come back by themselves. At the end every message is stored exactly once, seqs 1..N without
    a gap, each acknowledged one under the seq and mid of its ack. (The test starts a server of its own to
    crash; only where it cannot and PARLEY_TEST_POSTGRES_URI names one does a proxy in front of that one go
    down instead.)"""
    pg = PgServer(str(tmp_path), own=True)
    if pg.start(must=not os.environ.get("PARLEY_TEST_POSTGRES_URI")) is None:
        pg = PgServer(str(tmp_path))
        pg.start()
    proxy = None
    try:
        uri = pg.uri
        if pg.external:
            from urllib.parse import urlsplit
            u = urlsplit(pg.uri)
            proxy = TcpProxy(u.hostname or "127.0.0.1", u.port or 5432)
            proxy.up()
            uri = u._replace(netloc=f"{u.username + '@' if u.username else ''}127.0.0.1:{proxy.port}").geturl()
        schema = unique_db("crash")
        srv = server_factory(pg_conf(uri, schema), **{"log.level": "warn"})
        n = 600
        room = "pgcrash"
        cmids = [f"p-{i}" for i in range(1, n + 1)]
        out = OutboxSender(room, cmids, window=16)
        c, _ = connect(srv, "crasher", timeout=10)
        ok(c.join(room))
        out.attach(c)
        down_at = None
        first_error = None
        back = False
        deadline = time.monotonic() + 90
        while not out.done:
            assert time.monotonic() < deadline, f"not done in time: {len(out.acks)}/{n} acked"
            before = out.retryable
            out.step()
            if down_at is None and len(out.acks) >= n // 3:
                down_at = time.monotonic()
                if proxy:
                    proxy.down()
                else:
                    pg.crash()
            if down_at is not None and first_error is None and out.retryable > before:
                first_error = time.monotonic() - down_at
            if down_at is not None and not back and time.monotonic() - down_at > 2:
                back = True
                if proxy:
                    proxy.up()
                else:
                    pg.start()
        assert srv.proc.poll() is None, f"parleyd exited:\n{srv.stderr()[-3000:]}"
        assert first_error is not None, "no send failed while the database was down"
        print(f"postgres crash: sends failed with {out.codes}, the first {first_error:.2f}s after the crash; "
              f"duplicates on resend: {out.dups}")
        assert out.codes.get("store_unavailable", 0) > 0, out.codes
        assert first_error < 5, f"the first failure came {first_error:.1f}s after the crash"
        msgs = history_all(c, room, page=200)
        assert [m["seq"] for m in msgs] == list(range(1, n + 1))
        counts = collections.Counter(m["cmid"] for m in msgs)
        assert set(counts) == set(cmids) and max(counts.values()) == 1
        for m in msgs:
            a = out.acks[m["cmid"]]
            assert (m["seq"], m["mid"], m["ts"]) == (a["seq"], a["mid"], a["ts"]), (m, a)
        # and the room goes on after a restart of parleyd, from the database
        restart(srv, "term")
        c, _ = connect(srv, "crasher")
        assert ok(c.join(room))["seq"] == n
        assert ok(c.send(room, "after", cmid="p-after"))["seq"] == n + 1
        assert pg.psql(schema, "SELECT count(*), max(seq) FROM messages") == [[str(n + 1), str(n + 1)]]
    finally:
        if proxy:
            proxy.down()
        pg.stop()


@pytest.mark.parametrize("reset_pages", [64, 100000])
def test_sqlite_checkpoints_keep_the_wal_bounded(server_factory, reset_pages):
    """Checkpoints run off the writer (docs/storage.md "Checkpoints"): with a small step they happen during
    the run. With store.sqlite.wal_reset_pages small the writer makes the WAL start over and its file stays
    far below what the same sends write without that; with it large the writer never does (SQLite itself
    may still start the WAL over when a background checkpoint caught up between two slow sends, so the
    file's size says nothing then: the writer's restarts are counted instead)."""
    srv = server_factory({"store.sqlite.checkpoint_pages": 16, "store.sqlite.wal_reset_pages": reset_pages})
    c, _ = connect(srv, "wal")
    ok(c.join("walroom"))
    n = 600  # one commit each: ~3 WAL frames (12 KB) per send, ~7 MB without checkpoints
    acks = send_n(c, "walroom", "w", n)
    assert [a["seq"] for a in acks] == list(range(1, n + 1))
    status, _, text = http_get(srv.port, "/metrics")
    assert status == 200
    m = parse_metrics(text)
    assert m["parley_store_checkpoints_total"] >= 3, text
    assert m["parley_store_appends_total"] >= n
    wal = os.path.join(srv.data_dir, "parley.db-wal")
    size = os.path.getsize(wal)
    print(f"WAL {size} bytes after {n} sends, {m['parley_store_checkpoints_total']} checkpoints")
    restarts = m["parley_store_wal_restarts_total"]
    if reset_pages < 1000:
        assert size < 1024 * 1024, f"WAL grew to {size} bytes: checkpoints did not let it start over"
        assert restarts >= 1, text
    else:
        assert restarts == 0, f"the writer restarted the WAL {restarts} times below wal_reset_pages"
