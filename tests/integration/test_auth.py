"""Authentication, access control, abuse limits and transport security over the real parleyd
(docs/security.md, docs/protocol.md "hello"/"refresh"/errors/close codes; issue 5 "Acceptance")."""

import json
import multiprocessing
import subprocess
import time

import pytest

import wsclient
from conftest import JWT_SECRET, PARLEY_BIN
from jwtmint import b64url, mint
from support_auth import (TLSClient, claims, gen_cert, gen_ec, gen_rsa, handshake, http_request, q,
                          sighup, sign_jwt, start_with_conf, wait_for, write_extra)
from wsclient import Client, ConnectionClosed, HandshakeRefused, WSError, ok


def connect(srv, codec="json", **kw):
    c = Client(srv.port, codec=codec, **kw)
    srv.clients.append(c)
    return c


def login(srv, sub, rooms=None, name=None, codec="json", exp_in=600, **extra):
    c = connect(srv, codec, name=sub)
    r = c.hello(token=mint(JWT_SECRET, sub=sub, name=name or sub.title(), rooms=rooms, exp_in=exp_in, **extra)
                if rooms is not None else mint(JWT_SECRET, sub=sub, name=name or sub.title(), exp_in=exp_in,
                                               **extra))
    ok(r)
    return c


def err(reply):
    assert "err" in reply, f"expected an error reply, got {reply}"
    return reply["err"]


