"""Messages across codecs, seq order, acks, event shapes; join/leave events (docs/protocol.md)."""

import time

import pytest

from conftest import JWT_SECRET
from jwtmint import mint
from wsclient import Timeout, err_code, ok

MESSAGE_FIELDS = {"ev", "room", "seq", "mid", "ts", "from", "body", "cmid"}


def now_ms():
    return int(time.time() * 1000)


def assert_message_shape(ev, room, user, body, cmid):
    assert set(ev) == MESSAGE_FIELDS, f"message event fields differ from docs: {sorted(ev)}"
    assert ev["ev"] == "message"
    assert ev["room"] == room
    assert isinstance(ev["seq"], int) and not isinstance(ev["seq"], bool) and ev["seq"] >= 1
    assert isinstance(ev["mid"], str) and ev["mid"]
    assert isinstance(ev["ts"], int) and abs(ev["ts"] - now_ms()) < 60_000, ev["ts"]
    assert ev["from"] == {"id": user["id"], "name": user["name"]}
    assert ev["body"] == body and type(ev["body"]) is type(body)
    assert ev["cmid"] == cmid


def test_json_and_msgpack_share_a_room_in_one_gapless_order(server):
    room = "lobby"
    a = server.client("json")
    b = server.client("msgpack")
    ra, rb = ok(a.join(room)), ok(b.join(room))
    assert ra == {"room": room, "seq": 0}
    assert rb == {"room": room, "seq": 0}

    acks = {}
    sent = {}
    n = 15
    for i in range(n):
        for c in (a, b):
            cmid = f"{c.codec}-{i}"
            body = f"{c.codec} says {i}"
            r = c.send(room, body, cmid=cmid)
            ack = ok(r)
            assert set(ack) == {"room", "seq", "mid", "ts"}, ack
            assert ack["room"] == room
            acks[cmid] = ack
            sent[cmid] = (c, body)

    seen = {}
    for c in (a, b):
        evs = c.messages(room, 2 * n)
        seen[c.codec] = evs
        assert [e["seq"] for e in evs] == list(range(1, 2 * n + 1)), "seq must be gapless from 1, in order"
        for e in evs:
            sender, body = sent[e["cmid"]]
            assert_message_shape(e, room, sender.user, body, e["cmid"])
            ack = acks[e["cmid"]]
            assert (e["seq"], e["mid"], e["ts"]) == (ack["seq"], ack["mid"], ack["ts"])

    # Both clients see the very same sequence.
    key = lambda e: (e["seq"], e["mid"], e["ts"], e["cmid"], e["body"], e["from"]["id"])  # noqa: E731
    assert [key(e) for e in seen["json"]] == [key(e) for e in seen["msgpack"]]
    # mids are unique
    assert len({e["mid"] for e in seen["json"]}) == 2 * n


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_send_ack_comes_before_own_message_event(server, codec):
    c = server.client(codec)
    ok(c.join("acks"))
    for i in range(5):
        r = c.send("acks", {"i": i}, cmid=f"ack-{i}")
        ack = ok(r)
        assert ack["seq"] == i + 1
        ev = c.next_event("message", room="acks", cmid=f"ack-{i}")
        ia = next(k for k, f in enumerate(c.log) if f is r)
        ie = next(k for k, f in enumerate(c.log) if f is ev)
        assert ia < ie, "the send ack must arrive before the sender's own message event"
        assert (ev["seq"], ev["mid"], ev["ts"]) == (ack["seq"], ack["mid"], ack["ts"])


def test_message_event_fields_exactly_as_documented(server):
    ann = server.client("json", token=mint(JWT_SECRET, sub="u42", name="Ann"))
    bob = server.client("msgpack", token=mint(JWT_SECRET, sub="u43", name="Bob"))
    for c in (ann, bob):
        ok(c.join("shape"))
    ack = ok(ann.send("shape", "hello", cmid="7f1c2a"))
    for c in (ann, bob):
        ev = c.next_event("message", room="shape")
        assert_message_shape(ev, "shape", {"id": "u42", "name": "Ann"}, "hello", "7f1c2a")
        assert ev["seq"] == ack["seq"] == 1
        assert ev["mid"] == ack["mid"] and ev["ts"] == ack["ts"]


