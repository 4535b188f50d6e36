"""Exactly-once sends (cmid retries), recovery by `since`, `history`, durability across restarts
(docs/protocol.md "join", "send", "history")."""

import pytest

from conftest import JWT_SECRET
from jwtmint import mint
from wsclient import Client, err_code, ok

MSG_FIELDS = {"ev", "room", "seq", "mid", "ts", "from", "body", "cmid"}


def token(sub):
    return mint(JWT_SECRET, sub=sub, name=sub.title())


def fill(c, room, n, prefix="m"):
    return [ok(c.send(room, f"{prefix}{i}", cmid=f"{prefix}-{i}")) for i in range(1, n + 1)]


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_duplicate_cmid_returns_the_original_and_delivers_nothing(server, codec):
    a = server.client(codec, token=token("ann"))
    b = server.client("json", token=token("bob"))
    ok(a.join("dup"))
    ok(b.join("dup"))
    first = ok(a.send("dup", "once", cmid="same"))
    assert b.next_event("message", room="dup")["seq"] == first["seq"]
    again = ok(a.send("dup", "once (retry)", cmid="same"))
    assert again.get("duplicate") is True, again
    assert {k: again[k] for k in ("room", "seq", "mid", "ts")} == first
    b.no_event("message", room="dup", timeout=0.3)
    a.events.clear()
    # the room's seq did not move
    nxt = ok(a.send("dup", "next", cmid="other"))
    assert nxt["seq"] == first["seq"] + 1
    # the same cmid by another user is a different message
    other = ok(b.send("dup", "bob's", cmid="same"))
    assert other["seq"] == first["seq"] + 2 and "duplicate" not in other


def test_duplicate_cmid_across_reconnect(server):
    a = server.client("json", token=token("ann"))
    ok(a.join("rc"))
    first = ok(a.send("rc", "x", cmid="lost-reply"))
    a.close()
    a2 = server.client("msgpack", token=token("ann"))
    ok(a2.join("rc"))
    again = ok(a2.send("rc", "x", cmid="lost-reply"))
    assert again.get("duplicate") is True
    assert again["seq"] == first["seq"] and again["mid"] == first["mid"]


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_join_since_replays_missed_messages_before_the_reply(server, codec):
    a = server.client("json")
    ok(a.join("rec"))
    acks = fill(a, "rec", 6)
    b = server.client(codec)
    r = b.join("rec", since=2)
    reply = ok(r)
    assert reply["room"] == "rec" and reply["seq"] == 6
    assert reply["recovered"] is True and reply["replayed"] == 4
    replayed = [f for f in b.log if f.get("ev") == "message"]
    assert [e["seq"] for e in replayed] == [3, 4, 5, 6]
    for e, ack in zip(replayed, acks[2:]):
        assert set(e) == MSG_FIELDS
        assert (e["mid"], e["ts"]) == (ack["mid"], ack["ts"])
    # the replay came before the reply
    idx_reply = next(i for i, f in enumerate(b.log) if f is r)
    assert all(b.log.index(e) < idx_reply for e in replayed)
    # live messages follow with no gap and no duplicate
    ok(a.send("rec", "live", cmid="live"))
    evs = b.messages("rec", 5, timeout=5)
    assert [e["seq"] for e in evs] == [3, 4, 5, 6, 7]
    b.no_event("message", room="rec", timeout=0.2)


def test_join_since_head_replays_nothing(server):
    a = server.client("json")
    ok(a.join("h"))
    fill(a, "h", 3)
    b = server.client("msgpack")
    reply = ok(b.join("h", since=3))
    assert reply["seq"] == 3 and reply["recovered"] is True and reply["replayed"] == 0
    b.no_event("message", room="h", timeout=0.2)


def test_partial_recovery_replays_the_newest(server_factory):
    srv = server_factory({"recovery.max_messages": 5})
    a = srv.client("json")
    ok(a.join("p"))
    fill(a, "p", 12)
    b = srv.client("json")
    reply = ok(b.join("p", since=1))
    assert reply["recovered"] is False
    assert reply["replayed"] == 5
    assert reply["missing"] == {"from": 2, "to": 7}
    assert [e["seq"] for e in b.messages("p", 5)] == [8, 9, 10, 11, 12]


def test_history_pages(server):
    a = server.client("json")
    ok(a.join("hist"))
    acks = fill(a, "hist", 10)
    newest = ok(a.request("history", room="hist", limit=3))
    assert newest["room"] == "hist"
    assert [m["seq"] for m in newest["messages"]] == [8, 9, 10]
    assert newest["more"] is True
    for m in newest["messages"]:
        assert set(m) == MSG_FIELDS and m["ev"] == "message"
        assert m["mid"] == acks[m["seq"] - 1]["mid"]
    back = ok(a.request("history", room="hist", before=8, limit=5))
    assert [m["seq"] for m in back["messages"]] == [3, 4, 5, 6, 7]
    fwd = ok(a.request("history", room="hist", after=7, limit=50))
    assert [m["seq"] for m in fwd["messages"]] == [8, 9, 10]
    assert fwd["more"] is False
    first = ok(a.request("history", room="hist", after=0, limit=2))
    assert [m["seq"] for m in first["messages"]] == [1, 2]


def test_messages_survive_a_restart(server_factory):
    srv = server_factory()
    a = srv.client("json", token=token("ann"))
    ok(a.join("durable"))
    acks = fill(a, "durable", 4)
    assert srv.terminate() == 0
    srv.close_clients()
    srv.start()
    b = srv.client("msgpack", token=token("ann"))
    reply = ok(b.join("durable", since=2))
    assert reply["seq"] == 4 and reply["replayed"] == 2
    assert [e["mid"] for e in b.messages("durable", 2)] == [acks[2]["mid"], acks[3]["mid"]]
    # seq continues, and a retried cmid from before the restart is still a duplicate
    again = ok(b.send("durable", "m4", cmid="m-4"))
    assert again.get("duplicate") is True and again["seq"] == 4
    assert ok(b.send("durable", "new", cmid="after-restart"))["seq"] == 5


def test_history_bad_requests(server):
    a = server.client("json")
    ok(a.join("hb"))
    assert err_code(a.request("history", room="bad room")) == "bad_room"
    assert err_code(a.request("history", room="hb", limit="3")) == "bad_request"
    assert err_code(a.request("history")) == "bad_request"
    c = Client(server.port)
    server.clients.append(c)
    assert err_code(c.request("history", room="hb")) == "not_authenticated"
