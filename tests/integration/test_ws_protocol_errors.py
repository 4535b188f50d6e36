"""WebSocket protocol violations (RFC 6455) get a close frame with the code docs/protocol.md gives, over raw
sockets: 1002 for a violation of the framing, 1007 for a text message that is not UTF-8. A violation never
just drops the TCP connection (the client would see 1006 and could not tell why), and it affects no one else.
"""

import socket
import struct
import time

import pytest

import wsclient
from wsclient import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, encode_frame


def ws(server):
    return wsclient.WebSocket(server.port, subprotocols=["parley.v1.json"])


def close_after(server, raw):
    """Send raw bytes on a fresh connection (past hello); return the (code, reason) the server closes with."""
    c = server.client()
    c.ws.send_raw(raw)
    code, reason = c.ws.expect_close(timeout=5)
    return code, reason


def bystander_ok(server):
    c = server.client()
    assert "ok" in c.ping()


@pytest.mark.parametrize("n", [126, 200, 1000])
def test_ping_payload_over_125_bytes_closes_1002(shared_server, n):
    code, _ = close_after(shared_server, encode_frame(OP_PING, b"p" * n))
    assert code == 1002
    bystander_ok(shared_server)


@pytest.mark.parametrize("op", [OP_CLOSE, 0xA])
def test_other_control_frame_over_125_bytes_closes_1002(shared_server, op):
    code, _ = close_after(shared_server, encode_frame(op, struct.pack("!H", 1000) + b"r" * 200))
    assert code == 1002


@pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY])
def test_64_bit_length_with_the_top_bit_set_closes_1002(shared_server, op):
    raw = encode_frame(op, b"", length_override=(1 << 63) | 5)
    code, _ = close_after(shared_server, raw + b"\x00" * 8)
    assert code == 1002
    bystander_ok(shared_server)


@pytest.mark.parametrize("reason", [b"\xff", b"bye \xc3\x28", b"\xed\xa0\x80", b"trunc \xe2\x82"],
                         ids=["ff", "bad-continuation", "surrogate", "truncated"])
def test_close_reason_that_is_not_utf8_closes_1002(shared_server, reason):
    code, _ = close_after(shared_server, encode_frame(OP_CLOSE, struct.pack("!H", 1000) + reason))
    assert code == 1002
    bystander_ok(shared_server)


@pytest.mark.parametrize("payload", [b"\x03", struct.pack("!H", 999), struct.pack("!H", 1005) + b"x",
                                     struct.pack("!H", 2999)], ids=["1-byte", "999", "1005", "2999"])
def test_bad_close_payload_closes_1002(shared_server, payload):
    code, _ = close_after(shared_server, encode_frame(OP_CLOSE, payload))
    assert code == 1002


def test_valid_close_is_echoed(shared_server):
    code, reason = close_after(shared_server, encode_frame(OP_CLOSE, struct.pack("!H", 1000) + "tschüß".encode()))
    assert code == 1000


# Violations that lws 4.1 already answered with a close frame: they keep doing so.
@pytest.mark.parametrize("raw", [
    encode_frame(0x3, b"x"),                                  # reserved opcode
    encode_frame(OP_TEXT, b"x", rsv=4),                       # RSV1 without an extension
    encode_frame(OP_PING, b"x", fin=False),                   # fragmented control frame
    encode_frame(OP_CONT, b"x"),                              # continuation without a start
    encode_frame(OP_TEXT, b"{", fin=False) + encode_frame(OP_TEXT, b"}"),  # new message inside one
], ids=["reserved-opcode", "rsv", "fragmented-control", "lone-continuation", "no-fin"])
def test_other_framing_violations_close_1002(shared_server, raw):
    code, _ = close_after(shared_server, raw)
    assert code == 1002


@pytest.mark.parametrize("pieces", [1, 2, 7])
def test_invalid_utf8_split_across_fragments_closes_1007(shared_server, pieces):
    c = shared_server.client()
    c.ws.send_fragmented(OP_TEXT, b'{"id":1,"op":"ping","x":"' + b"a" * 40 + b'\xe2\x82\x28"}', pieces=pieces)
    code, _ = c.ws.expect_close(timeout=5)
    assert code == 1007


def test_valid_utf8_split_across_fragments_and_pieces(shared_server):
    c = shared_server.client()
    body = "€𝄞ü" * 700  # longer than one read of lws (1 KiB): split inside characters, also by lws
    frame = c.encode({"id": "u8", "op": "ping", "x": body})
    c.ws.send_fragmented(OP_TEXT, frame, pieces=9)
    assert "ok" in c.next_reply(re="u8")


def open_connections(server):
    status, _, text = wsclient.http_get(server.port, "/metrics")
    assert status == 200
    return wsclient.parse_metrics(text)["parley_connections"]


def test_clients_that_drop_tcp_are_released_at_once(server_factory):
    # A client that goes away without a close frame is no protocol violation: the server closes its side
    # at once (it does not send a close frame and wait for an answer that cannot come).
    srv = server_factory()
    clients = [srv.client() for _ in range(10)]
    for i, c in enumerate(clients):
        if i % 2:
            c.ws.send_raw(encode_frame(OP_TEXT, b'{"id":1,"op":"ping"}')[:5])  # inside a frame
        c.abort()
    deadline = time.monotonic() + 1.0
    while open_connections(srv) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert open_connections(srv) == 0


def test_client_that_ends_tcp_without_a_close_frame_is_not_told_1002(shared_server):
    # Ending the TCP stream (here only its sending half, so the answer can be read) is no framing violation:
    # the server closes its side without claiming a protocol error.
    c = shared_server.client()
    c.ws.sock.shutdown(socket.SHUT_WR)
    code, _ = c.ws.expect_close(timeout=5)
    assert code != 1002


def test_violation_then_half_close_still_gets_1002(shared_server):
    c = shared_server.client()
    c.ws.send_raw(encode_frame(OP_PING, b"p" * 200))
    c.ws.sock.shutdown(socket.SHUT_WR)
    code, _ = c.ws.expect_close(timeout=5)
    assert code == 1002
