"""Sessions, presence, typing, recovery, outbox, room list / read markers and slow clients over real
sockets against the real parleyd, with short timings from config (issue 4 "Acceptance"; docs/protocol.md
"Sessions, resume and recovery", "join", "presence", "typing", "rooms", "read", "Close codes").

SQLite backend. Timing: session.resume_ttl = 1s, typing.ttl = 1s, typing.interval = 0 unless a test says
otherwise.
"""

import os
import collections
import threading
import time

import pytest

from support_durable import (OutboxSender, connect, events_of, history_all, history_all_backwards, kill9,
                             restart)
from wsclient import ConnectionClosed, Timeout, ok

FAST = {"session.resume_ttl": "1s", "typing.ttl": "1s", "typing.interval": "0s"}
GRACE = 1.0


@pytest.fixture
def srv(server_factory):
    return server_factory(FAST)


def conf(**kw):
    out = dict(FAST)
    out.update({k.replace("__", "."): v for k, v in kw.items()})
    return out


def ids(users):
    return sorted(u["id"] for u in users)


def kinds(evs, user=None):
    """[(ev, user id, online?)] of join/leave/presence events (optionally of one user)."""
    out = []
    for e in evs:
        if e.get("ev") in ("join", "leave", "presence"):
            uid = e["user"]["id"]
            if user is None or uid == user:
                out.append((e["ev"], uid) + ((e["online"],) if e["ev"] == "presence" else ()))
    return out


def now_ms():
    return int(time.time() * 1000)


# ---- multi-tab presence ------------------------------------------------------------------------------


def test_multi_tab_one_join_one_online_and_one_leave_one_offline_after_grace(srv):
    bob, _ = connect(srv, "bob")
    st = bob.call("presence", users=["ann"])["users"]
    assert [(s["user"]["id"], s["online"]) for s in st] == [("ann", False)]
    ok(bob.join("tabs"))
    tabs = []
    for i in range(3):
        c, h = connect(srv, "ann", client=f"tab{i}")
        ok(c.join("tabs"))
        tabs.append(c)
    evs = events_of(bob, 0.6)
    assert sorted(kinds(evs)) == [("join", "ann"), ("presence", "ann", True)], evs
    j = next(e for e in evs if e["ev"] == "join")
    assert j == {"ev": "join", "room": "tabs", "user": {"id": "ann", "name": "Ann"}}
    # a user's own tabs get no join for themselves
    for c in tabs:
        assert kinds(events_of(c, 0.05), user="ann") == []

    # close two tabs: one logs out (1000), one drops (detached, ends after the grace): no event at all
    tabs[0].close(1000)
    tabs[1].abort()
    evs = events_of(bob, GRACE + 1.0)
    assert kinds(evs) == [], f"events while ann still has a tab open: {evs}"
    members = bob.call("presence", room="tabs")["members"]
    ann = [m for m in members if m["user"]["id"] == "ann"]
    assert len(ann) == 1 and len(ann[0]["connections"]) == 1, members

    # the last tab drops without a close frame: nothing within the grace, then exactly one leave + offline
    t_drop = now_ms()
    tabs[2].abort()
    early = events_of(bob, GRACE * 0.6)
    assert kinds(early) == [], f"leave/offline before the grace period ran out: {early}"
    late = events_of(bob, GRACE + 1.5)
    assert sorted(kinds(late)) == [("leave", "ann"), ("presence", "ann", False)], late
    off = next(e for e in late if e["ev"] == "presence")
    assert isinstance(off["last_seen"], int) and t_drop - 50 <= off["last_seen"] <= now_ms() + 50, off
    assert next(e for e in late if e["ev"] == "leave")["room"] == "tabs"
    assert kinds(events_of(bob, 0.5)) == []
    st = bob.call("presence", users=["ann"])["users"]
    assert st[0]["online"] is False and st[0]["last_seen"] == off["last_seen"]


