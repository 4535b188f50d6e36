"""Bad input: every malformed frame or request gets the documented error reply or close code, and the
server and every other client carry on (docs/protocol.md "Errors", "Close codes", "Transport")."""

import itertools
import json

import msgpack
import pytest

import wsclient
from wsclient import OP_BINARY, OP_TEXT, WebSocket, encode_frame, err_code, handshake_status, ok

_rooms = itertools.count(1)


class Pair:
    """Two healthy clients (one per codec) in one room, and a bad client in the same room."""

    def __init__(self, srv, bad_codec):
        self.srv = srv
        self.room = f"healthy-{next(_rooms)}"
        self.a = srv.client("json")
        self.b = srv.client("msgpack")
        ok(self.a.join(self.room))
        ok(self.b.join(self.room))
        self.n = 0
        self.check()
        self.bad = srv.client(bad_codec)
        ok(self.bad.join(self.room))

    def check(self):
        """Both healthy clients still exchange messages, in order, with the next seq."""
        for sender in (self.a, self.b):
            self.n += 1
            body = {"check": self.n}
            ack = ok(sender.send(self.room, body))
            for c in (self.a, self.b):
                ev = c.next_event("message", room=self.room, body=body)
                assert ev["seq"] == ack["seq"]
        self.a.events.clear()
        self.b.events.clear()

    def no_delivery(self, timeout=0.3):
        """Nothing reached the healthy clients' room (e.g. a rejected send was not published)."""
        self.a.no_event("message", room=self.room, timeout=timeout)
        self.b.no_event("message", room=self.room, timeout=0.05)


@pytest.fixture
def pair_json(shared_server):
    return Pair(shared_server, "json")


@pytest.fixture
def pair_msgpack(shared_server):
    return Pair(shared_server, "msgpack")


@pytest.fixture(params=["json", "msgpack"])
def pair(shared_server, request):
    return Pair(shared_server, request.param)


def assert_null_reply(c, code):
    r = c.next_reply()
    assert "re" in r and r["re"] is None, f"expected a reply with re=null, got {r}"
    assert err_code(r) == code, r
    return r


def still_usable(c):
    r = ok(c.ping())
    assert isinstance(r["ts"], int)


# ---- unparseable / not a map --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json}", b"", b"   ", b"\"unterminated", b"nul", b'{"id":', b'{"id"',
                                 b'{"op":"ping",, "id":1}', b'{"id":1.5,"op":', b'{"id":1,"id":2,"op":"ping"}'])
def test_malformed_json_is_bad_frame_with_null_re(pair_json, raw):
    pair_json.bad.send_bytes(raw)
    assert_null_reply(pair_json.bad, "bad_frame")
    still_usable(pair_json.bad)
    pair_json.check()


@pytest.mark.parametrize("raw, rid", [(b'{"id":1,"op":', 1), (b'{"id":1,"op":"ping"} trailing', 1),
                                      (b'{"id":1,"op":"ping",}', 1), (b' { "op" : "x", "id" : "r-2" , "a": [}', "r-2"),
                                      (b'{"a":{"b":["}",{}]},"\\u0069d":-3,"op":}', -3)])
def test_malformed_json_with_a_readable_id_is_bad_frame_with_that_id(pair_json, raw, rid):
    pair_json.bad.send_bytes(raw)
    r = pair_json.bad.next_reply()
    assert err_code(r) == "bad_frame", r
    assert r["re"] == rid and type(r["re"]) is type(rid), r
    still_usable(pair_json.bad)
    pair_json.check()


@pytest.mark.parametrize("raw", [b"[1,2]", b"42", b'"str"', b"null", b"true", b"[]",
                                 b'[{"id":1,"op":"ping"}]'])
def test_json_non_map_is_bad_frame(pair_json, raw):
    pair_json.bad.send_bytes(raw)
    assert_null_reply(pair_json.bad, "bad_frame")
    still_usable(pair_json.bad)
    pair_json.check()


