"""A throwaway parleyd for the bench scripts (bench/guest_cycles.py, bench/read_storm.py): a temporary
conf.d and data directory, a free loopback port, guests on and the limits that would stop a load generator
off; stop() ends the server (by its PID) and removes the directory."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

CONF = """server.host = 127.0.0.1
server.port = {port}
server.data_dir = "{data_dir}"
server.web_root = ""
log.level = warn
auth.allow_anonymous = true
auth.jwt_secret = "bench-scratch-secret-0123456789"
limits.max_connections = 19000
limits.max_connections_per_ip = 0
rate.connect_ip = off
rate.join = off
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_proc(proc, timeout=20):
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Scratch:
    def __init__(self, server_bin, extra="", prefix="parley-bench-"):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        conf_dir, self.data_dir = os.path.join(self.tmp, "conf.d"), os.path.join(self.tmp, "data")
        os.makedirs(conf_dir)
        os.makedirs(self.data_dir)
        self.port = free_port()
        with open(os.path.join(conf_dir, "50-bench.conf"), "w") as f:
            f.write(CONF.format(port=self.port, data_dir=self.data_dir) + extra)
        self.err = open(os.path.join(self.tmp, "parleyd.stderr"), "wb")
        self.proc = subprocess.Popen([server_bin, "-c", conf_dir], stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=self.err)
        for _ in range(200):  # listening within 10 s
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def stop(self):
        stop_proc(self.proc)
        self.err.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
