"""Rights on read markers and room lists: `read` needs the read right and is rate limited, `rooms` lists only
rooms the token may read, and rights are checked again at resume and refresh (docs/protocol.md "read",
"rooms", "refresh", "Sessions, resume and recovery"; docs/security.md "Access rules")."""

import time

from conftest import JWT_SECRET
from jwtmint import mint
from wsclient import Client, err_code, ok

PRIVATE = {"rooms.hr-*.access": "private", "session.resume_ttl": "3s"}


def login(srv, sub, rooms, **hello):
    c = Client(srv.port, name=sub)
    srv.clients.append(c)
    r = ok(c.hello(token=mint(JWT_SECRET, sub=sub, name=sub.title(), rooms=rooms, exp_in=600), **hello))
    return c, r


def test_read_needs_the_read_right(server_factory):
    srv = server_factory(PRIVATE)
    alice, _ = login(srv, "alice", ["hr-*:rw", "lobby:rw"])
    ok(alice.join("hr-secret"))
    for i in range(3):
        ok(alice.send("hr-secret", f"m{i}"))
    bob, _ = login(srv, "bob", ["lobby:rw"])
    r = bob.request("read", room="hr-secret", seq=1)
    assert err_code(r) == "forbidden", r
    assert err_code(bob.request("read", room="dm:alice:carl", seq=1)) == "forbidden"
    # Nothing was stored for bob: with the grant, his marker of the room is still 0.
    bob2, _ = login(srv, "bob", ["hr-*:r"])
    ok(bob2.join("hr-secret"))
    assert ok(bob2.request("rooms"))["rooms"] == [{"room": "hr-secret", "seq": 3, "read": 0, "unread": 3}]
    # A guest gets no more: auth.guest_rooms and the room's level apply as for history.
    g = Client(srv.port)
    srv.clients.append(g)
    ok(g.hello())
    assert err_code(g.request("read", room="hr-secret", seq=1)) == "forbidden"
    assert ok(g.request("read", room="lobby", seq=1)) == {"room": "lobby", "read": 1}


def test_read_is_rate_limited(server_factory):
    srv = server_factory({"rate.read": "1/s burst 3"})
    c = Client(srv.port)
    srv.clients.append(c)
    ok(c.hello())
    for i in range(3):
        ok(c.request("read", room=f"room-{i}", seq=1))
    r = c.request("read", room="room-9", seq=1)
    assert err_code(r) == "rate_limited" and r["err"]["retry_after"] > 0, r


def test_read_event_goes_to_the_users_other_connections_only(server_factory):
    srv = server_factory(PRIVATE)
    a1, _ = login(srv, "ann", ["lobby:rw"])
    a2, _ = login(srv, "ann", ["lobby:rw"])
    b, _ = login(srv, "bob", ["lobby:rw"])
    ok(a1.request("read", room="lobby", seq=4))
    assert a2.next_event("read", room="lobby")["seq"] == 4
    a1.no_event("read")
    b.no_event("read")


def test_rooms_lists_only_rooms_the_token_may_read(server_factory):
    srv = server_factory(PRIVATE)
    ann, _ = login(srv, "ann", ["hr-*:rw", "lobby:rw"])
    ok(ann.join("hr-payroll"))
    ok(ann.join("lobby"))
    ok(ann.send("hr-payroll", "salaries"))
    assert [x["room"] for x in ok(ann.request("rooms"))["rooms"]] == ["hr-payroll", "lobby"]
    # Another connection whose token lacks the grant does not see the room, its head or unread count.
    ann2, _ = login(srv, "ann", ["lobby:rw"])
    assert [x["room"] for x in ok(ann2.request("rooms"))["rooms"]] == ["lobby"]
    # After a refresh without the grant: kicked, and gone from the list.
    ok(ann.request("refresh", token=mint(JWT_SECRET, sub="ann", name="Ann", rooms=["lobby:rw"], exp_in=600)))
    assert ann.next_event("kicked", room="hr-payroll")["reason"] == "access revoked"
    assert [x["room"] for x in ok(ann.request("rooms"))["rooms"]] == ["lobby"]
    # A token that grants it again brings it back as it was (the entry and its marker were kept).
    ann3, _ = login(srv, "ann", ["hr-*:r", "lobby:rw"])
    assert ok(ann3.request("rooms"))["rooms"][0] == {"room": "hr-payroll", "seq": 1, "read": 0, "unread": 1}


def test_rooms_without_a_store_lists_only_readable_rooms(server_factory):
    srv = server_factory(dict(PRIVATE, **{"rooms.*.history": "off"}))
    ann, _ = login(srv, "ann", ["hr-*:rw", "lobby:rw"])
    ok(ann.join("hr-payroll"))
    ok(ann.join("lobby"))
    ok(ann.request("refresh", token=mint(JWT_SECRET, sub="ann", name="Ann", rooms=["lobby:rw"], exp_in=600)))
    ann.next_event("kicked", room="hr-payroll")
    assert [x["room"] for x in ok(ann.request("rooms"))["rooms"]] == ["lobby"]


def test_resume_with_a_token_without_the_grant_leaves_the_private_room(server_factory):
    srv = server_factory(PRIVATE)
    bob, _ = login(srv, "bob", ["hr-*:rw"])
    ok(bob.join("hr-x"))
    ann, r1 = login(srv, "ann", ["hr-*:rw", "lobby:rw"])
    ok(ann.join("hr-x"))
    ok(ann.join("lobby"))
    assert bob.next_event("join", room="hr-x")["user"]["id"] == "ann"
    ann.abort()
    time.sleep(0.2)
    # Ann comes back within the grace period, but her new token has lost hr-*.
    ann2, r2 = login(srv, "ann", ["lobby:rw"], resume=r1["resume_token"])
    assert r2["resumed"] is True
    assert [x["room"] for x in r2["rooms"]] == ["lobby"]
    assert bob.next_event("leave", room="hr-x")["user"]["id"] == "ann"
    members = ok(bob.request("presence", room="hr-x"))["members"]
    assert [m["user"]["id"] for m in members] == ["bob"]
    assert err_code(ann2.join("hr-x")) == "forbidden"
    assert [x["room"] for x in ok(ann2.request("rooms"))["rooms"]] == ["lobby"]
    # A resume whose token keeps the grant keeps the room, without any leave.
    carl, r3 = login(srv, "carl", ["hr-*:rw"])
    ok(carl.join("hr-x"))
    bob.next_event("join", room="hr-x")
    carl.abort()
    carl2, r4 = login(srv, "carl", ["hr-*:rw"], resume=r3["resume_token"])
    assert [x["room"] for x in r4["rooms"]] == ["hr-x"]
    bob.no_event("leave", timeout=0.5)