BODIES = [
    "plain string",
    "",
    "ünïcödé ✓ 🎉 \"quoted\" \\ back\nslash",
    {"a": 1, "b": [1, 2, {"c": None}], "d": {"e": "f"}, "ünï": True},
    {},
    [1, "two", 3.5, True, False, None, {"x": []}],
    [],
    0,
    42,
    -7,
    2**53,
    -(2**40),
    3.25,
    -0.5,
    True,
    False,
    None,
]


@pytest.mark.parametrize("sender_codec", ["json", "msgpack"])
def test_body_of_any_json_type_arrives_identically_in_both_codecs(server, sender_codec):
    room = f"bodies-{sender_codec}"
    clients = {"json": server.client("json"), "msgpack": server.client("msgpack")}
    for c in clients.values():
        ok(c.join(room))
    sender = clients[sender_codec]
    for i, body in enumerate(BODIES):
        ok(sender.send(room, body, cmid=f"b-{i}"))
    for codec, c in clients.items():
        evs = c.messages(room, len(BODIES))
        for i, (ev, body) in enumerate(zip(evs, BODIES)):
            assert ev["cmid"] == f"b-{i}"
            assert ev["body"] == body, f"{codec} receiver: body {i} {ev['body']!r} != {body!r}"
            assert type(ev["body"]) is type(body), \
                f"{codec} receiver: body {i} type {type(ev['body']).__name__} != {type(body).__name__}"


def test_join_reply_reports_room_head_and_rejoin_is_a_no_op(server):
    a = server.client("json")
    ok(a.join("head"))
    for i in range(3):
        ok(a.send("head", i))
    b = server.client("msgpack")
    assert ok(b.join("head")) == {"room": "head", "seq": 3}
    # Joining again is not an error and changes nothing (no duplicate delivery).
    assert ok(b.join("head")) == {"room": "head", "seq": 3}
    ok(a.send("head", "four"))
    ev = b.next_event("message", room="head")
    assert ev["seq"] == 4
    b.no_event("message", room="head", timeout=0.3)


def tokens():
    return (mint(JWT_SECRET, sub="ann", name="Ann"), mint(JWT_SECRET, sub="bob", name="Bob"))


def test_join_event_only_for_first_connection_of_a_user(server):
    t_ann, t_bob = tokens()
    bob = server.client("json", token=t_bob)
    ok(bob.join("tabs"))
    ann1 = server.client("msgpack", token=t_ann)
    ok(ann1.join("tabs"))
    ev = bob.next_event("join", room="tabs")
    assert ev == {"ev": "join", "room": "tabs", "user": {"id": "ann", "name": "Ann"}}
    # Not sent to the user's own connections.
    ann1.no_event("join", timeout=0.2)

    ann2 = server.client("json", token=t_ann)
    ok(ann2.join("tabs"))
    # A second connection of the same user entering emits nothing.
    bob.no_event("join", room="tabs", timeout=0.4)
    ann1.no_event("join", room="tabs", timeout=0.1)
    ann2.no_event("join", room="tabs", timeout=0.1)

    # Everyone, both of Ann's connections included, receives messages.
    ok(bob.send("tabs", "hi all"))
    for c in (bob, ann1, ann2):
        assert c.next_event("message", room="tabs")["body"] == "hi all"


def test_big_rooms_send_no_join_or_leave_events(server_factory):
    # presence.broadcast_max: past it, joins and leaves are not fanned out (n^2/2 for a room of n).
    srv = server_factory(presence__broadcast_max=2)
    a = srv.client("json")
    ok(a.join("big"))
    b = srv.client("json")
    ok(b.join("big"))
    assert a.next_event("join", room="big")["user"] == b.user  # 2 members: still announced
    c = srv.client("msgpack")
    ok(c.join("big"))  # 3 members > 2: silent
    a.no_event("join", room="big", timeout=0.4)
    b.no_event("join", room="big", timeout=0.1)
    members = ok(a.request("presence", room="big"))["members"]
    assert {m["user"]["id"] for m in members} == {a.user["id"], b.user["id"], c.user["id"]}
    c.close(1000)
    a.no_event("leave", room="big", timeout=0.4)  # still 3 members when it left: silent