def test_reconnect_within_grace_with_resume_emits_no_event(srv):
    bob, _ = connect(srv, "bob")
    bob.call("presence", users=["ann"])
    ok(bob.join("rs"))
    ann, h = connect(srv, "ann")
    ok(ann.join("rs"))
    ok(ann.join("rs2"))
    events_of(bob, 0.3)
    acks = [ok(bob.send("rs", f"m{i}", cmid=f"rs-{i}")) for i in range(2)]
    assert [e["seq"] for e in ann.messages("rs", 2)] == [1, 2]

    ann.abort()
    time.sleep(0.2)
    more = ok(bob.send("rs", "while away", cmid="rs-away"))
    ann2, h2 = connect(srv, "ann", resume=h["resume_token"])
    assert h2["resumed"] is True, h2
    assert h2["session"] == h["session"]
    assert sorted((r["room"], r["seq"]) for r in h2["rooms"]) == [("rs", 3), ("rs2", 0)], h2["rooms"]
    r = ok(ann2.join("rs", since=2))
    assert r["recovered"] is True and r["replayed"] == 1 and r["seq"] == 3
    ev = ann2.next_event("message", room="rs")
    assert (ev["seq"], ev["mid"]) == (3, more["mid"])
    evs = events_of(bob, GRACE + 1.0)
    assert kinds(evs) == [], f"a resumed session made the others see: {evs}"
    assert [e for e in evs if e["ev"] != "message"] == []
    assert acks[0]["seq"] == 1


def test_close_1000_is_offline_at_once_a_drop_only_after_the_grace(server_factory):
    srv = server_factory(conf(session__resume_ttl="10s"))
    bob, _ = connect(srv, "bob")
    bob.call("presence", users=["ann"])
    ok(bob.join("bye"))
    ann, _ = connect(srv, "ann")
    ok(ann.join("bye"))
    assert sorted(kinds(events_of(bob, 0.3))) == [("join", "ann"), ("presence", "ann", True)]
    t0 = time.monotonic()
    ann.close(1000)
    got = []
    while len(got) < 2 and time.monotonic() - t0 < 3:
        got += kinds(events_of(bob, 0.1))
    took = time.monotonic() - t0
    assert sorted(got) == [("leave", "ann"), ("presence", "ann", False)], got
    assert took < 2.0, f"offline after {took:.2f}s with session.resume_ttl = 10s"
    # a dropped connection keeps the user present (well beyond a close-1000's delay)
    ann, _ = connect(srv, "ann")
    ok(ann.join("bye"))
    assert sorted(kinds(events_of(bob, 0.3))) == [("join", "ann"), ("presence", "ann", True)]
    ann.abort()
    assert kinds(events_of(bob, 2.0)) == []


# ---- presence op ------------------------------------------------------------------------------------------


def test_presence_members_with_metas_subscriptions_and_stored_last_seen(srv):
    a1, h1 = connect(srv, "ann", client="web/1.0")
    a2, h2 = connect(srv, "ann", codec="msgpack", client="ios/2.0")
    bob, hb = connect(srv, "bob", client="cli")
    for c in (a1, a2, bob):
        ok(c.join("pr"))
    t_before = now_ms()
    r = bob.call("presence", room="pr")
    assert r["room"] == "pr"
    members = {m["user"]["id"]: m for m in r["members"]}
    assert sorted(members) == ["ann", "bob"]
    assert members["ann"]["user"] == {"id": "ann", "name": "Ann"}
    ann_conns = sorted((c["conn"], c["client"]) for c in members["ann"]["connections"])
    assert ann_conns == sorted([(h1["conn"], "web/1.0"), (h2["conn"], "ios/2.0")])
    assert [(c["conn"], c["client"]) for c in members["bob"]["connections"]] == [(hb["conn"], "cli")]
    for m in members.values():
        assert isinstance(m["since"], int) and m["since"] <= t_before
        for c in m["connections"]:
            assert isinstance(c["since"], int) and c["since"] <= t_before
    # a detached session shows as conn null until it resumes or ends
    a2.abort()
    time.sleep(0.2)
    members = {m["user"]["id"]: m for m in bob.call("presence", room="pr")["members"]}
    conns = sorted((c["conn"] is None, c["client"]) for c in members["ann"]["connections"])
    assert conns == [(False, "web/1.0"), (True, "ios/2.0")], members["ann"]
    time.sleep(GRACE + 0.8)
    members = {m["user"]["id"]: m for m in bob.call("presence", room="pr")["members"]}
    assert [(c["conn"], c["client"]) for c in members["ann"]["connections"]] == [(h1["conn"], "web/1.0")]

    # subscription to named users
    carl, _ = connect(srv, "carl")
    st = {s["user"]["id"]: s for s in carl.call("presence", users=["dave", "ann"])["users"]}
    assert st["dave"]["user"]["id"] == "dave" and st["dave"]["online"] is False and st["dave"]["last_seen"] is None, st
    assert st["ann"]["online"] is True
    dave, _ = connect(srv, "dave")
    ev = carl.next_event("presence", timeout=3)
    assert ev["user"] == {"id": "dave", "name": "Dave"} and ev["online"] is True
    t0 = now_ms()
    dave.close(1000)
    ev = carl.next_event("presence", timeout=3)
    assert ev["user"]["id"] == "dave" and ev["online"] is False
    assert isinstance(ev["last_seen"], int) and t0 - 50 <= ev["last_seen"] <= now_ms() + 50
    last_seen = ev["last_seen"]
    assert carl.no_event("presence", timeout=0.3) is None
    st = carl.call("presence", users=["dave"])["users"]
    assert st[0]["online"] is False and st[0]["last_seen"] == last_seen

    # last_seen is stored: it survives a restart
    restart(srv, "term")
    carl, _ = connect(srv, "carl")
    st = carl.call("presence", users=["dave"])["users"]
    assert st[0]["online"] is False and st[0]["last_seen"] == last_seen, st