@pytest.mark.parametrize("raw", [b"\xc1", b"\x82\xa2id", b"\x81\xa2id", b"\xdf\xff\xff\xff\xff", b"",
                                 b"\x83\xa2id\x01\xa2op\xa4ping\xa2id\x02\x00"],
                         ids=["never-used", "truncated-map", "map-missing-value", "huge-map-count", "empty",
                              "two-ids"])
def test_msgpack_garbage_is_bad_frame(pair_msgpack, raw):
    pair_msgpack.bad.send_bytes(raw)
    assert_null_reply(pair_msgpack.bad, "bad_frame")
    still_usable(pair_msgpack.bad)
    pair_msgpack.check()


@pytest.mark.parametrize("raw, rid", [(b"\x82\xa2id\x01\xa2op\xa4ping\x00", 1),
                                      (b"\x83\xa1x\xc4\x02\x00\x01\xa2id\xcd\x01\x00\xa2op", 256),
                                      (b"\x82\xa2op\xc7\x01\x05x\xd9\x02id\xa3r-1", "r-1"),
                                      (b"\x82\xa2id\xd0\xfe\xa2op\xc1", -2)],
                         ids=["trailing-bytes", "bin-before-id", "ext-before-id", "invalid-after-id"])
def test_msgpack_garbage_with_a_readable_id_is_bad_frame_with_that_id(pair_msgpack, raw, rid):
    pair_msgpack.bad.send_bytes(raw)
    r = pair_msgpack.bad.next_reply()
    assert err_code(r) == "bad_frame", r
    assert r["re"] == rid and type(r["re"]) is type(rid), r
    still_usable(pair_msgpack.bad)
    pair_msgpack.check()


@pytest.mark.parametrize("obj", [[1, 2], 42, "str", None, [{"id": 1, "op": "ping"}]])
def test_msgpack_non_map_is_bad_frame(pair_msgpack, obj):
    pair_msgpack.bad.send_bytes(msgpack.packb(obj, use_bin_type=True))
    assert_null_reply(pair_msgpack.bad, "bad_frame")
    still_usable(pair_msgpack.bad)
    pair_msgpack.check()


def test_msgpack_non_string_keys_is_bad_frame(pair_msgpack):
    # {1: "ping"} -- MessagePack map with an integer key
    pair_msgpack.bad.send_bytes(b"\x81\x01\xa4ping")
    r = pair_msgpack.bad.next_reply()
    assert err_code(r) in ("bad_frame", "bad_request"), r
    assert r["re"] is None
    pair_msgpack.check()


@pytest.mark.parametrize("where", ["body", "extra_field", "id", "nested"])
@pytest.mark.parametrize("kind", ["bin", "ext"])
def test_msgpack_bin_and_ext_values_are_bad_frame(pair_msgpack, where, kind):
    p = pair_msgpack
    val = b"\x00\x01binary" if kind == "bin" else msgpack.ExtType(5, b"ext")
    frame = {"id": 77, "op": "send", "room": p.room, "body": "fine", "cmid": f"bin-{where}-{kind}"}
    if where == "body":
        frame["body"] = val
    elif where == "extra_field":
        frame["x"] = val
    elif where == "id":
        frame["id"] = val
    else:
        frame["body"] = {"list": [1, {"deep": val}]}
    p.bad.send_bytes(msgpack.packb(frame, use_bin_type=True))
    r = p.bad.next_reply()
    assert err_code(r) == "bad_frame", r
    # the id is echoed when it could be read (not when the id itself is the bin/ext value)
    assert r["re"] == (None if where == "id" else 77), r
    p.no_delivery()
    still_usable(p.bad)
    p.check()


def test_msgpack_non_utf8_string_is_bad_frame(pair_msgpack):
    p = pair_msgpack
    # {"id": 5, "op": "send", "room": <room>, "body": <str with invalid UTF-8>, "cmid": "u8"}
    room = msgpack.packb(p.room)
    raw = (b"\x85\xa2id\x05\xa2op\xa4send\xa4room" + room + b"\xa4body\xa3\xff\xfe\xfd\xa4cmid\xa2u8")
    p.bad.send_bytes(raw)
    r = p.bad.next_reply()
    assert err_code(r) == "bad_frame", r
    assert r["re"] == 5, r
    p.no_delivery()
    still_usable(p.bad)
    p.check()