def test_leave_stops_delivery_and_leave_event_on_last_connection(server):
    t_ann, t_bob = tokens()
    bob = server.client("json", token=t_bob)
    ok(bob.join("lv"))
    ann1 = server.client("json", token=t_ann)
    ann2 = server.client("msgpack", token=t_ann)
    ok(ann1.join("lv"))
    ok(ann2.join("lv"))
    bob.next_event("join", room="lv")

    # Ann's second connection leaves: no leave event (Ann is still in through ann1) ...
    assert ok(ann2.leave("lv")) == {"room": "lv"}
    bob.no_event("leave", room="lv", timeout=0.4)
    # ... and no more of the room's events reach ann2.
    ok(bob.send("lv", "after ann2 left"))
    assert bob.next_event("message", room="lv")["body"] == "after ann2 left"
    assert ann1.next_event("message", room="lv")["body"] == "after ann2 left"
    ann2.no_event(room="lv", timeout=0.4)
    # Leaving again: not_joined.
    assert err_code(ann2.leave("lv")) == "not_joined"

    # Ann's last connection leaves by the leave op: leave event for the others.
    assert ok(ann1.leave("lv")) == {"room": "lv"}
    ev = bob.next_event("leave", room="lv")
    assert ev == {"ev": "leave", "room": "lv", "user": {"id": "ann", "name": "Ann"}}
    ann1.no_event("leave", timeout=0.2)
    ok(bob.send("lv", "nobody else"))
    bob.next_event("message", room="lv")
    ann1.no_event("message", room="lv", timeout=0.3)


def test_leave_event_when_last_connection_closes_with_1000(server):
    # A close with code 1000 ends the session at once (docs/protocol.md "Sessions, resume and recovery").
    t_ann, t_bob = tokens()
    bob = server.client("json", token=t_bob)
    ok(bob.join("dc"))
    ann1 = server.client("json", token=t_ann)
    ann2 = server.client("msgpack", token=t_ann)
    ok(ann1.join("dc"))
    ok(ann2.join("dc"))
    bob.next_event("join", room="dc")

    ann1.close(1000)
    bob.no_event("leave", room="dc", timeout=0.4)  # ann2 is still there
    ann2.close(1000)
    ev = bob.next_event("leave", room="dc", timeout=3)
    assert ev == {"ev": "leave", "room": "dc", "user": {"id": "ann", "name": "Ann"}}
    # The room keeps working for the remaining member.
    ok(bob.send("dc", "still here"))
    assert bob.next_event("message", room="dc")["body"] == "still here"


@pytest.mark.parametrize("how", ["abort", "close1001"])
def test_leave_event_after_resume_ttl_when_last_connection_drops(server_factory, how):
    # A connection that drops (no close frame, or a code other than 1000) detaches its session: the user
    # stays in the room for session.resume_ttl, then the leave event comes.
    srv = server_factory(session__resume_ttl="1s")
    t_ann, t_bob = tokens()
    bob = srv.client("json", token=t_bob)
    ok(bob.join("dc"))
    ann = srv.client("msgpack", token=t_ann)
    ok(ann.join("dc"))
    bob.next_event("join", room="dc")
    t0 = time.monotonic()
    if how == "abort":
        ann.abort()
    else:
        ann.close(1001)
    bob.no_event("leave", room="dc", timeout=0.5)  # within the grace period: no leave
    ev = bob.next_event("leave", room="dc", timeout=4)
    assert ev == {"ev": "leave", "room": "dc", "user": {"id": "ann", "name": "Ann"}}
    assert time.monotonic() - t0 >= 0.9, "leave came before session.resume_ttl ran out"
    ok(bob.send("dc", "still here"))
    assert bob.next_event("message", room="dc")["body"] == "still here"


