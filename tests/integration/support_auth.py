"""Helpers for test_auth.py and test_hooks.py (stdlib + openssl CLI only).

  * keys and tokens: RSA / EC key pairs generated with the openssl CLI at test time, RS256 / ES256 JWTs
    signed with them (openssl dgst), a self-signed TLS certificate;
  * servers with extra conf.d lines (start_with_conf), log polling, SIGHUP reloads;
  * a TLS-capable WebSocket / Parley client (wsclient.py's classes over an ssl-wrapped socket);
  * small HTTP helpers (POST, raw handshakes with extra headers).
"""

import http.client
import json
import os
import signal
import ssl
import subprocess
import time

import wsclient
from jwtmint import b64url
from wsclient import Client, HandshakeRefused, WebSocket

OPENSSL = "openssl"
BOUNDED = 5.0


# ---- keys, certificates, tokens -----------------------------------------------------------------------


def _run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, timeout=60, **kw)


def gen_rsa(directory, name, bits=2048):
    """(private_pem_path, public_pem_path) of a fresh RSA key."""
    priv = os.path.join(str(directory), f"{name}.key.pem")
    pub = os.path.join(str(directory), f"{name}.pub.pem")
    _run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", priv])
    _run([OPENSSL, "pkey", "-in", priv, "-pubout", "-out", pub])
    return priv, pub


def gen_ec(directory, name, curve="P-256"):
    priv = os.path.join(str(directory), f"{name}.key.pem")
    pub = os.path.join(str(directory), f"{name}.pub.pem")
    _run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}", "-out", priv])
    _run([OPENSSL, "pkey", "-in", priv, "-pubout", "-out", pub])
    return priv, pub


def gen_cert(directory, cn="localhost"):
    """A self-signed certificate for 127.0.0.1 / localhost: (cert_path, key_path)."""
    cert = os.path.join(str(directory), "tls.cert.pem")
    key = os.path.join(str(directory), "tls.key.pem")
    _run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
          "-subj", f"/CN={cn}", "-days", "1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    return cert, key


def _der_ecdsa_to_raw(der, size):
    """ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) -> r || s, each `size` bytes (JWS format)."""
    assert der[0] == 0x30, der[:4]
    pos = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[pos] == 0x02
        n = der[pos + 1]
        v = der[pos + 2:pos + 2 + n]
        pos += 2 + n
        v = v.lstrip(b"\x00")
        out += v.rjust(size, b"\x00")
    return out


def sign_jwt(alg, private_key_path, payload, kid=None, header=None):
    """A JWT signed with openssl: alg RS256/384/512 or ES256/384."""
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    if kid is not None and header is None:
        hdr["kid"] = kid
    signing_input = (b64url(json.dumps(hdr, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(payload, separators=(",", ":")).encode()))
    digest = {"256": "-sha256", "384": "-sha384", "512": "-sha512"}[alg[2:]]
    sig = _run([OPENSSL, "dgst", digest, "-sign", private_key_path], input=signing_input.encode()).stdout
    if alg.startswith("ES"):
        sig = _der_ecdsa_to_raw(sig, {"ES256": 32, "ES384": 48}[alg])
    return signing_input + "." + b64url(sig)


def claims(sub, name=None, exp_in=600, rooms=None, **extra):
    now = int(time.time())
    p = {"sub": sub, "iat": now}
    if name is not None:
        p["name"] = name
    if exp_in is not None:
        p["exp"] = now + exp_in
    if rooms is not None:
        p["rooms"] = rooms
    p.update(extra)
    return p


# ---- servers -------------------------------------------------------------------------------------------


def write_extra(srv, lines, name="60-extra.conf"):
    """Write raw conf.d lines (strings "key = value") into the server's conf dir."""
    path = os.path.join(srv.conf_dir, name)
    with open(path, "w") as f:
        f.write("# written by tests/integration/support_auth.py\n")
        for line in lines:
            f.write(line + "\n")
    return path


def start_with_conf(server_factory, lines=(), conf=None, **kw):
    """A server whose conf.d has BASE_CONF (+conf/kw) in 50-test.conf and `lines` in 60-extra.conf."""
    srv = server_factory(conf, start=False, **kw)
    write_extra(srv, list(lines))
    srv.start()
    return srv


def q(s):
    """A double-quoted conf.d string value."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def wait_for(pred, timeout=BOUNDED, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_log(srv, text, timeout=BOUNDED, start=0):
    """Wait until the server's stderr (from offset `start`) contains text; return the matching line."""
    def find():
        log = srv.stderr()[start:]
        for line in log.splitlines():
            if text in line:
                return line
        return None
    return wait_for(find, timeout, what=f"log line containing {text!r} in:\n{srv.stderr()[start:][-3000:]}")


def log_lines(srv, text, start=0):
    return [line for line in srv.stderr()[start:].splitlines() if text in line]


def sighup(srv, timeout=BOUNDED):
    """Send SIGHUP and wait until the server logs that it reloaded (or refused to). Returns the log offset
    at which the reload began."""
    start = len(srv.stderr())
    os.kill(srv.pid, signal.SIGHUP)
    wait_for(lambda: any(("configuration reloaded" in l) or ("reload failed" in l)
                         for l in srv.stderr()[start:].splitlines()),
             timeout, what="reload log line")
    return start


# ---- TLS WebSocket -----------------------------------------------------------------------------------


def insecure_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TLSWebSocket(WebSocket):
    """wsclient.WebSocket over TLS (certificate verification off: the test certificate is self-signed)."""

    def _open_socket(self, rcvbuf):
        raw = super()._open_socket(rcvbuf)
        try:
            tls = insecure_context().wrap_socket(raw, server_hostname="localhost")
        except Exception:
            raw.close()
            raise
        tls.settimeout(self.timeout)
        self.tls_version = tls.version()
        return tls


class TLSClient(Client):
    """wsclient.Client over wss://."""

    websocket_class = TLSWebSocket

    def __init__(self, port, codec="json", timeout=wsclient.DEFAULT_TIMEOUT, name=None):
        super().__init__(port, codec, timeout=timeout, name=name or ("tls-" + codec))


# ---- HTTP --------------------------------------------------------------------------------------------


def http_request(port, method, path, headers=None, body=None, tls=False, timeout=BOUNDED):
    """(status, body text)."""
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=insecure_context())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def handshake(port, headers=None, subprotocol="parley.v1.json"):
    """Try a WebSocket upgrade with extra headers. Returns (status, ws-or-None); an accepted socket is
    returned open (the caller closes it)."""
    try:
        ws = WebSocket(port, subprotocols=[subprotocol], extra_headers=headers or {})
    except HandshakeRefused as e:
        return e.status, None
    return 101, ws


def metric(port, metric_name, **labels):
    """Value of one Prometheus sample (0.0 if absent); labels are matched as substrings k="v"."""
    status, _, text = wsclient.http_get(port, "/metrics")
    assert status == 200
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(metric_name):
            continue
        rest = line[len(metric_name):]
        if rest and rest[0] not in "{ ":
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(line.split()[-1])
            found = True
    return total if found else 0.0
