"""Write coalescing (server.write_coalesce, docs/configuration.md): a connection's frames that wait for the
socket go out together, several in one socket write (src/net/outq.c flushes a connection's whole queue with
one sendmsg of up to 64 frames); while the event loop is busy, frames may also wait a few milliseconds on
purpose so that they share writes, but never those of a connection that was quiet for longer than that.
What must hold whatever the timing: every frame arrives, in order, on every connection; a quiet
connection's frames are not held.

Whether the loop counts as busy is the server's own measurement, so the tests do not depend on it: the
first one makes frames wait deterministically, behind a socket that is full because its client stops
reading, and counts the socket writes that carry them once it reads again."""

import time

import pytest

from support_auth import q, start_with_conf
from wsclient import Client, RoomReader, http_get, ok, parse_metrics

ROOM = "coalesce"
COUNT = 400
RECEIVERS = 6

# An on_message hook that burns a few milliseconds of the loop per message: with the sender pipelining,
# the loop is busy well over half its time, which is when coalescing engages.
BURN = """
parley.hook("on_message", function(e)
  local x = 0
  for i = 1, 400000 do x = x + i % 7 end
  return nil
end)
"""


def metrics(srv):
    status, _, text = http_get(srv.port, "/metrics")
    assert status == 200
    return parse_metrics(text)


SMALL = 256  # small messages queued behind the full socket


def test_frames_behind_a_full_socket_share_writes_and_arrive_in_order(server_factory):
    """A client that stops reading: one message larger than anything the kernel buffers for its socket
    fills the socket, and lws keeps the rest of it; SMALL more messages then wait in the server's queue.
    Once the client reads again they must go out many per socket write (one write per frame would be
    SMALL writes) and arrive complete and in order."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem_max = int(f.read().split()[2])  # the most the kernel lets a TCP socket's send buffer grow
    big = wmem_max + (2 << 20)  # the receiver's socket (send buffer + its small receive buffer) is full
    if big > (14 << 20):
        pytest.skip(f"tcp_wmem max {wmem_max} B: a message beyond it exceeds limits.max_frame's range")
    srv = server_factory({"limits.max_frame": "16MiB", "limits.max_body": "16MiB",
                          # room for the sender's own copy of the big message ahead of its acks
                          "limits.out_queue_bytes": "64MiB",
                          "limits.idle_timeout": "5m"})  # no ping frames in the counted window
    blocked = Client(srv.port, codec="json", rcvbuf=4096, name="blocked")
    srv.clients.append(blocked)
    ok(blocked.hello())
    ok(blocked.join(ROOM))
    sender = srv.client("json")
    ok(sender.join(ROOM))
    blocked.stop_reading()

    body = "x" * big
    ok(sender.send(ROOM, body, cmid="big", _timeout=60))
    sender.next_event("message", room=ROOM, seq=1, timeout=60)
    sender.log = None
    sender.events.clear()
    for i in range(SMALL):  # one at a time: each one's frame is produced in a loop iteration of its own
        ok(sender.send(ROOM, {"i": i}, cmid=f"s{i}"))
    for i in range(SMALL):  # every frame of the run is produced (the sender got its own copy of each)
        assert sender.next_event("message", room=ROOM, timeout=30)["body"] == {"i": i}

    before = metrics(srv)
    ev = blocked.next_event("message", room=ROOM, timeout=60)
    assert (ev["seq"], len(ev["body"])) == (1, big)
    del ev, body
    for i in range(SMALL):
        ev = blocked.next_event("message", room=ROOM, timeout=30)
        assert (ev["seq"], ev["body"]) == (i + 2, {"i": i}), "every message, gapless, in order"
    after = metrics(srv)

    writes = after["parley_socket_writes_total"] - before["parley_socket_writes_total"]
    frames = after["parley_frames_out_total"] - before["parley_frames_out_total"]
    print(f"coalescing: {SMALL} queued frames went out in {writes} socket writes")
    assert frames == 0, "no frame was produced while the blocked client read: the count is its alone"
    assert writes <= SMALL // 8, f"{SMALL} queued frames took {writes} socket writes: they should share them"


def test_busy_loop_loses_and_reorders_nothing(server_factory, tmp_path):
    script = tmp_path / "burn.lua"
    script.write_text(BURN)
    srv = start_with_conf(server_factory, [f"scripts.burn.path = {q(script)}", "hooks.lua.instructions = 100000000",
                                           "server.write_coalesce = 20ms"])
    sender = srv.client("json")
    receivers = [srv.client("msgpack" if i % 2 else "json") for i in range(RECEIVERS)]
    for c in [sender] + receivers:
        ok(c.join(ROOM))
    readers = [RoomReader(c, ROOM, COUNT, timeout=90) for c in receivers]
    for r in readers:
        r.start()
    before = metrics(srv)

    # Pipelined: every send goes out before any ack is read, so the server always has work queued.
    for i in range(COUNT):
        sender.send_obj({"id": 10_000 + i, "op": "send", "room": ROOM, "cmid": f"k{i}", "body": {"i": i}})
    acks = [sender.next_reply(re=10_000 + i, timeout=90) for i in range(COUNT)]
    assert [ok(a)["seq"] for a in acks] == list(range(1, COUNT + 1))

    for r in readers:
        r.join(90)
        assert not r.is_alive(), "a receiver did not get everything in time"
        assert r.error is None, f"receiver: {r.error!r}"
        assert r.seqs == list(range(1, COUNT + 1)), "every message, gapless, in order"
        assert [b["i"] for b in r.bodies] == list(range(COUNT))

    # Whether flushes were held depends on how busy the loop measured itself (on a loaded machine the
    # hook's iterations can outlast the hold and nothing is held): reported, not asserted.
    after = metrics(srv)
    holds = after.get("parley_write_holds_total", 0) - before.get("parley_write_holds_total", 0)
    writes = after["parley_socket_writes_total"] - before["parley_socket_writes_total"]
    frames = after["parley_frames_out_total"] - before["parley_frames_out_total"]
    print(f"busy loop: {frames} frames in {writes} socket writes, {holds} held flushes")


def test_quiet_connections_are_never_held(server_factory):
    """A connection quiet for longer than server.write_coalesce is flushed at once, however busy the server
    thinks it is; on a lightly loaded server nothing is held at all. (Gaps shorter than the hold would
    make the result depend on the server's load measurement, which counts time the server waits for a
    CPU as busy: on a loaded machine an idle server may then rightly hold.)"""
    srv = server_factory({"server.write_coalesce": "20ms"})
    a, b = srv.client("json"), srv.client("json")
    for c in (a, b):
        ok(c.join(ROOM))
    before = metrics(srv)
    for i in range(30):  # one at a time, each answered before the next, 50 ms apart: longer than the hold
        time.sleep(0.05)  # (also after the joins: b's join sent a a presence event)
        t0 = time.monotonic()
        ok(a.send(ROOM, {"i": i}, cmid=f"i{i}"))
        ev = b.next_event("message", room=ROOM, timeout=5)
        assert ev["seq"] == i + 1
        assert time.monotonic() - t0 < 2
    after = metrics(srv)
    assert after.get("parley_write_holds_total", 0) == before.get("parley_write_holds_total", 0), \
        "a connection quiet for longer than the hold had its frames held back"