# ---- server restart ---------------------------------------------------------------------------------------


def test_kill9_with_users_online_leaves_no_ghosts_and_clients_recover(srv):
    ann, ha = connect(srv, "ann")
    bob, hb = connect(srv, "bob")
    for c in (ann, bob):
        ok(c.join("rr"))
        ok(c.join("rr2"))
    acks = [ok(bob.send("rr", f"b{i}", cmid=f"b-{i}")) for i in range(1, 6)]
    assert [e["seq"] for e in ann.messages("rr", 5)] == [1, 2, 3, 4, 5]
    ok(ann.send("rr2", "x", cmid="a-x"))
    ok(ann.send("rr2", "y", cmid="a-y"))

    kill9(srv)
    srv.start()
    carl, _ = connect(srv, "carl")
    st = carl.call("presence", users=["ann", "bob"])["users"]
    assert [(s["user"]["id"], s["online"]) for s in st] == [("ann", False), ("bob", False)], st
    ok(carl.join("rr"))
    assert [m["user"]["id"] for m in carl.call("presence", room="rr")["members"]] == ["carl"]
    assert kinds(events_of(carl, GRACE + 0.5)) == [], "ghost presence after the restart"

    bob2, hb2 = connect(srv, "bob", resume=hb["resume_token"])
    assert hb2["resumed"] is False and not hb2.get("rooms"), hb2
    r = ok(bob2.join("rr", since=5))
    assert (r["seq"], r["recovered"], r["replayed"]) == (5, True, 0), r
    assert sorted(kinds(events_of(carl, 0.3))) == [("join", "bob"), ("presence", "bob", True)]
    acks += [ok(bob2.send("rr", f"b{i}", cmid=f"b-{i}")) for i in range(6, 11)]
    assert [a["seq"] for a in acks] == list(range(1, 11))

    ann2, ha2 = connect(srv, "ann", resume=ha["resume_token"])
    assert ha2["resumed"] is False
    r = ann2.join("rr", since=5)
    rep = ok(r)
    assert rep["seq"] == 10 and rep["recovered"] is True and rep["replayed"] == 5, rep
    evs = ann2.messages("rr", 5)
    assert [(e["seq"], e["mid"]) for e in evs] == [(a["seq"], a["mid"]) for a in acks[5:]]
    i_reply = next(i for i, f in enumerate(ann2.log) if f is r)
    assert all(ann2.log.index(e) < i_reply for e in evs), "replayed messages must come before the reply"
    r2 = ok(ann2.join("rr2", since=0))
    assert r2["replayed"] == 2 and [e["cmid"] for e in ann2.messages("rr2", 2)] == ["a-x", "a-y"]
    ann2.no_event("message", timeout=0.2)


# ---- recovery ------------------------------------------------------------------------------------------------


class BackgroundSender(threading.Thread):
    """Keeps sending to a room (one at a time, acks read) until stopped; its own connection."""

    def __init__(self, client, room, prefix, pause=0.002):
        super().__init__(daemon=True)
        self.client, self.room, self.prefix, self.pause = client, room, prefix, pause
        self.stop = threading.Event()
        self.acks = []
        self.error = None
        client.log = None

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                self.acks.append(ok(self.client.send(self.room, f"{self.prefix}{i}", cmid=f"{self.prefix}-{i}")))
                self.client.events.clear()
                time.sleep(self.pause)
        except Exception as e:
            self.error = e


def pump(sender, timeout):
    deadline = time.monotonic() + timeout
    while not sender.done:
        assert time.monotonic() < deadline, f"sending did not finish: {len(sender.acks)} acked"
        sender.step()