def test_rooms_are_isolated(server):
    a = server.client("json")
    b = server.client("msgpack")
    ok(a.join("r1"))
    ok(b.join("r2"))
    ok(a.join("r2"))
    b.next_event("join", room="r2")
    ok(a.send("r1", "only r1"))
    ok(b.send("r2", "only r2"))
    assert a.next_event("message", room="r1")["body"] == "only r1"
    ev = a.next_event("message", room="r2")
    assert ev["body"] == "only r2" and ev["seq"] == 1
    assert b.next_event("message", room="r2")["body"] == "only r2"
    b.no_event("message", room="r1", timeout=0.3)


def test_ping_op_returns_server_time(server):
    for codec in ("json", "msgpack"):
        c = server.client(codec)
        r = ok(c.ping())
        assert set(r) == {"ts"} and isinstance(r["ts"], int)
        assert abs(r["ts"] - now_ms()) < 10_000


def test_string_and_int_ids_are_echoed_with_their_type(server):
    for codec in ("json", "msgpack"):
        c = server.client(codec)
        r = c.request("ping", id="abc-1")
        assert r["re"] == "abc-1" and "ok" in r
        r = c.request("ping", id=7)
        assert r["re"] == 7 and type(r["re"]) is int and "ok" in r
        r = c.request("ping", id="x" * 64)
        assert r["re"] == "x" * 64 and "ok" in r


def test_every_request_gets_one_reply_and_send_acks_keep_send_order(server):
    # Replies are matched by `re` (store-bound requests may be answered after later ones), but acks of one
    # connection's sends come in the order of the sends.
    c = server.client("msgpack")
    ok(c.join("order"))
    ids = list(range(100, 160))
    for i in ids:
        if i % 3 == 0:
            c.send_obj({"id": i, "op": "send", "room": "order", "body": i, "cmid": f"o{i}"})
        elif i % 3 == 1:
            c.send_obj({"id": i, "op": "ping"})
        else:
            c.send_obj({"id": i, "op": "join", "room": "order"})
    replies = [c.next_reply() for _ in ids]
    assert sorted(r["re"] for r in replies) == ids, "every request gets exactly one reply"
    for r in replies:
        assert "ok" in r, r
    send_acks = [r for r in replies if r["re"] % 3 == 0]
    assert [r["re"] for r in send_acks] == [i for i in ids if i % 3 == 0], "send acks must keep send order"
    assert [r["ok"]["seq"] for r in send_acks] == list(range(1, len(send_acks) + 1))
    with pytest.raises(Timeout):
        c.next_reply(timeout=0.3)  # and no extra reply


def test_many_clients_pipelined_sends_one_order_for_everyone(server):
    room = "crowd"
    clients = [server.client("json" if i % 2 else "msgpack") for i in range(20)]
    for c in clients:
        ok(c.join(room))
    per = 10
    # pipelined: every client fires its sends without waiting for acks
    for k in range(per):
        for i, c in enumerate(clients):
            c.send_obj({"id": 1000 + k, "op": "send", "room": room, "body": {"c": i, "k": k}, "cmid": f"p{i}-{k}"})
    total = per * len(clients)
    orders = []
    for i, c in enumerate(clients):
        acks = [c.next_reply(re=1000 + k, timeout=10) for k in range(per)]
        seqs = [ok(a)["seq"] for a in acks]
        assert seqs == sorted(seqs), f"client {i}: acks of its sends out of send order: {seqs}"
        evs = c.messages(room, total, timeout=10)
        assert [e["seq"] for e in evs] == list(range(1, total + 1))
        mine = [e["body"]["k"] for e in evs if e["body"]["c"] == i]
        assert mine == list(range(per)), f"client {i}: its own messages out of order: {mine}"
        orders.append([(e["seq"], e["mid"], e["cmid"]) for e in evs])
    assert all(o == orders[0] for o in orders)
