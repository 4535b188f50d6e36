#!/usr/bin/env python3
"""bench/guest_cycles.py: does memory come back after mass guest disconnects?

Starts parleyd (guests on, the default SQLite store in a fresh data directory, session.resume_ttl 2 s) and
runs CYCLES times: loadgen opens N idle guest connections (hello + join, rooms of 10, over several worker
processes and source addresses: the fd limit is 20,000 per process), holds them, drops them; once the
sessions have ended (the grace period) the server's heap is trimmed (gdb calls malloc_trim(0) in it, when gdb
is installed) and its RSS is read. Prints one line per cycle with RSS and the /metrics gauges of what the
server keeps per user (parley_users, parley_sessions, parley_last_seen_entries) and the store's row counts.
Flat RSS and zero gauges/rows after each cycle are the expectation (tests/integration/test_guests.py is the
small automated version).

  cmake -S bench -B build/bench -DCMAKE_BUILD_TYPE=Release && cmake --build build/bench
  bench/guest_cycles.py [--server-bin build/src/parleyd] [--loadgen build/bench/loadgen] [--conns 15000]
                        [--cycles 3]
"""

import argparse
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
from scratch import Scratch  # noqa: E402


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, v = line.split()[:2]
            out[k] = float(v)
    return out


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def trim(pid):
    """malloc_trim(0) inside the server, so that RSS shows what is in use rather than what glibc keeps."""
    if not shutil.which("gdb"):
        return False
    r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return r.returncode == 0


def rows(data_dir):
    path = os.path.join(data_dir, "parley.db")
    if not os.path.exists(path):
        return None, None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return (db.execute("SELECT count(*) FROM memberships").fetchone()[0],
                db.execute("SELECT count(*) FROM users").fetchone()[0])
    finally:
        db.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server-bin", default=os.path.join(REPO, "build", "src", "parleyd"))
    ap.add_argument("--loadgen", default=os.path.join(REPO, "build", "bench", "loadgen"))
    ap.add_argument("--conns", type=int, default=15000)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--procs", type=int, default=0, help="loadgen workers (default: one per 7,500 connections)")
    ap.add_argument("--ttl", type=float, default=2.0, help="session.resume_ttl, seconds")
    a = ap.parse_args()
    procs = a.procs or max(1, -(-a.conns // 7500))

    s = Scratch(a.server_bin, f"limits.hello_timeout = 60s\nsession.resume_ttl = {int(a.ttl * 1000)}ms\n",
                "parley-guest-cycles-")
    srv, port, data_dir = s.proc, s.port, s.data_dir
    try:
        trim(srv.pid)
        print(f"server {a.server_bin} pid {srv.pid}, {a.conns} guests per cycle, {procs} loadgen processes")
        print(f"start: RSS {rss_kb(srv.pid) / 1024:.1f} MB (after malloc_trim: {'yes' if shutil.which('gdb') else 'no gdb'})")
        print("cycle  RSS_MB  held_RSS_MB  users  sessions  last_seen  stored_memberships  stored_users")
        for cyc in range(1, a.cycles + 1):
            lg = subprocess.run([a.loadgen, "--url", f"127.0.0.1:{port}", "--idle", "--conns", str(a.conns),
                                 "--room-size", "10", "--procs", str(procs), "--src-ips", "8", "--duration", "2",
                                 "--warmup", "0", "--connect-timeout", "120", "--server-pid", str(srv.pid),
                                 "--json"], capture_output=True, text=True, timeout=600)
            held = None
            for line in lg.stdout.splitlines():
                if line.startswith("{"):
                    j = json.loads(line)
                    held = round(j["server_rss_kb"] / 1024, 1) if j.get("server_rss_kb") else None
                    if j.get("ready") is not None and j["ready"] < a.conns:
                        print(f"  (only {j['ready']} of {a.conns} connections were ready)")
            if lg.returncode:
                print(f"  loadgen exited {lg.returncode}: {lg.stderr.strip()[-300:]}")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                m = metrics(port)
                if m.get("parley_connections") == 0 and m.get("parley_sessions", 0) == 0:
                    break
                time.sleep(0.25)
            time.sleep(a.ttl + 1.0)  # store deletes trail the sessions' end
            m = metrics(port)
            trim(srv.pid)
            mr, ur = rows(data_dir)
            print(f"{cyc:5d}  {rss_kb(srv.pid) / 1024:6.1f}  {held if held is not None else '-':>11}  "
                  f"{m.get('parley_users', '-'):>5}  {m.get('parley_sessions', '-'):>8}  "
                  f"{m.get('parley_last_seen_entries', '-'):>9}  {mr:>18}  {ur:>12}", flush=True)
    finally:
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