def test_recovery_of_500_missed_while_others_keep_sending(server_factory):
    srv = server_factory(conf(recovery__max_messages=1000))
    room = "rec"
    ann, h = connect(srv, "ann")
    bob, _ = connect(srv, "bob")
    carl, _ = connect(srv, "carl")
    for c in (ann, bob, carl):
        ok(c.join(room))
    for i in range(3):
        ok(bob.send(room, f"p{i}", cmid=f"p-{i}"))
    assert [e["seq"] for e in ann.messages(room, 3)] == [1, 2, 3]
    since = 3
    ann.abort()

    bg = BackgroundSender(carl, room, "bg")
    bg.start()
    out = OutboxSender(room, [f"burst-{i}" for i in range(1, 501)], window=32)
    out.attach(bob)
    try:
        pump(out, 60)
        assert len(out.acks) == 500 and out.dups == 0
        ann2, _ = connect(srv, "ann", resume=h["resume_token"])
        r = ann2.join(room, since=since, _timeout=15)
        rep = ok(r)
        time.sleep(0.5)  # live traffic continues after the reply
    finally:
        bg.stop.set()
        bg.join(10)
    assert bg.error is None, f"background sender: {bg.error!r}"
    assert len(bg.acks) > 0
    last = bg.acks[-1]["seq"]
    assert rep["recovered"] is True, rep
    i_reply = next(i for i, f in enumerate(ann2.log) if f is r)
    replayed = [f for f in ann2.log[:i_reply] if f.get("ev") == "message"]
    assert rep["replayed"] == len(replayed) == rep["seq"] - since, (rep, len(replayed))
    assert rep["seq"] >= since + 500
    assert [e["seq"] for e in replayed] == list(range(since + 1, rep["seq"] + 1))
    # then live messages: first the one after the head in the reply, up to the background sender's last
    live = []
    deadline = time.monotonic() + 10
    while not live or live[-1]["seq"] < last:
        assert time.monotonic() < deadline, f"live messages stopped at {live[-1]['seq'] if live else None} < {last}"
        e = ann2.next_event("message", room=room, timeout=max(0.0, deadline - time.monotonic()))
        if any(e is x for x in replayed):
            continue
        live.append(e)
    live_seqs = [e["seq"] for e in live]
    assert live_seqs == list(range(rep["seq"] + 1, last + 1)), \
        f"gap or duplicate at the replay/live switch: head {rep['seq']}, live {live_seqs[:10]}…"
    ann2.no_event("message", room=room, timeout=0.3)
    # what was replayed and delivered live is what was acknowledged
    by_seq = {a["seq"]: a for a in list(out.acks.values()) + bg.acks}
    for e in replayed + live:
        assert e["mid"] == by_seq[e["seq"]]["mid"]
    print(f"replayed {len(replayed)}, then {len(live)} live; background sender sent {len(bg.acks)}")


def test_recovery_over_the_limit_is_partial_and_history_pages_the_rest(server_factory):
    srv = server_factory(conf(recovery__max_messages=50))
    room = "part"
    ann, _ = connect(srv, "ann")
    bob, _ = connect(srv, "bob")
    ok(ann.join(room))
    ok(bob.join(room))
    pre = [ok(bob.send(room, f"p{i}", cmid=f"p-{i}")) for i in range(5)]
    assert [e["seq"] for e in ann.messages(room, 5)] == [1, 2, 3, 4, 5]
    ann.abort()
    out = OutboxSender(room, [f"m-{i}" for i in range(1, 201)], window=32)
    out.attach(bob)
    pump(out, 60)
    head = 205
    acks = {a["seq"]: a for a in list(out.acks.values()) + pre}
    assert sorted(acks) == list(range(1, head + 1))

    ann2, _ = connect(srv, "ann")
    r = ann2.join(room, since=5)
    rep = ok(r)
    assert rep["recovered"] is False and rep["replayed"] == 50 and rep["seq"] == head, rep
    assert rep["missing"] == {"from": 6, "to": head - 50}, rep
    i_reply = next(i for i, f in enumerate(ann2.log) if f is r)
    replayed = [f["seq"] for f in ann2.log[:i_reply] if f.get("ev") == "message"]
    assert replayed == list(range(head - 49, head + 1)), "the newest ones are replayed, in order"
    # the cursor: history before = missing.to + 1 (= the first replayed seq), paged backwards
    msgs = history_all_backwards(ann2, room, before=rep["missing"]["to"] + 1, stop_at=rep["missing"]["from"],
                                 page=40)
    rest = [m for m in msgs if m["seq"] >= rep["missing"]["from"]]
    assert [m["seq"] for m in rest] == list(range(6, head - 49))
    assert all(m["mid"] == acks[m["seq"]]["mid"] for m in rest)
    # and live continues after the replay
    nxt = ok(bob.send(room, "live", cmid="live-1"))
    ev = [e for e in ann2.messages(room, 51) if e["seq"] > head]
    assert [e["seq"] for e in ev] == [nxt["seq"]] == [head + 1]


