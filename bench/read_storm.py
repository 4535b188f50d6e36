#!/usr/bin/env python3
"""bench/read_storm.py: what a flood of `read` requests costs the server and everyone else.

Starts parleyd (guests on, default SQLite store, rate.read off so that the flood gets through), opens
IDLE idle guest connections with loadgen, then one guest pipelines N `read` requests to fresh room names
while another connection pings every 20 ms. Prints the time until the flood's last reply and the pings'
latency (p50/p99/max). The cost of one `read` must not depend on how many connections are open (its event
goes to the user's own sessions only), so the figures should be about the same with --idle 0 and 10000.

  bench/read_storm.py [--server-bin build/src/parleyd] [--loadgen build/bench/loadgen] [--idle 10000]
                      [--reads 20000]
"""

import argparse
import os
import subprocess
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
from scratch import Scratch, stop_proc  # noqa: E402
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from wsclient import Client  # noqa: E402  (the integration tests' client)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server-bin", default=os.path.join(REPO, "build", "src", "parleyd"))
    ap.add_argument("--loadgen", default=os.path.join(REPO, "build", "bench", "loadgen"))
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--reads", type=int, default=20000)
    a = ap.parse_args()

    # rate.read off, so that the flood gets through (a build from before rate.read has no such key)
    doc = subprocess.run([a.server_bin, "--config-doc"], capture_output=True, text=True).stdout
    s = Scratch(a.server_bin, "rate.read = off\n" if "rate.read" in doc else "", "parley-read-storm-")
    srv, port = s.proc, s.port
    lg = None
    try:
        if a.idle:
            lg = subprocess.Popen([a.loadgen, "--url", f"127.0.0.1:{port}", "--idle", "--conns", str(a.idle),
                                   "--procs", str(max(1, -(-a.idle // 7500))), "--room-size", "10",
                                   "--duration", "600", "--warmup", "0", "--server-pid", str(srv.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # wait until the server holds them (its connection count, from /metrics)
            import http.client
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/metrics")
                body = c.getresponse().read().decode()
                c.close()
                n = next((float(line.split()[1]) for line in body.splitlines()
                          if line.startswith("parley_connections ")), 0)
                if n >= a.idle:
                    break
                time.sleep(0.5)
            time.sleep(2)
        flood, pinger = Client(port, timeout=120), Client(port, timeout=30)
        flood.log = pinger.log = None
        flood.hello()
        pinger.hello()
        lat, stop = [], threading.Event()

        def pings():
            while not stop.is_set():
                t = time.monotonic()
                pinger.ping()
                lat.append((time.monotonic() - t) * 1000)
                time.sleep(0.02)

        th = threading.Thread(target=pings, daemon=True)
        th.start()
        t0 = time.monotonic()
        for i in range(a.reads):
            flood.send_obj({"id": i + 1000, "op": "read", "room": f"storm-{i}", "seq": 1})
        errors = 0
        for i in range(a.reads):
            r = flood.next_reply(re=i + 1000, timeout=120)
            errors += "ok" not in r
        took = time.monotonic() - t0
        stop.set()
        th.join(5)
        lat.sort()
        q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else (lambda p: float("nan"))
        print(f"{a.reads} pipelined reads with {a.idle} idle connections: {took:.2f} s "
              f"({a.reads / took:.0f}/s, {errors} errors); ping during the flood: n={len(lat)} "
              f"p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {lat[-1] if lat else float('nan'):.1f} ms")
    finally:
        if lg:
            stop_proc(lg)
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
