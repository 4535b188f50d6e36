"""Every HTTP route of src/net/http.c, driven at least once (run this file under ASan: PARLEY_SANITIZE=1 fails a
test whose server reported a sanitizer error, e.g. a use-after-free while answering a request).

Routes (src/net/http.c http_callback / confirm_upgrade / the static mount of http_mounts):
  GET  /healthz, GET /metrics, GET <anything else> -> 404, a method other than GET/POST -> 405
  POST /api/dev/login (auth.dev_login): 200, 400 (bad body), 413 (body over 4 KiB); 404 when off
  POST /api/admin/reload (hooks.admin_key): 401, 200; 404 when unset; POST <anything else> -> 404
  static files under server.web_root (index, a file, a missing file), with /healthz /metrics /api mounted
  WebSocket upgrade: /ws -> 101, another path -> 404, no known subprotocol -> 400, a foreign Origin -> 403
"""

import json
import socket
import time

import pytest

import wsclient
from wsclient import HandshakeRefused, WebSocket

HOST = "127.0.0.1"


def http(port, method, path, body=None, headers=None, timeout=5.0, raw=None):
    """One HTTP/1.1 request on a fresh connection; returns (status, headers, body bytes). Reads until the
    response's Content-Length is complete or the server closes."""
    if raw is None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body is not None:
            if isinstance(body, str):
                body = body.encode()
            lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(raw)
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                n = hdrs.get("content-length")
                if n is not None and len(rest) >= int(n):
                    return int(lines[0].split()[1]), hdrs, rest[:int(n)]
            if time.monotonic() > deadline:
                raise AssertionError(f"no complete HTTP response within {timeout}s: {buf[:300]!r}")
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                if b"\r\n\r\n" not in buf:
                    raise AssertionError(f"connection closed before a response: {buf!r}")
                head, _, rest = buf.partition(b"\r\n\r\n")
                return int(head.split()[1]), {}, rest
            buf += data


def dev_login_server(server_factory, **kw):
    return server_factory({"auth.dev_login": True, **kw})


# ---- GET routes -----------------------------------------------------------------------------------


def test_get_routes(server_factory):
    srv = server_factory()
    st, hdrs, body = http(srv.port, "GET", "/healthz")
    assert (st, body) == (200, b"ok\n")
    st, hdrs, body = http(srv.port, "GET", "/healthz?probe=1")
    assert (st, body) == (200, b"ok\n")
    st, hdrs, body = http(srv.port, "GET", "/metrics")
    assert st == 200 and hdrs["content-type"].startswith("text/plain; version=0.0.4")
    assert b"parley_" in body
    st, _, body = http(srv.port, "GET", "/no/such/thing")
    assert (st, body) == (404, b"not found\n")
    st, _, _ = http(srv.port, "PUT", "/healthz", body="x")
    assert st == 405
    assert srv.alive()


# ---- the development login ------------------------------------------------------------------------