def test_binary_frame_on_json_connection_is_bad_frame(pair_json):
    pair_json.bad.send_bytes(b'{"id":1,"op":"ping"}', opcode=OP_BINARY)
    assert_null_reply(pair_json.bad, "bad_frame")
    # a MessagePack request in a binary frame: its id is read as MessagePack
    pair_json.bad.send_bytes(msgpack.packb({"id": 8, "op": "ping"}), opcode=OP_BINARY)
    r = pair_json.bad.next_reply()
    assert err_code(r) == "bad_frame" and r["re"] == 8, r
    still_usable(pair_json.bad)
    pair_json.check()


def test_text_frame_on_msgpack_connection_is_bad_frame(pair_msgpack):
    # a JSON request in a text frame: its id is read as JSON, and the reply (MessagePack) carries it
    pair_msgpack.bad.send_bytes(b'{"id":7,"op":"ping"}', opcode=OP_TEXT)
    r = pair_msgpack.bad.next_reply()
    assert err_code(r) == "bad_frame" and r["re"] == 7, r
    pair_msgpack.bad.send_bytes(b'{"id":"seven","op":"ping"}', opcode=OP_TEXT)
    r = pair_msgpack.bad.next_reply()
    assert err_code(r) == "bad_frame" and r["re"] == "seven", r
    pair_msgpack.bad.send_bytes(msgpack.packb({"id": 2, "op": "ping"}).decode("latin-1").encode("utf-8"),
                                opcode=OP_TEXT)
    assert_null_reply(pair_msgpack.bad, "bad_frame")
    still_usable(pair_msgpack.bad)
    pair_msgpack.check()


# ---- ids and ops ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rid", [9, "req-9"])
def test_unknown_op_echoes_id(pair, rid):
    r = pair.bad.request("fly", id=rid, room=pair.room)
    assert r["re"] == rid and type(r["re"]) is type(rid)
    assert err_code(r) == "unknown_op"
    still_usable(pair.bad)
    pair.check()


def test_missing_id_is_bad_request_with_null_re(pair):
    pair.bad.send_obj({"op": "ping"})
    assert_null_reply(pair.bad, "bad_request")
    pair.bad.send_obj({"op": "send", "room": pair.room, "body": "no id", "cmid": "noid"})
    assert_null_reply(pair.bad, "bad_request")
    pair.no_delivery()
    still_usable(pair.bad)
    pair.check()


@pytest.mark.parametrize("rid", [[1], {"a": 1}, 1.5, True, None, "x" * 65],
                         ids=["array", "map", "float", "bool", "null", "string-65"])
def test_wrong_typed_id_is_bad_request_with_null_re(pair, rid):
    pair.bad.send_obj({"id": rid, "op": "ping"})
    r = pair.bad.next_reply()
    assert err_code(r) == "bad_request", r
    assert r["re"] is None, r
    still_usable(pair.bad)
    pair.check()


@pytest.mark.parametrize("frame", [{"id": 3}, {"id": 3, "op": 5}, {"id": 3, "op": None}, {"id": 3, "op": ["ping"]}],
                         ids=["missing-op", "int-op", "null-op", "array-op"])
def test_missing_or_wrong_typed_op_is_bad_request(pair, frame):
    pair.bad.send_obj(frame)
    r = pair.bad.next_reply(re=3)
    assert err_code(r) == "bad_request", r
    still_usable(pair.bad)
    pair.check()


# ---- fields ---------------------------------------------------------------------------------------


