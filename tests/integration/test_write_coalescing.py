"""Write coalescing (server.write_coalesce, docs/configuration.md): while the event loop is busy, a
connection's frames may wait a few milliseconds so that several share one socket write. What must hold
whatever the timing: every frame arrives, in order, on every connection; a lightly loaded server does not
hold frames at all."""

import time

from support_auth import q, start_with_conf
from wsclient import RoomReader, http_get, ok, parse_metrics

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


def test_busy_loop_coalesces_writes_and_loses_nothing(server_factory, tmp_path):
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

    after = metrics(srv)
    holds = after.get("parley_write_holds_total", 0) - before.get("parley_write_holds_total", 0)
    writes = after["parley_socket_writes_total"] - before["parley_socket_writes_total"]
    frames = after["parley_frames_out_total"] - before["parley_frames_out_total"]
    print(f"coalescing: {frames} frames in {writes} socket writes, {holds} held flushes")
    assert holds > 0, "the loop was busy, yet no flush was held: coalescing never engaged"
    assert writes < frames, "frames should share writes"


def test_idle_server_holds_nothing(server_factory):
    srv = server_factory({"server.write_coalesce": "20ms"})
    a, b = srv.client("json"), srv.client("json")
    for c in (a, b):
        ok(c.join(ROOM))
    before = metrics(srv)
    for i in range(30):  # one at a time, each answered before the next: the loop is mostly idle
        t0 = time.monotonic()
        ok(a.send(ROOM, {"i": i}, cmid=f"i{i}"))
        ev = b.next_event("message", room=ROOM, timeout=5)
        assert ev["seq"] == i + 1
        assert time.monotonic() - t0 < 2
        time.sleep(0.01)
    after = metrics(srv)
    assert after.get("parley_write_holds_total", 0) == before.get("parley_write_holds_total", 0), \
        "an idle server held frames back"