# ---- outbox ----------------------------------------------------------------------------------------------------


def test_outbox_resend_after_lost_acks_stores_and_delivers_each_once(srv):
    room = "ob"
    ann, h = connect(srv, "ann")
    bob, _ = connect(srv, "bob")
    ok(ann.join(room))
    ok(bob.join(room))
    cmids = [f"ob-{i}" for i in range(1, 31)]
    for i, cmid in enumerate(cmids):
        ann.send_obj({"id": 1000 + i, "op": "send", "room": room, "body": cmid, "cmid": cmid})
    # wait until some of them are surely stored (bob saw them), then drop without reading a single ack
    bob.next_event("message", room=room, timeout=5)
    ann.abort()

    ann2, _ = connect(srv, "ann", resume=h["resume_token"])
    ok(ann2.join(room))
    extra = [f"ob-{i}" for i in range(31, 36)]  # and some that were never sent
    acks = [ok(ann2.send(room, cmid, cmid=cmid)) for cmid in cmids + extra]
    seqs = [a["seq"] for a in acks]
    assert seqs == list(range(1, 36)), f"each message must keep the seq of its first store: {seqs}"
    dups = sum(1 for a in acks if a.get("duplicate"))
    assert dups >= 1 and all(not a.get("duplicate") for a in acks[30:])
    print(f"{dups} of 30 resends were duplicates")
    got = [e for e in events_of(bob, 1.0, ev="message", room=room)]
    got_seqs = [1] + [e["seq"] for e in got]  # seq 1 was read above
    assert got_seqs == list(range(1, 36)), f"bob must see each seq exactly once, in order: {got_seqs}"
    assert collections.Counter(e["cmid"] for e in got) == collections.Counter(cmids[1:] + extra)
    msgs = history_all(bob, room)
    assert [m["cmid"] for m in msgs] == cmids + extra


# ---- typing -------------------------------------------------------------------------------------------------------


def typing_events(c, room, timeout):
    return events_of(c, timeout, ev="typing", room=room)


def test_typing_shown_to_others_only_and_cleared_on_send_leave_and_last_disconnect(server_factory):
    # a long TTL here, so that every clear seen below is caused by what the test does, not by the TTL
    srv = server_factory(conf(typing__ttl="30s"))
    room = "ty"
    echo = []  # violations of "the typist's own connections get nothing when only their own state changed"

    def no_echo(what, *conns, timeout=0.3):
        for c in conns:
            got = typing_events(c, room, timeout)
            if got:
                echo.append(f"{what}: {c.name} got {got}")
            timeout = 0.05
    ann1, _ = connect(srv, "ann")
    ann2, _ = connect(srv, "ann")
    bob, _ = connect(srv, "bob")
    carl, _ = connect(srv, "carl")
    for c in (ann1, ann2, bob, carl):
        ok(c.join(room))
    for c in (ann1, ann2, bob, carl):
        events_of(c, 0.1)

    assert ann1.call("typing", room=room, active=True) == {}
    for c in (bob, carl):
        ev = c.next_event("typing", room=room, timeout=2)
        assert ev == {"ev": "typing", "room": room, "users": [{"id": "ann", "name": "Ann"}]}
    # the typist's own connections get nothing when only their own state changed
    no_echo("ann starts typing", ann1, ann2)

    # a second typist: others get the aggregated list; ann gets it without herself
    ok(carl.request("typing", room=room, active=True))
    assert ids(bob.next_event("typing", room=room, timeout=2)["users"]) == ["ann", "carl"]
    for c in (ann1, ann2):
        assert ids(c.next_event("typing", room=room, timeout=2)["users"]) == ["carl"]
    no_echo("carl starts typing", carl)
    # carl stops
    ok(carl.request("typing", room=room, active=False))
    assert ids(bob.next_event("typing", room=room, timeout=2)["users"]) == ["ann"]
    for c in (ann1, ann2):
        assert ids(c.next_event("typing", room=room, timeout=2)["users"]) == []
    no_echo("carl stops typing", carl)

    # clears on send
    ok(ann1.send(room, "done typing", cmid="t-1"))
    for c in (bob, carl):
        assert c.next_event("typing", room=room, timeout=2)["users"] == []
    no_echo("ann's typing cleared by her send", ann1, ann2)

    # clears on leave (ann's last connection in the room leaves; ann2 leaves first, nothing changes)
    ok(ann1.request("typing", room=room, active=True))
    assert ids(bob.next_event("typing", room=room, timeout=2)["users"]) == ["ann"]
    no_echo("ann starts typing again", ann1, ann2)
    ok(ann2.leave(room))
    assert typing_events(bob, room, 0.3) == []
    ok(ann1.leave(room))
    assert bob.next_event("typing", room=room, timeout=2)["users"] == []
    ok(ann1.join(room))

    # closing one of two tabs keeps it; losing the last connection clears it, after the grace period
    ok(ann2.join(room))
    ok(ann1.request("typing", room=room, active=True))
    assert ids(bob.next_event("typing", room=room, timeout=2)["users"]) == ["ann"]
    ann2.close(1000)
    assert typing_events(bob, room, 0.4) == []
    t0 = time.monotonic()
    ann1.abort()
    problems = ["typing echoed to the typist's own connections (docs/protocol.md 'typing' event): " + e
                for e in echo]
    early = typing_events(bob, room, GRACE * 0.6)
    if early:
        # docs/protocol.md: the state is cleared when the user "loses their last session"; a dropped
        # connection's session is detached, not lost, until session.resume_ttl runs out
        problems.append(f"typing cleared {time.monotonic() - t0:.2f}s after the last connection dropped, "
                        f"before session.resume_ttl ({GRACE}s) ran out: {early}")
        ev = early[-1]
    else:
        ev = bob.next_event("typing", room=room, timeout=GRACE + 2)
    took = time.monotonic() - t0
    assert ev["users"] == [] and took < GRACE + 2, (ev, took)
    assert not problems, "\n".join(problems)