def bad_field_requests(room):
    return {
        "join-no-room": ("join", {}),
        "join-int-room": ("join", {"room": 5}),
        "join-null-room": ("join", {"room": None}),
        "join-string-since": ("join", {"room": room, "since": "3"}),
        "join-negative-since": ("join", {"room": room, "since": -1}),
        "leave-no-room": ("leave", {}),
        "leave-map-room": ("leave", {"room": {"r": 1}}),
        "send-no-room": ("send", {"body": "x", "cmid": "f1"}),
        "send-int-room": ("send", {"room": 1, "body": "x", "cmid": "f2"}),
        "send-no-body": ("send", {"room": room, "cmid": "f3"}),
        "send-no-cmid": ("send", {"room": room, "body": "x"}),
        "send-int-cmid": ("send", {"room": room, "body": "x", "cmid": 4}),
        "send-empty-cmid": ("send", {"room": room, "body": "x", "cmid": ""}),
        "send-long-cmid": ("send", {"room": room, "body": "x", "cmid": "c" * 65}),
    }


@pytest.mark.parametrize("case", sorted(bad_field_requests("r")))
def test_missing_or_wrong_typed_fields_are_bad_request(pair, case):
    op, fields = bad_field_requests(pair.room)[case]
    r = pair.bad.request(op, id=41, **fields)
    assert r["re"] == 41
    assert err_code(r) == "bad_request", r
    pair.no_delivery(timeout=0.1)
    still_usable(pair.bad)
    pair.check()


def test_cmid_of_64_bytes_and_unknown_fields_are_accepted(pair):
    ack = ok(pair.bad.send(pair.room, "edge", cmid="c" * 64, future_field={"x": 1}))
    for c in (pair.a, pair.b):
        ev = c.next_event("message", room=pair.room, cmid="c" * 64)
        assert ev["seq"] == ack["seq"]
        assert "future_field" not in ev
    pair.check()


@pytest.mark.parametrize("room", ["", "has space", "x" * 129, "ünï", "a/b", "semi;colon", "tab\t", "new\nline",
                                  "#hash", "quote\""],
                         ids=["empty", "space", "129-bytes", "non-ascii", "slash", "semicolon", "tab", "newline",
                              "hash", "quote"])
def test_bad_room_name(pair, room):
    assert err_code(pair.bad.join(room)) == "bad_room"
    assert err_code(pair.bad.send(room, "x")) == "bad_room"
    assert err_code(pair.bad.leave(room)) == "bad_room"
    still_usable(pair.bad)
    pair.check()


def test_valid_room_name_edges(pair):
    for room in ("x" * 128, "A-Z_a.z:0@9", "a"):
        assert ok(pair.bad.join(room))["room"] == room
        ok(pair.bad.leave(room))
    pair.check()


def test_send_or_leave_without_join_is_not_joined(pair):
    other = f"other-{next(_rooms)}"
    assert err_code(pair.bad.send(other, "x")) == "not_joined"
    assert err_code(pair.bad.leave(other)) == "not_joined"
    ok(pair.bad.leave(pair.room))
    assert err_code(pair.bad.send(pair.room, "after leave")) == "not_joined"
    pair.no_delivery()
    still_usable(pair.bad)
    pair.check()


# ---- limits ---------------------------------------------------------------------------------------


@pytest.fixture
def limited(server_factory):
    return server_factory(limits__max_rooms_per_conn=3, limits__max_body="1KiB", limits__max_frame="4KiB")


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_too_many_rooms(limited, codec):
    p = Pair(limited, codec)  # bad is in 1 room already
    ok(p.bad.join("tm-2"))
    ok(p.bad.join("tm-3"))
    r = p.bad.join("tm-4")
    assert err_code(r) == "too_many_rooms"
    # re-joining a room it is in is fine
    ok(p.bad.join("tm-3"))
    # after a leave there is room for one more
    ok(p.bad.leave("tm-2"))
    ok(p.bad.join("tm-4"))
    assert err_code(p.bad.join("tm-5")) == "too_many_rooms"
    # the per-connection limit does not affect another connection of the same user or others
    p.check()
    other = limited.client(codec)
    for r in ("tm-2", "tm-3", "tm-5"):
        ok(other.join(r))


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_body_too_large(limited, codec):
    p = Pair(limited, codec)
    # max_body is 1024: a string body of n ASCII chars encodes (JSON) to n + 2 bytes.
    ack = ok(p.bad.send(p.room, "x" * 1022, cmid="fits"))
    for c in (p.a, p.b):
        assert c.next_event("message", room=p.room, cmid="fits")["seq"] == ack["seq"]
    assert err_code(p.bad.send(p.room, "x" * 1023, cmid="too-big")) == "body_too_large"
    assert err_code(p.bad.send(p.room, {"k": ["y" * 600, "z" * 600]}, cmid="too-big-2")) == "body_too_large"
    p.no_delivery()
    still_usable(p.bad)
    p.check()


