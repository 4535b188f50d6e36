"""Sessions: detach on a dropped connection, resume within session.resume_ttl without presence flapping
(docs/protocol.md "Sessions, resume and recovery", "hello")."""

import time

import pytest

from conftest import JWT_SECRET
from jwtmint import mint
from wsclient import Client, ok

TTL = "2s"


def token(sub):
    return mint(JWT_SECRET, sub=sub, name=sub.title())


@pytest.fixture
def srv(server_factory):
    return server_factory(session__resume_ttl=TTL)


def hello(srv, sub, codec="json", **fields):
    c = Client(srv.port, codec=codec)
    srv.clients.append(c)
    r = ok(c.hello(token=token(sub), **fields))
    return c, r


def test_hello_reply_has_session_fields(srv):
    _, r = hello(srv, "ann")
    assert isinstance(r["session"], str) and r["session"]
    assert isinstance(r["resume_token"], str) and r["resume_token"]
    assert r["resumed"] is False
    assert "rooms" not in r


@pytest.mark.parametrize("how", ["abort", "close1001"])
def test_resume_after_drop_without_leave_or_join(srv, how):
    bob, _ = hello(srv, "bob")
    ok(bob.join("lobby"))
    ann, r1 = hello(srv, "ann", "msgpack")
    ok(ann.join("lobby"))
    ok(ann.join("side"))
    bob.next_event("join", room="lobby")
    acks = [ok(bob.send("lobby", f"m{i}", cmid=f"m{i}")) for i in range(3)]
    ann.messages("lobby", 3)

    ann.abort() if how == "abort" else ann.close(1001)
    # messages sent while Ann is away
    missed = [ok(bob.send("lobby", f"away{i}", cmid=f"away{i}")) for i in range(2)]
    time.sleep(0.2)
    ann2, r2 = hello(srv, "ann", "json", resume=r1["resume_token"])
    assert r2["resumed"] is True
    assert r2["session"] == r1["session"]
    rooms = {x["room"]: x["seq"] for x in r2["rooms"]}
    assert rooms == {"lobby": missed[-1]["seq"], "side": 0}
    # recover by seq
    reply = ok(ann2.join("lobby", since=acks[-1]["seq"]))
    assert reply["recovered"] is True and reply["replayed"] == 2
    assert [e["cmid"] for e in ann2.messages("lobby", 2)] == ["away0", "away1"]
    # nobody saw Ann leave or come back
    time.sleep(2.5)  # beyond the TTL: the resumed session must not expire now
    bob.drain(0.1)
    assert not [e for e in bob.events if e["ev"] in ("join", "leave")], list(bob.events)
    # and live messages flow
    ok(bob.send("lobby", "live", cmid="live"))
    assert ann2.next_event("message", room="lobby", cmid="live")["seq"] == missed[-1]["seq"] + 1


def test_resume_is_refused_softly(srv):
    ann, r1 = hello(srv, "ann")
    ok(ann.join("r"))
    # another user's token + Ann's resume token: a fresh session, no error
    _, rb = hello(srv, "bob", resume=r1["resume_token"])
    assert rb["resumed"] is False and rb["session"] != r1["session"]
    # garbage
    _, rg = hello(srv, "ann", resume="not-a-resume-token")
    assert rg["resumed"] is False
    # a session ended with close 1000 cannot be resumed
    ann.close(1000)
    time.sleep(0.2)
    _, r3 = hello(srv, "ann", resume=r1["resume_token"])
    assert r3["resumed"] is False and r3["session"] != r1["session"]


def test_resume_after_ttl_is_a_fresh_session_and_leave_was_sent(srv):
    bob, _ = hello(srv, "bob")
    ok(bob.join("t"))
    ann, r1 = hello(srv, "ann")
    ok(ann.join("t"))
    bob.next_event("join", room="t")
    ann.abort()
    bob.no_event("leave", room="t", timeout=1.0)
    assert bob.next_event("leave", room="t", timeout=4)["user"]["id"] == "ann"
    _, r2 = hello(srv, "ann", resume=r1["resume_token"])
    assert r2["resumed"] is False
