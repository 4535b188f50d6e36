"""Guests: identities that never repeat (also across restarts), state that ends with the guest's session, and
memory that comes back after mass disconnects (docs/security.md "Guests", docs/protocol.md "hello")."""

import os
import re
import sqlite3
import time

from conftest import JWT_SECRET
from jwtmint import mint
from support_durable import restart
from wsclient import Client, http_get, ok, parse_metrics

TTL = 1.0  # session.resume_ttl of these tests, seconds


def guest(srv, **hello_fields):
    c = Client(srv.port)
    srv.clients.append(c)
    r = ok(c.hello(**hello_fields))
    return c, r


def metrics(srv):
    status, _, body = http_get(srv.port, "/metrics")
    assert status == 200
    return parse_metrics(body)


def db_rows(srv, sql, *args):
    """A query on the server's SQLite file (WAL: a reader beside the running server is fine)."""
    db = sqlite3.connect(f"file:{os.path.join(srv.data_dir, 'parley.db')}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def wait_until(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_guest_after_a_restart_inherits_nothing(server_factory):
    srv = server_factory(session__resume_ttl="1s")
    g1, r1 = guest(srv)
    gid = r1["user"]["id"]
    ok(g1.join("lobby"))
    sent = ok(g1.send("lobby", "from the first guest", cmid="same-cmid"))
    assert ok(g1.request("read", room="lobby", seq=sent["seq"]))["read"] == sent["seq"]
    assert [x["room"] for x in ok(g1.request("rooms"))["rooms"]] == ["lobby"]
    g1.close(1000)
    restart(srv)

    g2, r2 = guest(srv)
    assert r2["user"]["id"] != gid
    assert ok(g2.request("rooms"))["rooms"] == []  # not the first guest's list, markers or unread counts
    ok(g2.join("lobby"))
    again = ok(g2.send("lobby", "from the second guest", cmid="same-cmid"))  # the same cmid: a new message
    assert not again.get("duplicate") and again["seq"] == sent["seq"] + 1


def test_guest_ids_are_unique_and_unpredictable(server_factory):
    srv = server_factory()
    ids = [guest(srv)[1]["user"]["id"] for _ in range(20)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"guest-[0-9a-f]{16}", i) for i in ids), ids
    nums = [int(i[len("guest-"):], 16) for i in ids]
    # Not a counter: consecutive guests are not neighbours.
    assert not all(b - a == 1 for a, b in zip(nums, nums[1:]))


def test_a_guest_resumes_within_grace_with_its_rooms(server_factory):
    srv = server_factory(session__resume_ttl="2s")
    g, r = guest(srv)
    ok(g.join("lobby"))
    ok(g.send("lobby", "hi"))
    ok(g.request("read", room="lobby", seq=1))
    g.abort()
    # The resume token stands in for the token a guest does not have: the same guest, its rooms and list.
    g2, r2 = guest(srv, resume=r["resume_token"])
    assert r2["resumed"] is True and r2["user"] == r["user"]
    assert r2["rooms"] == [{"room": "lobby", "seq": 1}]
    assert ok(g2.request("rooms"))["rooms"] == [{"room": "lobby", "seq": 1, "read": 1, "unread": 0}]
    # Someone else's resume token does not make a guest into that user.
    ann = Client(srv.port)
    srv.clients.append(ann)
    ra = ok(ann.hello(token=mint(JWT_SECRET, sub="ann", name="Ann")))
    ann.abort()
    g3, r3 = guest(srv, resume=ra["resume_token"])
    assert r3["resumed"] is False and r3["user"]["id"].startswith("guest-")