def padded_ping(codec, size):
    """A ping request whose encoded frame is exactly `size` bytes (padding in an ignored field)."""
    def enc(obj):
        if codec == "json":
            return json.dumps(obj, separators=(",", ":")).encode()
        return msgpack.packb(obj, use_bin_type=True)
    pad = 0
    while True:
        data = enc({"id": 1, "op": "ping", "pad": "p" * pad})
        if len(data) >= size:
            break
        pad += max(1, size - len(data))
    while len(data) > size:  # msgpack str headers change size at boundaries; step back
        pad -= 1
        data = enc({"id": 1, "op": "ping", "pad": "p" * pad})
    assert len(data) == size, (len(data), size)
    return data


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_frame_at_max_frame_is_accepted(limited, codec):
    p = Pair(limited, codec)
    p.bad.send_bytes(padded_ping(codec, 4096))
    r = p.bad.next_reply(re=1)
    assert "ok" in r, r
    p.check()


@pytest.mark.parametrize("fragmented", [False, True], ids=["single", "fragmented"])
@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_oversized_frame_closes_1009(limited, codec, fragmented):
    p = Pair(limited, codec)
    data = padded_ping(codec, 4097)
    if fragmented:
        p.bad.ws.send_fragmented(OP_TEXT if codec == "json" else OP_BINARY, data, pieces=5)
    else:
        p.bad.send_bytes(data)
    code, _ = p.bad.expect_close()
    assert code == 1009
    p.check()


def test_huge_frame_closes_1009(limited):
    p = Pair(limited, "json")
    try:
        p.bad.send_bytes(b'{"id":1,"op":"ping","pad":"' + b"x" * (1 << 20) + b'"}')
    except OSError:
        pass  # the server may close before it has read everything
    code, _ = p.bad.expect_close()
    assert code in (1009, 1006), code  # 1006: connection reset before the close frame could be read
    p.check()


@pytest.mark.parametrize("raw", [b'{"id":1,"op":"ping","x":"\xff"}', b'{"id":1,"op":"ping","x":"\xc3\x28"}',
                                 b'{"id":1,"op":"ping","x":"\xed\xa0\x80"}', b'{"id":1,"op":"ping","x":"\xc3'],
                         ids=["ff", "bad-continuation", "surrogate", "truncated"])
def test_invalid_utf8_text_frame_closes_1007(pair_json, raw):
    pair_json.bad.send_bytes(raw)
    code, _ = pair_json.bad.expect_close()
    assert code == 1007
    pair_json.check()


def test_fragmented_messages_are_reassembled(pair):
    p = pair
    c = p.bad
    frame = c.encode({"id": "frag", "op": "send", "room": p.room, "body": "ü✓ fragmented 🎉" * 20, "cmid": "frag"})
    # many small pieces; UTF-8 sequences are split across fragments (valid overall)
    c.ws.send_fragmented(OP_TEXT if c.codec == "json" else OP_BINARY, frame, pieces=17)
    ack = ok(c.next_reply(re="frag"))
    for x in (p.a, p.b, c):
        ev = x.next_event("message", room=p.room, cmid="frag")
        assert ev["body"] == "ü✓ fragmented 🎉" * 20 and ev["seq"] == ack["seq"]
    p.check()


def test_websocket_ping_gets_pong(pair):
    pair.bad.ws.ping(b"are you there")
    r = pair.bad.ping()  # any reply after the pong means the pong has been read
    ok(r)
    assert b"are you there" in pair.bad.ws.pongs
    pair.check()


