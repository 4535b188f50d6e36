"""hello: tokens, guests, ordering rules and the hello timeout (docs/protocol.md "hello")."""

import re
import time

import pytest

from conftest import JWT_SECRET
from jwtmint import b64url, mint, tamper_signature
from wsclient import Client, err_code, ok

CODECS = ["json", "msgpack"]


def connect(server, codec="json", **kw):
    c = Client(server.port, codec=codec, **kw)
    server.clients.append(c)
    return c


@pytest.mark.parametrize("codec", CODECS)
def test_hello_with_valid_token(server_factory, codec):
    srv = server_factory(limits__max_frame="32KiB", limits__max_body="8KiB", limits__max_rooms_per_conn=7,
                         typing__ttl="4s", session__resume_ttl="20s")
    c = connect(srv, codec)
    r = ok(c.hello(token=mint(JWT_SECRET, sub="u42", name="Ann", exp_in=600), client="tests/1.0"))
    assert r["user"] == {"id": "u42", "name": "Ann"}
    assert isinstance(r["conn"], str) and r["conn"]
    assert isinstance(r["server"], str) and r["server"].startswith("parley/")
    assert r["limits"] == {"max_frame": 32 * 1024, "max_rooms": 7, "max_body": 8 * 1024, "typing_ttl": 4000,
                           "resume_ttl": 20000}
    # authenticated: requests now work
    ok(c.join("after-hello"))


def test_token_without_name_uses_sub(server):
    c = connect(server)
    r = ok(c.hello(token=mint(JWT_SECRET, sub="only-sub")))
    assert r["user"] == {"id": "only-sub", "name": "only-sub"}


def test_connection_ids_differ(server):
    a, b = connect(server), connect(server, "msgpack")
    ca = ok(a.hello())["conn"]
    cb = ok(b.hello())["conn"]
    assert ca != cb


def bad_tokens():
    good = mint(JWT_SECRET, sub="u1", name="U")
    now = int(time.time())
    none_alg = (b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(b'{"sub":"u1"}') + ".")
    return {
        "bad_signature": tamper_signature(good),
        "other_secret": mint("not-the-secret", sub="u1"),
        "expired": mint(JWT_SECRET, sub="u1", exp=now - 120),
        "not_yet_valid": mint(JWT_SECRET, sub="u1", nbf=now + 3600),
        "alg_none": none_alg,
        "alg_hs512_header": mint(JWT_SECRET, sub="u1", header={"alg": "HS512", "typ": "JWT"}),
        "no_sub": mint(JWT_SECRET, name="nobody"),
        "garbage": "not-a-jwt",
        "empty": "",
        "two_parts": good.rsplit(".", 1)[0],
    }


@pytest.mark.parametrize("kind", sorted(bad_tokens()))
@pytest.mark.parametrize("codec", CODECS)
def test_bad_token_is_auth_failed(shared_server, kind, codec):
    c = connect(shared_server, codec)
    r = c.hello(token=bad_tokens()[kind])
    assert err_code(r) == "auth_failed", r
    # The connection stays open and is still unauthenticated.
    ok(c.ping())
    assert err_code(c.join("x")) == "not_authenticated"


def test_guest_when_anonymous_allowed(server):
    a, b = connect(server), connect(server, "msgpack")
    ua = ok(a.hello())["user"]
    ub = ok(b.hello())["user"]
    for u in (ua, ub):
        assert u["id"].startswith("guest-") and len(u["id"]) > len("guest-")
        assert u["name"].startswith("Guest ")
    assert ua["id"] != ub["id"]
    # guest-<16 random hex digits> / Guest <its first 4>
    for u in (ua, ub):
        assert re.fullmatch(r"guest-[0-9a-f]{16}", u["id"]), u
        assert u["name"] == "Guest " + u["id"][len("guest-"):][:4]


def test_anonymous_disabled_requires_token(server_factory):
    srv = server_factory(auth__allow_anonymous=False)
    c = connect(srv)
    assert err_code(c.hello()) == "auth_required"
    assert err_code(c.join("x")) == "not_authenticated"
    # A token still works on the same connection.
    assert ok(c.hello(token=mint(JWT_SECRET, sub="tok")))["user"]["id"] == "tok"


@pytest.mark.parametrize("codec", CODECS)
def test_second_hello_is_already_authenticated(server, codec):
    c = connect(server, codec)
    user = ok(c.hello())["user"]
    assert err_code(c.hello()) == "already_authenticated"
    assert err_code(c.hello(token=mint(JWT_SECRET, sub="other"))) == "already_authenticated"
    # still the same user, connection still fine
    ok(c.join("still"))
    ack = ok(c.send("still", "x"))
    assert c.next_event("message", room="still")["from"] == user
    assert ack["seq"] == 1


@pytest.mark.parametrize("codec", CODECS)
def test_requests_before_hello_are_not_authenticated(server, codec):
    c = connect(server, codec)
    assert err_code(c.join("lobby")) == "not_authenticated"
    assert err_code(c.send("lobby", "x", cmid="c1")) == "not_authenticated"
    assert err_code(c.leave("lobby")) == "not_authenticated"
    r = c.request("join", id="str-id", room="lobby")
    assert r["re"] == "str-id" and err_code(r) == "not_authenticated"
    # ping is allowed before hello
    assert isinstance(ok(c.ping())["ts"], int)
    ok(c.hello())
    ok(c.join("lobby"))


def test_hello_timeout_closes_with_4001(server_factory):
    srv = server_factory(limits__hello_timeout="300ms")
    idle = connect(srv, "json")
    pinger = connect(srv, "msgpack")
    done = connect(srv, "json")
    ok(done.hello())
    t0 = time.monotonic()
    # ping does not count as hello
    ok(pinger.ping())
    assert idle.expect_close(timeout=5)[0] == 4001
    assert pinger.expect_close(timeout=5)[0] == 4001
    assert time.monotonic() - t0 < 4
    # A connection that said hello in time is not closed.
    time.sleep(max(0.0, 0.6 - (time.monotonic() - t0)))
    ok(done.ping())
    ok(done.join("alive"))


def test_hello_field_wrong_types_are_bad_request(server):
    c = connect(server)
    assert err_code(c.request("hello", token=5)) == "bad_request"
    assert err_code(c.request("hello", token=["a"])) == "bad_request"
    assert err_code(c.request("hello", client={"x": 1})) == "bad_request"
    assert err_code(c.request("hello", client="x" * 65)) == "bad_request"
    ok(c.hello(client="ok-client/1"))