def test_typing_expires_after_ttl_unless_refreshed(srv):
    room = "tt"
    ann, _ = connect(srv, "ann")
    bob, _ = connect(srv, "bob")
    ok(ann.join(room))
    ok(bob.join(room))
    events_of(bob, 0.1)
    t0 = time.monotonic()
    ok(ann.request("typing", room=room, active=True))
    assert ids(bob.next_event("typing", room=room, timeout=2)["users"]) == ["ann"]
    ev = bob.next_event("typing", room=room, timeout=3)
    took = time.monotonic() - t0
    assert ev["users"] == [] and 0.8 <= took <= 2.0, f"cleared after {took:.2f}s with typing.ttl = 1s"
    # refreshed every 0.4s it stays
    ok(ann.request("typing", room=room, active=True))
    assert ids(bob.next_event("typing", room=room, timeout=2)["users"]) == ["ann"]
    for _ in range(6):
        time.sleep(0.4)
        ok(ann.request("typing", room=room, active=True))
    assert typing_events(bob, room, 0.05) == [], "a refreshed typing state expired or was re-sent"
    ev = bob.next_event("typing", room=room, timeout=3)
    assert ev["users"] == []


def test_typing_events_are_throttled_per_room(server_factory):
    srv = server_factory(conf(typing__interval="500ms", typing__ttl="6s"))
    room = "thr"
    ann, _ = connect(srv, "ann")
    carl, _ = connect(srv, "carl")
    bob, _ = connect(srv, "bob")
    for c in (ann, carl, bob):
        ok(c.join(room))
    events_of(bob, 0.1)
    bob.log = None
    t0 = time.monotonic()
    flips = 0
    while time.monotonic() - t0 < 3.0:
        for c in (ann, carl):
            c.send_obj({"id": f"t{flips}", "op": "typing", "room": room, "active": True})
        time.sleep(0.06)
        for c in (ann, carl):
            c.send_obj({"id": f"f{flips}", "op": "typing", "room": room, "active": False})
        time.sleep(0.02)
        flips += 1
        # keep reading so that the typists' replies never pile up
        for c in (ann, carl):
            events_of(c, 0.0)
    duration = time.monotonic() - t0
    # what arrived during the flips plus what comes in the next second
    evs = typing_events(bob, room, 1.0)
    print(f"{flips} flips per typist in {duration:.1f}s -> {len(evs)} typing events")
    assert 1 <= len(evs) <= 3 * (duration + 1.0) + 1, f"{len(evs)} typing events in {duration + 1:.1f}s"
    assert evs[-1]["users"] == [], "after the last flip (inactive) the list must end empty"