def test_unmasked_client_frame_is_tolerated(pair_json):
    # RFC 6455 5.1 says a server MUST close the connection on an unmasked client frame. libwebsockets 4.1
    # (Debian 12) reads it like a masked one and does not tell the application, so Parley cannot enforce
    # it; docs/protocol.md documents the deviation. The frame is handled as its content says and nobody
    # else is affected.
    pair_json.bad.ws.send_raw(encode_frame(OP_TEXT, b'{"id":1,"op":"ping"}', mask=False))
    assert "ok" in pair_json.bad.next_reply(re=1, timeout=3)
    pair_json.check()


def test_abrupt_disconnect_mid_frame(pair_json):
    data = encode_frame(OP_TEXT, b'{"id":1,"op":"send","room":"' + pair_json.room.encode() + b'","body":"x"}')
    pair_json.bad.ws.send_raw(data[: len(data) // 2])
    pair_json.bad.abort()
    pair_json.no_delivery(timeout=0.2)
    pair_json.check()


# ---- handshake ------------------------------------------------------------------------------------


@pytest.mark.parametrize("offer", [[], ["chat"], ["parley.v2.json"], ["PARLEY.V1.JSON"]],
                         ids=["none", "unknown", "future-version", "wrong-case"])
def test_handshake_without_known_subprotocol_is_400(shared_server, offer):
    status, _, body = handshake_status(shared_server.port, offer)
    assert status == 400, (status, body)
    assert "parley.v1.json" in body and "parley.v1.msgpack" in body, body
    # the server carries on
    c = shared_server.client("msgpack")
    ok(c.ping())


@pytest.mark.parametrize("offer,chosen", [(["chat", "parley.v1.json"], "parley.v1.json"),
                                          (["parley.v1.msgpack"], "parley.v1.msgpack"),
                                          (["parley.v1.json"], "parley.v1.json")])
def test_handshake_selects_the_known_subprotocol(shared_server, offer, chosen):
    ws = WebSocket(shared_server.port, subprotocols=offer)
    try:
        assert ws.subprotocol == chosen
    finally:
        ws.close()


# ---- every documented op answers (and never takes the server down) ---------------------------------

DOCUMENTED_OPS = ["hello", "join", "leave", "send", "history", "typing", "presence", "rooms", "read", "ping"]

ODD_VALUES = [None, 0, -1, 2**63 - 1, 1.5, True, "", "x" * 300, [], {}, [1, "a"], {"k": "v"}]


def op_variants(room):
    """For each documented op: plausible fields, no fields, and every field of every op set to odd values."""
    good = {
        "hello": {},
        "join": {"room": room, "since": 0},
        "leave": {"room": room},
        "send": {"room": room, "body": "b", "cmid": "op-variants"},
        "history": {"room": room, "limit": 2},
        "typing": {"room": room, "active": True},
        "presence": {"room": room},
        "rooms": {},
        "read": {"room": room, "seq": 1},
        "ping": {},
    }
    fields = ["room", "since", "body", "cmid", "before", "after", "limit", "active", "users", "seq", "token",
              "resume", "client", "forget"]
    for op in DOCUMENTED_OPS:
        yield op, good[op]
        yield op, {}
        for i, f in enumerate(fields):
            yield op, {f: ODD_VALUES[i % len(ODD_VALUES)]}
            yield op, dict(good[op], **{f: ODD_VALUES[(i + 5) % len(ODD_VALUES)]})


@pytest.mark.parametrize("authenticated", [True, False], ids=["after-hello", "before-hello"])
@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_every_documented_op_gets_exactly_one_reply(server, codec, authenticated):
    # its own server: if an op takes the server down, only this test fails
    p = Pair(server, codec)
    c = server.client(codec, hello=authenticated)
    if authenticated:
        ok(c.join(p.room))
    rid = 5000
    for op, fields in op_variants(p.room):
        rid += 1
        try:
            c.send_obj(dict({"id": rid, "op": op}, **fields))
            r = c.next_reply(re=rid, timeout=3)
        except Exception as e:
            pytest.fail(f"{op} {fields}: no reply ({e!r}); server alive: {server.alive()}")
        assert ("ok" in r) != ("err" in r), f"{op} {fields}: {r}"
        if "err" in r:
            err_code(r)
        c.events.clear()
    assert server.alive()
    p.check()