def test_dev_login_issues_a_token_the_server_accepts(server_factory):
    srv = dev_login_server(server_factory)
    st, hdrs, body = http(srv.port, "POST", "/api/dev/login", body='{"name":"ann"}')
    assert st == 200, body
    assert hdrs["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["user"]["name"] == "ann" and doc["token"]
    c = srv.client(hello=False)
    r = c.hello(token=doc["token"])
    assert "ok" in r, r
    # many in a row: every request's state is freed once (ASan)
    for i in range(5):
        st, _, body = http(srv.port, "POST", "/api/dev/login", body=json.dumps({"name": f"u{i}"}))
        assert st == 200, body


@pytest.mark.parametrize("body", ["", "not json", '{"nom":"x"}', '{"name":""}', "[1,2]"],
                         ids=["empty", "not-json", "no-name", "empty-name", "array"])
def test_dev_login_bad_body_is_400(server_factory, body):
    srv = dev_login_server(server_factory)
    st, hdrs, text = http(srv.port, "POST", "/api/dev/login", body=body)
    assert st == 400, text
    assert "error" in json.loads(text)
    assert srv.alive()


def test_dev_login_oversized_body_is_413(server_factory):
    srv = dev_login_server(server_factory)
    big = json.dumps({"name": "x", "pad": "p" * 5000})
    st, _, text = http(srv.port, "POST", "/api/dev/login", body=big)
    assert st == 413, text
    assert json.loads(text) == {"error": "body too large"}
    # the server still answers afterwards
    assert http(srv.port, "POST", "/api/dev/login", body='{"name":"bob"}')[0] == 200


def test_dev_login_is_404_when_off(server_factory):
    srv = server_factory()
    st, _, _ = http(srv.port, "POST", "/api/dev/login", body='{"name":"ann"}')
    assert st == 404
    st, _, _ = http(srv.port, "POST", "/api/nothing-here", body="{}")
    assert st == 404
    st, _, _ = http(srv.port, "POST", "/api/admin/reload", body="{}", headers={"Authorization": "Bearer "})
    assert st == 404  # hooks.admin_key unset: no such endpoint


def test_admin_reload_routes(server_factory):
    srv = server_factory({"hooks.admin_key": '"k-0123456789"'})  # a string key: written quoted
    st, _, _ = http(srv.port, "POST", "/api/admin/reload", body="{}")
    assert st == 401
    st, _, _ = http(srv.port, "POST", "/api/admin/reload", headers={"Authorization": "Bearer wrong"})
    assert st == 401
    st, _, text = http(srv.port, "POST", "/api/admin/reload", body="{}",
                       headers={"Authorization": "Bearer k-0123456789"})
    assert st == 200, text
    st, _, text = http(srv.port, "POST", "/api/admin/reload",
                       headers={"Authorization": "Bearer k-0123456789"})
    assert st == 200, text


# ---- static files ---------------------------------------------------------------------------------


def test_static_files_and_mounted_routes(server_factory, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>parley</title>\n")
    (root / "app.mjs").write_text("export const x = 1;\n")
    srv = server_factory({"server.web_root": str(root), "auth.dev_login": True})
    st, hdrs, body = http(srv.port, "GET", "/")
    assert st == 200 and b"<title>parley</title>" in body
    assert hdrs["content-type"].startswith("text/html")
    st, hdrs, body = http(srv.port, "GET", "/app.mjs")
    assert st == 200 and body == b"export const x = 1;\n"
    assert hdrs["content-type"].startswith("text/javascript")
    st, _, _ = http(srv.port, "GET", "/missing.js")
    assert st == 404
    # the callback routes are mounted in front of the files
    assert http(srv.port, "GET", "/healthz")[:3:2] == (200, b"ok\n")
    assert http(srv.port, "GET", "/metrics")[0] == 200
    assert http(srv.port, "POST", "/api/dev/login", body='{"name":"cat"}')[0] == 200
    assert http(srv.port, "POST", "/api/dev/login", body="x" * 5000)[0] == 413
    assert http(srv.port, "GET", "/api/nothing")[0] == 404


# ---- WebSocket upgrades ---------------------------------------------------------------------------


def upgrade_status(port, path="/ws", subprotocols=("parley.v1.json",), headers=None):
    try:
        ws = WebSocket(port, path=path, subprotocols=list(subprotocols), extra_headers=headers)
    except HandshakeRefused as e:
        return e.status
    ws.close()
    return 101


def test_upgrade_routes(server_factory):
    srv = server_factory({"server.origins": "https://chat.example.com"})
    assert upgrade_status(srv.port) == 101
    assert upgrade_status(srv.port, path="/elsewhere") == 404
    assert upgrade_status(srv.port, subprotocols=()) == 400
    assert upgrade_status(srv.port, subprotocols=("chat",)) == 400
    assert upgrade_status(srv.port, headers={"Origin": "https://evil.example.net"}) == 403
    assert upgrade_status(srv.port, headers={"Origin": "https://chat.example.com"}) == 101


# ---- long Origin headers --------------------------------------------------------------------------

LONG_ALLOWED = "https://" + "a" * 300 + ".example.com"


@pytest.mark.parametrize("n", [250, 256, 257, 1000, 3000])
def test_long_foreign_origin_is_refused(server_factory, n):
    srv = server_factory({"server.origins": "https://chat.example.com"})
    evil = "https://" + "a" * (n - len("https://.evil.com")) + ".evil.com"
    assert len(evil) == n
    assert upgrade_status(srv.port, headers={"Origin": evil}) == 403


def test_long_allowed_origin_is_compared_in_full(server_factory):
    srv = server_factory({"server.origins": '"https://chat.example.com, ' + LONG_ALLOWED + '"'})
    assert upgrade_status(srv.port, headers={"Origin": LONG_ALLOWED}) == 101
    # the same but one byte longer or shorter, or differing only at the end: refused
    assert upgrade_status(srv.port, headers={"Origin": LONG_ALLOWED + "m"}) == 403
    assert upgrade_status(srv.port, headers={"Origin": LONG_ALLOWED[:-1]}) == 403
    assert upgrade_status(srv.port, headers={"Origin": LONG_ALLOWED[:-1] + "n"}) == 403
    assert upgrade_status(srv.port, headers={"Origin": "https://chat.example.com"}) == 101