def test_typing_throttle_spacing(server_factory):
    """Events of one room are at least typing.interval apart (measured at the receiver, with slack)."""
    srv = server_factory(conf(typing__interval="500ms", typing__ttl="6s"))
    room = "thr2"
    ann, _ = connect(srv, "ann")
    bob, _ = connect(srv, "bob")
    ok(ann.join(room))
    ok(bob.join(room))
    events_of(bob, 0.1)
    stamps = []
    stop = threading.Event()

    def reader():
        deadline = time.monotonic() + 6
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                bob.next_event("typing", room=room, timeout=0.1)
                stamps.append(time.monotonic())
            except Timeout:
                pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 2.5:
        ok(ann.request("typing", room=room, active=(i % 2 == 0)))
        i += 1
        time.sleep(0.03)
    ok(ann.request("typing", room=room, active=False))
    time.sleep(1.0)
    stop.set()
    t.join(3)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    print(f"{i} flips -> {len(stamps)} events, gaps {[round(g, 2) for g in gaps]}")
    assert stamps, "no typing event at all"
    assert all(g >= 0.35 for g in gaps), f"typing events closer than typing.interval: {gaps}"


# ---- rooms / read -------------------------------------------------------------------------------------------


def test_rooms_list_unread_and_read_markers(srv):
    a1, _ = connect(srv, "ann")
    a2, _ = connect(srv, "ann", codec="msgpack")
    bob, _ = connect(srv, "bob")
    for c in (a1, bob):
        ok(c.join("r-a"))
        ok(c.join("r-b"))
    for i in range(5):
        ok(bob.send("r-a", f"a{i}", cmid=f"ra-{i}"))
    for i in range(2):
        ok(bob.send("r-b", f"b{i}", cmid=f"rb-{i}"))

    def rooms(c):
        return {r["room"]: (r["seq"], r["read"], r["unread"]) for r in c.call("rooms")["rooms"]}

    # the user's list, seen from a connection that joined nothing (another device)
    assert rooms(a2) == {"r-a": (5, 0, 5), "r-b": (2, 0, 2)}
    assert ok(a1.request("read", room="r-a", seq=3)) == {"room": "r-a", "read": 3}
    ev = a2.next_event("read", timeout=2)
    assert ev == {"ev": "read", "room": "r-a", "seq": 3}
    assert a1.no_event("read", timeout=0.2) is None and bob.no_event("read", timeout=0.05) is None
    # only forward
    assert ok(a1.request("read", room="r-a", seq=2)) == {"room": "r-a", "read": 3}
    assert a2.no_event("read", timeout=0.3) is None
    assert rooms(a1) == {"r-a": (5, 3, 2), "r-b": (2, 0, 2)}
    ok(a2.request("read", room="r-b", seq=2))
    assert a1.next_event("read", timeout=2) == {"ev": "read", "room": "r-b", "seq": 2}
    # new messages raise unread
    ok(bob.send("r-a", "a5", cmid="ra-5"))
    assert rooms(a2)["r-a"] == (6, 3, 3)
    # leave keeps the room in the list; leave with forget removes it
    ok(a1.leave("r-b"))
    assert "r-b" in rooms(a1)
    ok(a1.leave("r-a", forget=True))
    assert rooms(a1) == {"r-b": (2, 2, 0)} and rooms(a2) == {"r-b": (2, 2, 0)}
    # stored: the list and the markers survive a restart
    restart(srv, "term")
    a3, _ = connect(srv, "ann")
    assert rooms(a3) == {"r-b": (2, 2, 0)}


# ---- slow client --------------------------------------------------------------------------------------------


