"""Join storms (docs/storage.md, "Room lists"): when several membership writes wait for the store writer
together they share one SQLite transaction, and every one of them is kept, across a restart too."""

from support_durable import connect, restart
from wsclient import OP_TEXT, encode_frame, http_get, ok, parse_metrics

ROOMS = 60


def metrics(srv):
    status, _, text = http_get(srv.port, "/metrics")
    assert status == 200
    return parse_metrics(text)


def rooms(c):
    return sorted(r["room"] for r in c.call("rooms")["rooms"])


def test_pipelined_joins_share_transactions_and_are_all_kept(server_factory):
    srv = server_factory()
    users = [f"storm{u}" for u in range(4)]
    clients = [connect(srv, u)[0] for u in users]
    before = metrics(srv)
    # every client writes all its joins in one go: the writer finds many membership writes waiting
    for c in clients:
        c.ws.send_raw(b"".join(encode_frame(OP_TEXT, c.encode({"id": 100 + i, "op": "join", "room": f"storm-{i}"}))
                               for i in range(ROOMS)))
    for c in clients:
        for i in range(ROOMS):
            ok(c.next_reply(re=100 + i, timeout=30))
    want = sorted(f"storm-{i}" for i in range(ROOMS))
    for c in clients:
        assert rooms(c) == want
    after = metrics(srv)
    grouped = after["parley_store_grouped_writes_total"] - before.get("parley_store_grouped_writes_total", 0)
    assert grouped > 0, "membership writes that waited together did not share a transaction"
    # a leave with forget in the middle of a burst of joins: removed, the rest kept
    c = clients[0]
    reqs = [{"id": 500, "op": "leave", "room": "storm-0", "forget": True}]
    reqs += [{"id": 501 + i, "op": "join", "room": f"more-{i}"} for i in range(10)]
    c.ws.send_raw(b"".join(encode_frame(OP_TEXT, c.encode(r)) for r in reqs))
    for i in range(11):
        ok(c.next_reply(re=500 + i, timeout=30))
    first_want = sorted(want[1:] + [f"more-{i}" for i in range(10)])
    assert rooms(c) == first_want
    # on disk: after a restart the same users list the same rooms
    restart(srv, "term")
    for i, u in enumerate(users):
        c2, _ = connect(srv, u)
        assert rooms(c2) == (first_want if i == 0 else want)
