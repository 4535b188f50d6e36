"""Reading (src/net/ws.c, RX_PIECE): libwebsockets keeps a 1 KB receive buffer per connection and reads at
most that much per poll event; a connection whose read filled the buffer is read again in the same loop
iteration (at most REREAD_MAX times). What must hold: a burst many times that size, written in one go, is
read completely and in order, in both codecs, and messages longer than the buffer arrive whole, also in the
middle of a burst."""

import pytest

from conftest import JWT_SECRET
from jwtmint import mint
from support_auth import TLSClient, gen_cert
from wsclient import OP_BINARY, OP_TEXT, encode_frame, http_get, ok, parse_metrics

ROOM = "pieces"
COUNT = 300


def metrics(srv):
    status, _, text = http_get(srv.port, "/metrics")
    assert status == 200
    return parse_metrics(text)


def frames(client, objs):
    op = OP_TEXT if client.codec == "json" else OP_BINARY
    return b"".join(encode_frame(op, client.encode(o)) for o in objs)


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_a_burst_in_one_write_is_read_whole_and_in_order(server_factory, codec):
    srv = server_factory()
    sender = srv.client(codec)
    receiver = srv.client("msgpack" if codec == "json" else "json")
    for c in (sender, receiver):
        ok(c.join(ROOM))
    before = metrics(srv)

    # ~40 KB of frames in one sendall: the server finds far more than 1 KB waiting on the socket.
    reqs = [{"id": 1000 + i, "op": "send", "room": ROOM, "cmid": f"b{i}", "body": {"i": i, "pad": "x" * 80}}
            for i in range(COUNT)]
    blob = frames(sender, reqs)
    assert len(blob) > 30 * 1024
    sender.ws.send_raw(blob)

    acks = [ok(sender.next_reply(re=1000 + i, timeout=30)) for i in range(COUNT)]
    assert [a["seq"] for a in acks] == list(range(1, COUNT + 1))
    got = receiver.messages(ROOM, COUNT, timeout=30)
    assert [e["seq"] for e in got] == list(range(1, COUNT + 1))
    assert [e["body"]["i"] for e in got] == list(range(COUNT))

    after = metrics(srv)
    rereads = after["parley_socket_rereads_total"] - before.get("parley_socket_rereads_total", 0)
    assert rereads > 0, "the burst filled the receive buffer, yet no connection was read again"


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_messages_longer_than_the_buffer_arrive_whole(server_factory, codec):
    srv = server_factory()
    sender, receiver = srv.client(codec), srv.client(codec)
    for c in (sender, receiver):
        ok(c.join(ROOM))
    long_text = "".join(chr(0x41 + i % 26) + "é" for i in range(5000))  # ~15 KB of UTF-8, under max_body
    reqs = []
    for i in range(20):
        body = {"i": i, "text": long_text if i % 5 == 2 else "short"}
        reqs.append({"id": 2000 + i, "op": "send", "room": ROOM, "cmid": f"l{i}", "body": body})
    sender.ws.send_raw(frames(sender, reqs))
    acks = [ok(sender.next_reply(re=2000 + i, timeout=30)) for i in range(20)]
    assert [a["seq"] for a in acks] == list(range(1, 21))
    got = receiver.messages(ROOM, 20, timeout=30)
    for i, e in enumerate(got):
        assert e["body"]["i"] == i
        assert e["body"]["text"] == (long_text if i % 5 == 2 else "short")


def test_a_burst_over_tls_is_read_whole_and_in_order(server_factory, tmp_path):
    """Over TLS a read returns decrypted records; rereads go through lws's TLS read the same way."""
    cert, key = gen_cert(tmp_path)
    srv = server_factory({"tls.cert": cert, "tls.key": key})
    sender, receiver = TLSClient(srv.port, "json"), TLSClient(srv.port, "msgpack")
    srv.clients += [sender, receiver]
    for i, c in enumerate((sender, receiver)):
        ok(c.hello(token=mint(JWT_SECRET, sub=f"tls-burst-{i}", exp_in=600)))
        ok(c.join(ROOM))
    reqs = [{"id": 4000 + i, "op": "send", "room": ROOM, "cmid": f"t{i}", "body": {"i": i, "pad": "z" * 200}}
            for i in range(COUNT)]
    sender.ws.send_raw(frames(sender, reqs))
    acks = [ok(sender.next_reply(re=4000 + i, timeout=30)) for i in range(COUNT)]
    assert [a["seq"] for a in acks] == list(range(1, COUNT + 1))
    got = receiver.messages(ROOM, COUNT, timeout=30)
    assert [e["body"]["i"] for e in got] == list(range(COUNT))