def subcode(reply):
    e = err(reply)
    assert e["code"] == "auth_failed", reply
    return e["msg"].split(":", 1)[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return {
        "rsa1": gen_rsa(d, "rsa1"),
        "rsa2": gen_rsa(d, "rsa2"),
        "ec1": gen_ec(d, "ec1"),
        "ec_other": gen_ec(d, "ec_other"),
    }


# ---- RS256 / ES256 keys and rotation ----------------------------------------------------------------


def key_lines(kid, alg, pub, priv=None):
    lines = [f"auth.keys.{kid}.alg = {alg}", f"auth.keys.{kid}.public_key = {q(pub)}"]
    if priv:
        lines.append(f"auth.keys.{kid}.private_key = {q(priv)}")
    return lines


def test_rs256_and_es256_tokens_are_verified_with_their_kid(server_factory, keys):
    rsa_priv, rsa_pub = keys["rsa1"]
    ec_priv, ec_pub = keys["ec1"]
    srv = start_with_conf(server_factory, key_lines("rsa1", "RS256", rsa_pub) + key_lines("ec1", "ES256", ec_pub))

    rs = sign_jwt("RS256", rsa_priv, claims("ursa", "Rsa User"), kid="rsa1")
    assert ok(connect(srv).hello(token=rs))["user"] == {"id": "ursa", "name": "Rsa User"}
    es = sign_jwt("ES256", ec_priv, claims("uec", "Ec User"), kid="ec1")
    ec_client = connect(srv, "msgpack")
    assert ok(ec_client.hello(token=es))["user"] == {"id": "uec", "name": "Ec User"}
    ok(ec_client.join("keys-room"))

    # The kid pins the key *and* the algorithm.
    assert subcode(connect(srv).hello(token=sign_jwt("ES256", ec_priv, claims("x"), kid="rsa1"))) \
        == "alg_not_allowed"
    assert subcode(connect(srv).hello(token=sign_jwt("RS256", keys["rsa2"][0], claims("x"), kid="rsa1"))) \
        == "bad_signature"
    assert subcode(connect(srv).hello(token=sign_jwt("ES256", keys["ec_other"][0], claims("x"), kid="ec1"))) \
        == "bad_signature"
    assert subcode(connect(srv).hello(token=sign_jwt("RS256", rsa_priv, claims("x"), kid="nope"))) \
        == "unknown_kid"
    # HS/RS confusion: an HS256 token "signed" with the RSA public key's PEM text.
    with open(rsa_pub, "rb") as f:
        pem = f.read()
    confused = mint(pem, sub="x", header={"alg": "HS256", "typ": "JWT", "kid": "rsa1"})
    assert subcode(connect(srv).hello(token=confused)) == "alg_not_allowed"
    # alg none with a valid kid
    none_tok = (b64url(b'{"alg":"none","typ":"JWT","kid":"rsa1"}') + "." + b64url(b'{"sub":"x"}') + ".")
    assert subcode(connect(srv).hello(token=none_tok)) == "alg_not_allowed"
    # Tampered payload of a valid RS256 token.
    h, p, s = rs.split(".")
    forged = h + "." + b64url(json.dumps(claims("admin")).encode()) + "." + s
    assert subcode(connect(srv).hello(token=forged)) == "bad_signature"


def test_key_rotation_by_kid_with_sighup(server_factory, keys):
    srv = start_with_conf(server_factory, key_lines("old", "RS256", keys["rsa1"][1]))
    old_tok = sign_jwt("RS256", keys["rsa1"][0], claims("rot", "Rot"), kid="old")
    new_tok = sign_jwt("ES256", keys["ec1"][0], claims("rot", "Rot"), kid="new")
    veteran = connect(srv)
    ok(veteran.hello(token=old_tok))
    ok(veteran.join("rot-room"))
    assert subcode(connect(srv).hello(token=new_tok)) == "unknown_kid"

    # Step 1: add the new key next to the old one.
    write_extra(srv, key_lines("old", "RS256", keys["rsa1"][1]) + key_lines("new", "ES256", keys["ec1"][1]))
    sighup(srv)
    ok(connect(srv).hello(token=new_tok))
    ok(connect(srv).hello(token=old_tok))

    # Step 2: remove the old key: its tokens fail with unknown_kid, its connections run on.
    write_extra(srv, key_lines("new", "ES256", keys["ec1"][1]))
    sighup(srv)
    assert subcode(connect(srv).hello(token=old_tok)) == "unknown_kid"
    ok(connect(srv).hello(token=new_tok))
    ok(veteran.send("rot-room", "still here"))
    assert veteran.next_event("message", room="rot-room")["body"] == "still here"


def test_a_bad_key_file_on_reload_keeps_the_old_keys(server_factory, keys):
    srv = start_with_conf(server_factory, key_lines("k", "RS256", keys["rsa1"][1]))
    tok = sign_jwt("RS256", keys["rsa1"][0], claims("kf"), kid="k")
    write_extra(srv, key_lines("k", "RS256", "/nonexistent/parley-test-key.pem"))
    sighup(srv)
    ok(connect(srv).hello(token=tok))


# ---- access rules ------------------------------------------------------------------------------------

ACCESS_LINES = [
    "rooms.team-*.access = members",
    "rooms.hr-*.access = private",
    "rooms.announce*.access = readonly",
]


@pytest.fixture
def access_server(server_factory):
    return start_with_conf(server_factory, ACCESS_LINES)


def test_user_without_rights_cannot_touch_members_or_private_rooms(access_server):
    srv = access_server
    alice = login(srv, "alice", rooms=["team-*:rw", "hr-*:rw"])
    bob = login(srv, "bob", rooms=["lobby:rw"])
    for room in ("team-x", "hr-x"):
        ok(alice.join(room))
        ok(alice.send(room, f"secret in {room}"))
        alice.next_event("message", room=room)

    for room in ("team-x", "hr-x"):
        assert err(bob.join(room))["code"] == "forbidden", room
        assert err(bob.request("history", room=room))["code"] == "forbidden", room
        assert err(bob.send(room, "let me in"))["code"] in ("forbidden", "not_joined"), room
    # Private room: not even presence.
    assert err(bob.request("presence", room="hr-x"))["code"] == "forbidden"
    # Nothing reveals whether a room exists: the same error for an empty / unknown room.
    known = err(bob.request("history", room="hr-x"))
    unknown = err(bob.request("history", room="hr-never-used"))
    assert known["code"] == unknown["code"] == "forbidden"
    assert known["msg"].replace("hr-x", "R") == unknown["msg"].replace("hr-never-used", "R")
    # And bob received nothing of those rooms.
    bob.drain(0.2)
    assert not [e for e in bob.events if e.get("room") in ("team-x", "hr-x")], bob.events
    # Alice's members still work: her messages reached nobody else, her room state is intact.
    assert [m["body"] for m in ok(alice.request("history", room="hr-x"))["messages"]] == ["secret in hr-x"]


def test_send_to_a_room_without_rights_is_forbidden(access_server):
    """security.md: without read right every request about the room gets the same `forbidden` (and
    `send` without write right is `forbidden`), whether the connection joined it or not."""
    srv = access_server
    alice = login(srv, "alice", rooms=["team-*:rw", "hr-*:rw"])
    bob = login(srv, "bob", rooms=["lobby:rw"])
    ok(alice.join("hr-x"))
    for room in ("team-x", "hr-x", "hr-never-used", "dm:alice:carol"):
        assert err(bob.send(room, "let me in"))["code"] == "forbidden", room
        assert err(bob.request("typing", room=room, active=True))["code"] == "forbidden", room


def test_member_with_grant_can_use_members_room(access_server):
    srv = access_server
    alice = login(srv, "alice", rooms=["team-*:rw"])
    carol = login(srv, "carol", rooms={"team-x": "rw"})
    ok(alice.join("team-x"))
    ok(carol.join("team-x"))
    ok(carol.send("team-x", "hi team"))
    assert alice.next_event("message", room="team-x")["body"] == "hi team"
    # a grant for another team does not cover team-y
    assert err(carol.join("team-y"))["code"] == "forbidden"


def test_read_grant_without_write_cannot_send_in_members_room(access_server):
    srv = access_server
    reader = login(srv, "rdr", rooms=["team-*:r"])
    ok(reader.join("team-r"))
    assert err(reader.send("team-r", "x"))["code"] == "forbidden"
    assert err(reader.request("typing", room="team-r", active=True))["code"] == "forbidden"


def test_third_user_cannot_read_or_write_a_dm_room(access_server):
    srv = access_server
    alice = login(srv, "alice")
    bob = login(srv, "bob")
    carol = login(srv, "carol", rooms=["dm:*:rw", "*:rw"])
    room = "dm:alice:bob"
    ok(alice.join(room))
    ok(bob.join(room))
    ok(alice.send(room, "psst"))
    assert bob.next_event("message", room=room)["body"] == "psst"
    ok(bob.send(room, "psst back"))
    assert alice.next_event("message", room=room, body="psst back")

    assert err(carol.join(room))["code"] == "forbidden"
    assert err(carol.request("history", room=room))["code"] == "forbidden"
    assert err(carol.send(room, "eavesdrop"))["code"] in ("forbidden", "not_joined")
    assert err(carol.request("presence", room=room))["code"] == "forbidden"
    # malformed dm rooms give nobody any right
    for bad in ("dm:alice", "dm:alice:bob:carol", "dm::alice"):
        assert err(alice.join(bad))["code"] == "forbidden", bad
    # dm:a:a is a's private notes
    ok(alice.join("dm:alice:alice"))
    assert err(bob.join("dm:alice:alice"))["code"] == "forbidden"
    alice.no_event("message", room=room, body="eavesdrop", timeout=0.2)
    history = ok(bob.request("history", room=room))["messages"]
    assert [m["body"] for m in history] == ["psst", "psst back"]


def test_read_only_member_cannot_send(access_server):
    srv = access_server
    staff = login(srv, "staff", rooms=["announce*:rw"])
    reader = login(srv, "reader", rooms=["announce:r"])
    nogrant = login(srv, "plain")
    for c in (staff, reader, nogrant):
        ok(c.join("announce"))
    ok(staff.send("announce", "release today"))
    assert staff.next_event("message", room="announce")["body"] == "release today"
    assert reader.next_event("message", room="announce")["body"] == "release today"
    assert nogrant.next_event("message", room="announce")["body"] == "release today"
    for c in (reader, nogrant):
        assert err(c.send("announce", "me too"))["code"] == "forbidden"
        assert err(c.request("typing", room="announce", active=True))["code"] == "forbidden"
        assert len(ok(c.request("history", room="announce"))["messages"]) == 1
    # presence: everyone in a readonly room
    members = ok(reader.request("presence", room="announce"))["members"]
    assert {"staff", "reader", "plain"} <= {m["user"]["id"] for m in members}
    staff.no_event("message", room="announce", timeout=0.2)


def test_guests_are_restricted_by_guest_rooms(server_factory):
    srv = start_with_conf(server_factory, ACCESS_LINES + ['auth.guest_rooms = "lobby:rw,help-*:r"'])
    g = connect(srv)
    gid = ok(g.hello())["user"]["id"]
    assert gid.startswith("guest-")
    ok(g.join("lobby"))
    ok(g.send("lobby", "hello from a guest"))
    ok(g.join("help-install"))
    assert err(g.send("help-install", "x"))["code"] == "forbidden"
    for room in ("random", "team-x", "hr-x", f"dm:{gid}:alice", f"dm:alice:{gid}"):
        assert err(g.join(room))["code"] == "forbidden", room
    # guests cannot refresh
    r = g.request("refresh", token=mint(JWT_SECRET, sub="someone", exp_in=600))
    assert subcode(r) == "guest"
    # A user with a token is not capped by auth.guest_rooms.
    u = login(srv, "usr")
    ok(u.join("random"))
    ok(u.send("random", "fine"))


def test_guest_with_default_guest_rooms_cannot_write_readonly_or_read_members(access_server):
    g = connect(access_server)
    ok(g.hello())
    ok(g.join("announce"))
    assert err(g.send("announce", "x"))["code"] == "forbidden"
    assert err(g.join("team-x"))["code"] == "forbidden"
    assert err(g.join("hr-x"))["code"] == "forbidden"


# ---- refresh and expiry ------------------------------------------------------------------------------


def test_refresh_extends_and_expiry_closes_with_4002(server_factory):
    srv = server_factory({"auth.leeway": "0s"})
    now = int(time.time())
    exp = now + 3
    keeper = connect(srv, name="keeper")       # refreshes in time
    lapser = connect(srv, name="lapser")       # does not
    wrong = connect(srv, name="wrong")         # tries another user's token
    ok(keeper.hello(token=mint(JWT_SECRET, sub="keeper", exp=exp)))
    ok(lapser.hello(token=mint(JWT_SECRET, sub="lapser", exp=exp)))
    ok(wrong.hello(token=mint(JWT_SECRET, sub="wrong", exp=exp)))
    for c in (keeper, lapser, wrong):
        ok(c.join("exp-room"))

    new_exp = now + 120
    r = ok(keeper.request("refresh", token=mint(JWT_SECRET, sub="keeper", exp=new_exp)))
    assert r["exp"] == new_exp
    # Another user's token is refused and changes nothing (the old token keeps running).
    r = wrong.request("refresh", token=mint(JWT_SECRET, sub="someone-else", exp=new_exp))
    assert subcode(r) == "sub_mismatch"
    assert subcode(wrong.request("refresh", token=mint(JWT_SECRET, sub="wrong", exp=now - 100))) == "expired"
    ok(wrong.send("exp-room", "still me"))

    # Expiry: exp + leeway(0) -> close 4002, within a bounded time.
    t0 = time.monotonic()
    assert lapser.expect_close(timeout=exp - time.time() + 4)[0] == 4002
    assert wrong.expect_close(timeout=exp - time.time() + 4)[0] == 4002
    assert time.time() >= exp - 0.5, "closed before the token expired"
    assert time.monotonic() - t0 < 8
    # The refreshed connection runs on past the old exp.
    if time.time() < exp + 1:
        time.sleep(exp + 1 - time.time())
    ok(keeper.ping())
    ok(keeper.send("exp-room", "refreshed"))
    assert keeper.next_event("message", room="exp-room", body="refreshed")
    assert keeper.closed is None


def test_refresh_with_fewer_rights_kicks_from_rooms_no_longer_allowed(server_factory):
    srv = start_with_conf(server_factory, ACCESS_LINES)
    u = login(srv, "kiki", rooms=["team-a:rw", "team-b:rw", "hr-c:rw"])
    other = login(srv, "otto", rooms=["team-*:rw", "hr-*:rw"])
    for room in ("team-a", "team-b", "hr-c", "lobby"):
        ok(u.join(room))
    for room in ("team-a", "team-b", "hr-c"):
        ok(other.join(room))
    ok(u.request("refresh", token=mint(JWT_SECRET, sub="kiki", rooms=["team-a:rw"], exp_in=600)))
    kicked = {u.next_event("kicked", room=r)["room"] for r in ("team-b", "hr-c")}
    assert kicked == {"team-b", "hr-c"}
    u.no_event("kicked", room="team-a", timeout=0.2)
    u.no_event("kicked", room="lobby", timeout=0.05)
    # No more events of the rooms left; the allowed ones still work.
    ok(other.send("team-b", "you are gone"))
    ok(other.send("team-a", "you are here"))
    assert u.next_event("message", room="team-a")["body"] == "you are here"
    u.no_event("message", room="team-b", timeout=0.3)
    assert err(u.join("team-b"))["code"] == "forbidden"
    assert err(u.send("hr-c", "x"))["code"] in ("forbidden", "not_joined")
    ok(u.send("lobby", "lobby still fine"))


# ---- rate limits -------------------------------------------------------------------------------------

RATE_BASE = {
    "rate.send_user": "off",
    "rate.send_ip": "off",
    "rate.join": "off",
    "rate.typing": "off",
    "rate.connect_ip": "off",
    "limits.max_connections_per_ip": 0,
}


def test_graded_response_rate_limited_then_4029(server_factory):
    conf = dict(RATE_BASE)
    conf.update({"rate.send": "1/s burst 2", "rate.strikes": 5, "rate.strikes_window": "10s"})
    srv = server_factory(conf)
    c = login(srv, "spammy")
    ok(c.join("rl-room"))
    ok(c.send("rl-room", 1))
    ok(c.send("rl-room", 2))
    r = c.send("rl-room", 3)
    e = err(r)
    assert e["code"] == "rate_limited"
    assert isinstance(e.get("retry_after"), int) and 0 < e["retry_after"] <= 1000, e
    # Nothing else happens: the connection and its rooms carry on.
    ok(c.ping())
    ok(c.request("history", room="rl-room"))
    for _ in range(3):
        assert err(c.send("rl-room", "again"))["code"] == "rate_limited"
    # fifth strike closes with 4029
    c.send_obj({"id": "last", "op": "send", "room": "rl-room", "body": "x", "cmid": "last"})
    code, _ = c.expect_close(timeout=3)
    assert code == 4029


def test_join_and_typing_limits(server_factory):
    conf = dict(RATE_BASE)
    conf.update({"rate.send": "off", "rate.join": "1/m burst 3", "rate.typing": "1/m burst 2",
                 "rate.strikes": 0})
    srv = server_factory(conf)
    c = login(srv, "joiner")
    for i in range(3):
        ok(c.join(f"j-{i}"))
    e = err(c.join("j-3"))
    assert e["code"] == "rate_limited" and e["retry_after"] > 0
    ok(c.request("typing", room="j-0", active=True))
    ok(c.request("typing", room="j-0", active=False))
    e = err(c.request("typing", room="j-0", active=True))
    assert e["code"] == "rate_limited" and e["retry_after"] > 0
    ok(c.ping())  # strikes = 0: never closed


def _flooder_blob(codec_client, room, n, tag):
    frames = []
    for i in range(n):
        data = codec_client.encode({"id": i + 1, "op": "send", "room": room, "body": f"{tag}-{i}",
                                    "cmid": f"{tag}-{i}"})
        frames.append(wsclient.encode_frame(wsclient.OP_TEXT, data))
    return frames


def _flood_process(index, f, frames, queue):
    """In a forked child: write 25 sends, read what came back for 20 ms (until the close frame), repeat
    (~1250 sends/s); report a summary on queue."""
    res = {"t0": time.monotonic()}
    try:
        for i in range(0, len(frames), 25):
            f.ws.sock.sendall(b"".join(frames[i:i + 25]))
            deadline = time.monotonic() + 0.02
            try:
                while True:
                    f._read_one(deadline)
            except wsclient.Timeout:
                pass
        res["code"] = f.expect_close(timeout=10)[0]
    except ConnectionClosed as e:
        res["code"] = e.code
    except OSError as e:
        res["error"] = repr(e)
    limited = [r for r in f.replies if "err" in r and r["err"]["code"] == "rate_limited"]
    res.update(limited=len(limited), accepted=sum(1 for r in f.replies if "ok" in r),
               bad_retry_after=sum(1 for r in limited if not isinstance(r["err"].get("retry_after"), int)
                                   or r["err"]["retry_after"] < 0),
               other_errors=sorted({r["err"]["code"] for r in f.replies if "err" in r} - {"rate_limited"}),
               elapsed=time.monotonic() - res.pop("t0"))
    queue.put((index, res))


def _percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def test_flooding_client_is_limited_then_closed_while_others_keep_their_latency(server_factory):
    conf = dict(RATE_BASE)
    conf.update({"rate.send": "50/s burst 50", "rate.send_user": "100/s burst 100",
                 "rate.strikes": 1000, "rate.strikes_window": "10s"})
    srv = server_factory(conf)
    room = "flood-room"
    normal = login(srv, "normal")
    watcher = login(srv, "watcher")
    ok(normal.join(room))
    ok(watcher.join(room))
    flooders = [login(srv, f"flooder{i}") for i in range(3)]
    for f in flooders:
        ok(f.join(room))
    normal.drain(0.1)

    seq = [0]

    def rtt_sample():
        seq[0] += 1
        cmid = f"n-{seq[0]}"
        t0 = time.perf_counter()
        normal.send_obj({"id": f"n{seq[0]}", "op": "send", "room": room, "body": cmid, "cmid": cmid})
        ack = normal.next_reply(re=f"n{seq[0]}", timeout=5)
        assert "ok" in ack, ack
        normal.next_event("message", room=room, cmid=cmid, timeout=5)
        return time.perf_counter() - t0

    def measure(n, stop=None):
        out = []
        for _ in range(n):
            if stop is not None and stop():
                break
            out.append(rtt_sample())
            time.sleep(0.025)
        return out

    before = measure(30)

    # The flooders run in forked processes, so that their work does not slow this process (the GIL)
    # and the normal client's round trips measure the server only.
    blobs = [_flooder_blob(f, room, 4000, f"fl{i}") for i, f in enumerate(flooders)]
    mp = multiprocessing.get_context("fork")
    queue = mp.Queue()
    procs = [mp.Process(target=_flood_process, args=(i, f, b, queue), daemon=True)
             for i, (f, b) in enumerate(zip(flooders, blobs))]
    for p in procs:
        p.start()
    results = {}
    try:
        time.sleep(0.1)
        during = measure(60, stop=lambda: all(not p.is_alive() for p in procs))
        deadline = time.monotonic() + 20
        while len(results) < len(procs) and time.monotonic() < deadline:
            try:
                i, res = queue.get(timeout=max(0.1, deadline - time.monotonic()))
                results[i] = res
            except Exception:  # noqa: BLE001 (queue.Empty)
                break
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()   # by PID: only the processes this test started
                p.join(timeout=5)

    # Every flooder got rate_limited errors with retry_after, then the close 4029.
    assert len(results) == len(procs), results
    for i, res in sorted(results.items()):
        assert res.get("code") == 4029, f"flooder {i}: {res}"
        assert res["limited"] >= 100, f"flooder {i}: only {res['limited']} rate_limited replies"
        assert res["bad_retry_after"] == 0, res
        # accepted: at most the burst (50) plus 50/s while the flood lasted
        assert res["accepted"] <= 50 + 50 * res["elapsed"] * 1.2 + 5, res

    assert len(during) >= 10, f"flood too short to measure ({len(during)} samples)"
    p95_before, p95_during = _percentile(before, 95), _percentile(during, 95)
    print(f"normal client round trip p95: before {p95_before * 1000:.2f} ms, during the flood "
          f"{p95_during * 1000:.2f} ms ({len(during)} samples)")
    assert p95_during < 0.050, (p95_before, p95_during)
    # The normal client and the watcher are untouched.
    assert normal.closed is None and watcher.closed is None
    ok(normal.send(room, "after the flood"))
    assert watcher.next_event("message", room=room, body="after the flood", timeout=5)
    ok(watcher.ping())


def test_max_connections_per_ip_is_503(server_factory):
    conf = dict(RATE_BASE)
    conf.update({"limits.max_connections_per_ip": 3, "rate.send": "off"})
    srv = server_factory(conf)
    conns = [connect(srv) for _ in range(3)]
    with pytest.raises(HandshakeRefused) as ei:
        connect(srv)
    assert ei.value.status == 503
    # a freed slot can be used again (the server notices the close within a bounded time)
    conns[0].close()

    def try_connect():
        try:
            return connect(srv)
        except HandshakeRefused as e:
            assert e.status == 503
            return None
    c = wait_for(try_connect, timeout=5, interval=0.05, what="a free per-IP slot")
    ok(c.hello())
    ok(conns[1].hello())


def test_connect_ip_rate_is_429(server_factory):
    conf = dict(RATE_BASE)
    conf.update({"rate.connect_ip": "1/m burst 3", "rate.send": "off"})
    srv = server_factory(conf)
    statuses = []
    for _ in range(5):
        st, ws = handshake(srv.port)
        statuses.append(st)
        if ws:
            ws.close()
    assert statuses[:3] == [101, 101, 101], statuses
    assert statuses[3:] == [429, 429], statuses
    # HTTP endpoints are not WebSocket handshakes
    assert wsclient.http_get(srv.port, "/healthz")[0] == 200


# ---- transport security --------------------------------------------------------------------------------


def test_tls_listener_end_to_end(server_factory, tmp_path):
    cert, key = gen_cert(tmp_path)
    srv = server_factory({"tls.cert": cert, "tls.key": key})
    a = TLSClient(srv.port, "json")
    b = TLSClient(srv.port, "msgpack")
    srv.clients += [a, b]
    assert a.ws.tls_version and a.ws.tls_version.startswith("TLS")
    ok(a.hello(token=mint(JWT_SECRET, sub="tlsa", exp_in=600)))
    ok(b.hello(token=mint(JWT_SECRET, sub="tlsb", exp_in=600)))
    ok(a.join("tls-room"))
    ok(b.join("tls-room"))
    ok(a.send("tls-room", {"text": "over wss"}))
    assert b.next_event("message", room="tls-room")["body"] == {"text": "over wss"}
    ok(b.send("tls-room", "back"))
    assert a.next_event("message", room="tls-room", body="back")
    # a large frame crosses several TLS records
    big = "y" * 12000
    ok(a.send("tls-room", big))
    assert b.next_event("message", room="tls-room", body=big)
    assert http_request(srv.port, "GET", "/healthz", tls=True)[0] == 200
    # The listener speaks only TLS: a plain-text handshake does not get a 101.
    with pytest.raises((WSError, OSError)):
        ws = wsclient.WebSocket(srv.port, subprotocols=["parley.v1.json"], timeout=2)
        ws.close()


def test_cross_origin_handshake_is_refused_unless_allowed(server_factory):
    srv = server_factory({"server.origins": "https://chat.example.com,https://app.example.com"})
    st, _ = handshake(srv.port, {"Origin": "https://evil.example.net"})
    assert st == 403
    st, _ = handshake(srv.port, {"Origin": "https://chat.example.com.evil.net"})
    assert st == 403
    for origin in ("https://chat.example.com", "https://app.example.com"):
        st, ws = handshake(srv.port, {"Origin": origin})
        assert st == 101, origin
        ws.close()
    st, ws = handshake(srv.port)  # no Origin: not a browser
    assert st == 101
    ws.close()

    open_srv = server_factory()   # server.origins empty: any origin
    st, ws = handshake(open_srv.port, {"Origin": "https://evil.example.net"})
    assert st == 101
    ws.close()


def test_origin_allowlist_is_live_on_sighup(server_factory):
    srv = server_factory()
    st, ws = handshake(srv.port, {"Origin": "https://evil.example.net"})
    assert st == 101
    ws.close()
    write_extra(srv, ['server.origins = "https://chat.example.com"'])
    sighup(srv)
    assert handshake(srv.port, {"Origin": "https://evil.example.net"})[0] == 403


# ---- the token CLI and --check ------------------------------------------------------------------------


def run_parleyd(*args, timeout=20):
    return subprocess.run([PARLEY_BIN, *args], capture_output=True, text=True, timeout=timeout)


def jwt_payload(tok):
    p = tok.split(".")[1]
    return json.loads(__import__("base64").urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def test_token_cli_mints_a_token_the_server_accepts(server_factory):
    srv = start_with_conf(server_factory, ACCESS_LINES)
    r = run_parleyd("token", "--sub", "u42", "--name", "Test User", "--rooms", "team-*:rw", "--ttl", "1h",
                    "-c", srv.conf_dir)
    assert r.returncode == 0, r.stderr
    tok = r.stdout.strip()
    assert tok.count(".") == 2
    payload = jwt_payload(tok)
    assert payload["sub"] == "u42" and abs(payload["exp"] - time.time() - 3600) < 60
    c = connect(srv)
    assert ok(c.hello(token=tok))["user"] == {"id": "u42", "name": "Test User"}
    ok(c.join("team-blue"))
    ok(c.send("team-blue", "minted"))
    assert err(c.join("hr-x"))["code"] == "forbidden"


def test_token_cli_with_an_rs256_kid(server_factory, keys):
    priv, pub = keys["rsa2"]
    srv = start_with_conf(server_factory, key_lines("cli", "RS256", pub, priv))
    r = run_parleyd("token", "--sub", "rsuser", "--kid", "cli", "--ttl", "10m", "-c", srv.conf_dir)
    assert r.returncode == 0, r.stderr
    assert ok(connect(srv).hello(token=r.stdout.strip()))["user"]["id"] == "rsuser"


def test_token_cli_errors(tmp_path):
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "50.conf").write_text("auth.jwt_secret = \"\"\n")
    r = run_parleyd("token", "--sub", "u1", "-c", str(conf))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.strip() == ""
    (conf / "50.conf").write_text(f"auth.jwt_secret = {q(JWT_SECRET)}\n")
    assert run_parleyd("token", "--sub", "u1", "--ttl", "soon", "-c", str(conf)).returncode == 1
    assert run_parleyd("token", "--sub", "u1", "--rooms", "team-*:rwx", "-c", str(conf)).returncode == 1
    assert run_parleyd("token", "--bogus-flag", "-c", str(conf)).returncode == 2


def test_check_rejects_a_missing_key_file(tmp_path, keys):
    conf = tmp_path / "conf.d"
    conf.mkdir()
    missing = str(tmp_path / "no-such-key.pem")
    (conf / "50.conf").write_text("\n".join(key_lines("k1", "RS256", missing)) + "\n")
    r = run_parleyd("--check", "-c", str(conf))
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "no-such-key.pem" in (r.stdout + r.stderr)
    # the same with an existing key passes
    (conf / "50.conf").write_text("\n".join(key_lines("k1", "RS256", keys["rsa1"][1])) + "\n")
    r = run_parleyd("--check", "-c", str(conf))
    assert r.returncode == 0, (r.stdout, r.stderr)
    # a key of the wrong type for the algorithm is refused too
    (conf / "50.conf").write_text("\n".join(key_lines("k1", "ES256", keys["rsa1"][1])) + "\n")
    assert run_parleyd("--check", "-c", str(conf)).returncode != 0