def test_guest_rows_are_deleted_when_its_session_ends(server_factory):
    srv = server_factory(session__resume_ttl="1s")
    ann = Client(srv.port)
    srv.clients.append(ann)
    ok(ann.hello(token=mint(JWT_SECRET, sub="ann", name="Ann")))
    ok(ann.join("lobby"))

    g, r = guest(srv)
    gid = r["user"]["id"]
    ok(g.join("lobby"))
    ok(g.join("other"))
    ok(g.send("lobby", "hi", cmid="g-1"))
    ok(g.request("read", room="lobby", seq=1))
    ok(g.request("read", room="never-joined", seq=3))  # a marker-only row
    ok(ann.request("read", room="lobby", seq=1))
    wait_until(lambda: len(db_rows(srv, "SELECT 1 FROM memberships WHERE user_id = ?", gid)) == 3,
               what="the guest's rows to be written")
    g.abort()
    # After the grace period every row of the guest goes (room list, markers, last-seen); Ann's stay, and
    # so does the guest's message.
    time.sleep(1.2)
    wait_until(lambda: not db_rows(srv, "SELECT 1 FROM memberships WHERE user_id = ?", gid),
               what="the guest's memberships to go")
    assert db_rows(srv, "SELECT count(*) FROM users WHERE user_id = ?", gid) == [(0,)]
    assert db_rows(srv, "SELECT room, read FROM memberships WHERE user_id = 'ann'") == [("lobby", 1)]
    hist = ok(ann.request("history", room="lobby", limit=10))["messages"]
    assert [m["from"]["id"] for m in hist] == [gid]


def _cycle(srv, n, room_size=10):
    """n guests connect, join rooms of room_size, mark a read, and drop (no close frame: grace applies)."""
    clients = []
    for i in range(n):
        c = Client(srv.port, timeout=30)
        clients.append(c)
        ok(c.hello())
        ok(c.join(f"cycle-{i // room_size}"))
        if i % 4 == 0:
            ok(c.request("read", room=f"cycle-{i // room_size}", seq=1))
    for c in clients:
        c.abort()


def test_mass_guest_disconnects_leave_nothing_behind(server_factory):
    """3 cycles of guests: after each (and the grace period) no user, session, last-seen entry or stored
    row of them is left, so nothing grows from one cycle to the next (bench/guest_cycles.py: RSS at 15k)."""
    srv = server_factory(session__resume_ttl="1s")
    n = int(os.environ.get("PARLEY_TEST_GUEST_CYCLE", "1000"))

    def state():
        m = metrics(srv)
        return (db_rows(srv, "SELECT count(*) FROM memberships")[0][0],
                db_rows(srv, "SELECT count(*) FROM users")[0][0],
                m.get("parley_users"), m.get("parley_sessions"), m.get("parley_last_seen_entries"))

    seen = []
    for _ in range(3):
        _cycle(srv, n)
        wait_until(lambda: metrics(srv)["parley_connections"] == 0, what="the connections to close")
        time.sleep(TTL + 0.5)
        deadline = time.monotonic() + 5  # the store's deletes may trail the sessions' end a little
        while state() != (0, 0, 0, 0, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        seen.append(state())
    # stored memberships and users; users, sessions, last-seen entries in memory: back to zero every time
    assert seen == [(0, 0, 0, 0, 0)] * 3, seen


def test_guests_of_an_earlier_run_leave_no_rows(server_factory):
    """Guests still connected (or within their grace) when the server stops, or when it crashes, cannot come
    back: the next start deletes their rows."""
    srv = server_factory(session__resume_ttl="30s")
    for how in ("term", "kill"):
        g, r = guest(srv)
        ok(g.join("lobby"))
        ok(g.request("read", room="elsewhere", seq=2))
        gid = r["user"]["id"]
        wait_until(lambda: len(db_rows(srv, "SELECT 1 FROM memberships WHERE user_id = ?", gid)) == 2,
                   what="the guest's rows to be written")
        restart(srv, how)
        wait_until(lambda: not db_rows(srv, "SELECT 1 FROM memberships WHERE user_id LIKE 'guest-%'"),
                   what=f"the previous run's guest rows to go (after {how})")