def test_slow_client_is_closed_4008_others_unaffected_memory_bounded_and_it_recovers(server_factory):
    # Under ASan freed memory waits in a large quarantine, so RSS would measure ASan, not our queues.
    env = ({"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"}
           if os.environ.get("PARLEY_SANITIZE") == "1" else None)
    srv = server_factory(conf(limits__out_queue_bytes="64KiB", recovery__max_messages=100000,
                              **{"log.level": "warn"}), env=env)
    room = "busy"
    body = "y" * 4000
    count = 2000  # ~8 MB per recipient, far beyond 64 KiB + socket buffers
    sender, _ = connect(srv, "sender", codec="msgpack")
    observer, _ = connect(srv, "observer")
    slow, _ = connect(srv, "slow", rcvbuf=4096)
    for c in (sender, observer, slow):
        ok(c.join(room))
    events_of(observer, 0.1)
    for c in (sender, observer, slow):
        c.log = None
    recv_at = {}
    seqs = []
    err = []

    def read_all():
        deadline = time.monotonic() + 60
        try:
            while len(seqs) < count:
                ev = observer.next_event("message", room=room, timeout=max(0.0, deadline - time.monotonic()))
                seqs.append(ev["seq"])
                recv_at[ev["seq"]] = time.monotonic()
        except Exception as e:
            err.append(e)

    t = threading.Thread(target=read_all, daemon=True)
    t.start()
    rss0 = srv.rss_kb()
    rss_max = rss0
    acked_at = {}
    for i in range(count):
        a = ok(sender.send(room, body, cmid=f"s-{i}"))
        acked_at[a["seq"]] = time.monotonic()
        assert a["seq"] == i + 1
        if i % 100 == 0:
            rss_max = max(rss_max, srv.rss_kb())
            sender.events.clear()
    rss_max = max(rss_max, srv.rss_kb())
    t.join(60)
    assert not err, f"observer: {err[0]!r}"
    assert seqs == list(range(1, count + 1)), "the observer must get every message, in order"
    lags = sorted(max(0.0, recv_at[s] - acked_at[s]) for s in seqs)
    p99 = lags[int(len(lags) * 0.99)]
    print(f"observer lag after ack: p50 {lags[len(lags) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {lags[-1] * 1000:.1f} ms; RSS {rss0} -> max {rss_max} kB")
    assert p99 < 0.5, f"observer p99 lag {p99:.3f}s: slowed by the slow client?"
    assert rss_max - rss0 < 50 * 1024, f"server RSS grew by {(rss_max - rss0) / 1024:.0f} MB"

    # the slow client: a gapless prefix, then close 4008
    got = []
    code = None
    deadline = time.monotonic() + 20
    while code is None:
        assert time.monotonic() < deadline, f"slow client was not closed; got {len(got)} messages"
        try:
            ev = slow.next_event("message", room=room, timeout=max(0.0, deadline - time.monotonic()))
            got.append(ev["seq"])
        except ConnectionClosed as e:
            code = e.code
        except Timeout:
            break
    assert code is not None, f"slow client was never closed; got {len(got)} messages"
    assert got == list(range(1, len(got) + 1)), "what the slow client got before the close is a gapless prefix"
    assert len(got) < count
    # it reconnects and recovers every message by seq
    problems = []
    if code != 4008:
        problems.append(f"slow client: expected close 4008 (docs/protocol.md 'Close codes'), got {code} "
                        f"(1006: no close frame) after {len(got)} messages")
    again, _ = connect(srv, "slow", timeout=15)
    again.log = None
    try:
        r = ok(again.join(room, since=len(got), _timeout=15))
        assert r["recovered"] is True and r["replayed"] == count - len(got) and r["seq"] == count, r
        rec = again.messages(room, count - len(got), timeout=30)
        assert [e["seq"] for e in rec] == list(range(len(got) + 1, count + 1))
        assert all(e["body"] == body for e in rec)
        print(f"slow client got {len(got)} then close {code}, recovered {len(rec)}")
    except ConnectionClosed as e:
        problems.append(f"the reconnected client's join since={len(got)} (replay of {count - len(got)} messages, "
                        f"~{(count - len(got)) * 4 // 1024} MB) closed the connection with {e.code} before the "
                        f"reply: the replay is queued at once and trips limits.out_queue_bytes")
        # the messages are there: history pages them (small pages: a reply must fit in the 64 KiB queue)
        c2, _ = connect(srv, "slow2", timeout=15)
        c2.log = None
        msgs = [m for m in history_all(c2, room, page=10, max_pages=1000) if m["seq"] > len(got)]
        assert [m["seq"] for m in msgs] == list(range(len(got) + 1, count + 1))
    assert not problems, "\n".join(problems)


def test_recovery_replay_larger_than_the_out_queue_reaches_a_fast_reader(server_factory):
    """A join with since replays up to recovery.max_messages; nothing in docs/protocol.md bounds it by
    limits.out_queue_bytes. A client that reads as fast as it can must get the whole replay."""
    srv = server_factory(conf(limits__out_queue_bytes="64KiB"))
    room = "big-replay"
    a, _ = connect(srv, "ann")
    ok(a.join(room))
    a.log = None
    body = "z" * 2000
    for i in range(100):  # ~200 KB of messages
        ok(a.send(room, body, cmid=f"br-{i}"))
        a.events.clear()
    b, _ = connect(srv, "bob", timeout=10)
    try:
        r = b.join(room, since=0)
    except ConnectionClosed as e:
        n = sum(1 for f in b.log if f.get("ev") == "message")
        pytest.fail(f"join since=0 (replay of 100 x 2 KB) closed a fast-reading client with {e.code} after "
                    f"{n} replayed messages (limits.out_queue_bytes = 64KiB)")
    rep = ok(r)
    assert rep["recovered"] is True and rep["replayed"] == 100 and rep["seq"] == 100
    assert [f["seq"] for f in b.log if f.get("ev") == "message"] == list(range(1, 101))
