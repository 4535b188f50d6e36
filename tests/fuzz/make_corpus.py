#!/usr/bin/env python3
"""Write the seed corpus of the fuzz harnesses (tests/fuzz/corpus/<harness>/), from docs/protocol.md's
request shapes, conf.d/ and tokens signed with the test keys in tests/fuzz/keys/, and the dictionaries
(tests/fuzz/<harness>.dict). The files are committed; run this again (from anywhere) after changing it.
Files named regress-* (inputs that once found a bug) are left alone. Needs only python3 and the openssl command."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def mp(v):
    """MessagePack of a JSON-like value (the subset the protocol uses)."""
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xA0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def js(v):
    return json.dumps(v, separators=(",", ":")).encode()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(header, payload, key):
    """A JWS compact token; key: a bytes secret (HS256/HS512 by header) or a PEM path (RS256/ES256)."""
    signing = b64(js(header)) + "." + b64(js(payload))
    alg = header["alg"]
    if alg.startswith("HS"):
        sig = hmac.new(key, signing.encode(), hashlib.sha512 if alg == "HS512" else hashlib.sha256).digest()
    else:
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing.encode(),
                             capture_output=True, check=True).stdout
        if alg == "ES256":  # DER SEQUENCE { INTEGER r, INTEGER s } -> raw r || s
            def integer(b, i):
                n = b[i + 1]
                return int.from_bytes(b[i + 2:i + 2 + n], "big"), i + 2 + n
            r, i = integer(sig, 2)
            s, _ = integer(sig, i)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing + "." + b64(sig)


def write(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


REQUESTS = {
    "hello": {"id": 1, "op": "hello", "token": "eyJhbGciOiJIUzI1NiJ9.e30.x", "client": "web/1.0"},
    "join": {"id": 2, "op": "join", "room": "lobby", "since": 39},
    "leave": {"id": 3, "op": "leave", "room": "lobby", "forget": True},
    "send": {"id": 4, "op": "send", "room": "lobby", "body": {"text": "hello", "n": [1, 2.5, -3, None]},
             "cmid": "7f1c2a"},
    "history": {"id": "h5", "op": "history", "room": "lobby", "before": 41, "limit": 2},
    "typing": {"id": 6, "op": "typing", "room": "lobby", "active": True},
    "presence": {"id": 7, "op": "presence", "room": "lobby", "users": ["u1", "u2"]},
    "rooms": {"id": 8, "op": "rooms"},
    "read": {"id": 9, "op": "read", "room": "lobby", "seq": 42},
    "refresh": {"id": 10, "op": "refresh", "token": "eyJhbGciOiJIUzI1NiJ9.e30.x"},
    "ping": {"id": 11, "op": "ping"},
}


def codec_corpus():
    for op, req in REQUESTS.items():
        write("codec", op + ".json", js(req))
    for op in ("send", "join", "hello"):
        write("codec", op + ".msgpack", mp(REQUESTS[op]))
    write("codec", "send-escapes.json",
          '{ "id" : "x", "op":"send","room":"r:x@y.z-_","cmid":"c",'
          '"body":"\\u00e9\\ud83d\\ude00\\/\\"\\\\\\n\\u0000 \xc3\xa9", "extra": [1e2, -0.0, 1E-400] }')
    write("codec", "event.json", js({"ev": "message", "room": "lobby", "seq": 42, "mid": "00000191b3c1a2f40001",
                                     "ts": 1732860000123, "from": {"id": "u1", "name": "Ann"}, "body": "hi"}))
    write("codec", "error.msgpack", mp({"re": 3, "err": {"code": "bad_request", "msg": "missing field 'room'"}}))


def config_corpus():
    shutil.copy(os.path.join(ROOT, "conf.d", "00-defaults.conf"), os.path.join(OUT, "config", "00-defaults.conf"))
    write("config", "values.conf", """\ufeff# sizes, durations, rates, quoting
server.port = 9000
log.level = debug
limits.max_frame = 64KiB
limits.out_queue_bytes = 1m
limits.idle_timeout = 90s   # comment
limits.hello_timeout = 500ms
session.resume_ttl = 2m
rate.send = 20/s burst 40
rate.join = off
auth.jwt_secret = "a \\"quoted\\" \\\\ secret\\twith\\nescapes"
server.origins = "https://a.example,https://b.example"
store.sqlite.synchronous = full
""")
    write("config", "sections.conf", """rooms.team-*.history = false
rooms.dm:*.access = private
rooms.logs-?.max_age = 7d
rooms.logs-?.max_count = 1000
auth.keys.k1.alg = RS256
auth.keys.k1.public_key = keys/k1.pem
auth.keys.hs.alg = HS512
auth.keys.hs.secret = "s3"
auth.default_kid = hs
scripts.moderation.path = scripts/moderation/moderation.lua
scripts.moderation.priority = 10
scripts.moderation.words = "spam,eggs"
plugins.msgpolicy.path = "plugins/msgpolicy.so"
plugins.msgpolicy.max_links = 3
hooks.message.fail = closed
""")
    write("config", "errors.conf", "server.port = 70000\nnot.a.key = 1\n")


SECRETS = {None: b"fuzz-default-secret", "hs": b"fuzz-hs256-secret", "hs5": b"fuzz-hs512-secret"}
KEYS = os.path.join(HERE, "keys")


def jwt_corpus():
    now = 1800000000
    claims = {"sub": "ann", "name": "Ann", "iat": now - 10, "exp": now + 3600, "rooms": ["team-*:rw", "lobby:r"]}
    toks = {
        "default": token({"alg": "HS256", "typ": "JWT"}, claims, SECRETS[None]),
        "hs": token({"alg": "HS256", "kid": "hs"}, dict(claims, aud="parley"), SECRETS["hs"]),
        "hs5": token({"alg": "HS512", "kid": "hs5"}, dict(claims, rooms={"dm:*": "rw"}), SECRETS["hs5"]),
        "rs": token({"alg": "RS256", "kid": "rs"}, dict(claims, iss="https://issuer.example"),
                    os.path.join(KEYS, "rsa.pem")),
        "es": token({"alg": "ES256", "kid": "es"}, claims, os.path.join(KEYS, "ec.pem")),
        "expired": token({"alg": "HS256"}, dict(claims, exp=now - 100), SECRETS[None]),
        "none": b64(js({"alg": "none"})) + "." + b64(js(claims)) + ".",
        "confusion": token({"alg": "HS256", "kid": "rs"}, claims, open(os.path.join(KEYS, "rsa.pub.pem"), "rb").read()),
    }
    # the first byte: 0 mod 4 (verify), 4: leeway, 8: audience "parley" required, 16: issuer required
    sel = {"hs": "\x0c", "rs": "\x14", "expired": "\x1c"}
    for name, tok in toks.items():
        write("jwt", "verify-" + name, sel.get(name, "\x04") + tok)
    # mint mode: selector 3 mod 4, key index, byte to flip, then sub \0 name \0 rooms \0 extra
    write("jwt", "mint-hs", b"\x03\x01\x05ann\x00Ann\x00team-*:rw,lobby:r\x00")
    write("jwt", "mint-rs", b"\x03\x0b\x2abob\x00\x00lobby:r\x00{\"aud\":\"parley\"}")
    write("jwt", "mint-es", b"\x03\x14\x07carol\x00Carol")


def ws_corpus():
    sep = b"\xc1"

    def rec(slot, kind, payload):
        return bytes([slot | kind << 2]) + (payload if isinstance(payload, bytes) else js(payload))

    def seq(*records):
        return sep.join(records)

    hello = lambda i, **kw: dict({"id": i, "op": "hello"}, **kw)
    tok = token({"alg": "HS256"}, {"sub": "ann", "name": "Ann", "rooms": ["private-*:rw", "members-*:rw"]},
                b"fuzz-ws-secret")
    write("ws", "chat", seq(rec(0, 0, hello(1)), rec(1, 0, hello(1)), rec(2, 0, mp(hello(1))),
                            rec(0, 0, {"id": 2, "op": "join", "room": "lobby"}),
                            rec(1, 0, {"id": 2, "op": "join", "room": "lobby", "since": 0}),
                            rec(2, 0, mp({"id": 2, "op": "join", "room": "lobby"})),
                            rec(0, 0, REQUESTS["send"]), rec(2, 0, mp(REQUESTS["send"])),
                            rec(1, 0, REQUESTS["typing"]), rec(0, 0, REQUESTS["history"]),
                            rec(1, 0, REQUESTS["presence"]), rec(2, 0, mp(REQUESTS["rooms"])),
                            rec(1, 0, REQUESTS["read"]), rec(0, 0, REQUESTS["leave"])))
    write("ws", "token", seq(rec(0, 0, hello(1, token=tok)), rec(0, 0, {"id": 2, "op": "join", "room": "private-x"}),
                             rec(1, 0, hello(1)), rec(1, 0, {"id": 2, "op": "join", "room": "private-x"}),
                             rec(0, 0, {"id": 3, "op": "refresh", "token": tok}),
                             rec(0, 0, {"id": 4, "op": "send", "room": "private-x", "body": "s", "cmid": "c1"}),
                             rec(0, 0, {"id": 5, "op": "send", "room": "private-x", "body": "s", "cmid": "c1"})))
    write("ws", "resume", seq(rec(0, 0, hello(1, client="web")), rec(0, 0, {"id": 2, "op": "join", "room": "r"}),
                              rec(0, 9, b""), rec(0, 0, hello(1, resume="s1")), rec(0, 11, b"\x10"),
                              rec(0, 0, {"id": 3, "op": "join", "room": "r", "since": 1}), rec(0, 64 >> 2 | 9, b"")))
    write("ws", "host", seq(rec(0, 0, hello(1)), rec(0, 0, {"id": 2, "op": "join", "room": "lobby"}),
                            rec(0, 12, b'lobby {"text":"from the server"}'), rec(0, 10, b""),
                            rec(0, 13, b"guest-1"), rec(1, 0, hello(1)), rec(1, 14, b"")))
    write("ws", "errors", seq(rec(0, 0, b"{"), rec(0, 8, b"{}"), rec(2, 0, b"\x81\xa2id"),
                              rec(0, 0, {"id": 1, "op": "send", "room": "lobby", "body": 1, "cmid": "c"}),
                              rec(0, 0, {"id": 1, "op": "nope"}), rec(0, 0, hello(1)), rec(0, 0, hello(2)),
                              rec(0, 0, {"id": 3, "op": "join", "room": "ro-news"}),
                              rec(0, 0, {"id": 4, "op": "send", "room": "ro-news", "body": 1, "cmid": "c"})))


def dicts():
    words = set()
    for req in REQUESTS.values():
        for k, v in req.items():
            words.add(k)
            if isinstance(v, str):
                words.add(v)
    words |= {"ev", "re", "ok", "err", "true", "false", "null", "\\u0000", "\\ud83d\\ude00", "1e400", "-0"}
    lines = sorted('"%s"' % json.dumps(w)[1:-1].replace('"', '\\"') for w in words)
    text = "# tokens of the protocol (docs/protocol.md)\n" + "\n".join(lines) + "\n"
    for h in ("codec", "ws"):
        with open(os.path.join(HERE, h + ".dict"), "w") as f:
            f.write(text)
    keys = subprocess.run(["grep", "-oE", "^\\| `[a-z0-9_.<>*]+`", os.path.join(ROOT, "docs", "configuration.md")],
                          capture_output=True, text=True).stdout.split()
    keys = sorted({k.strip("`") for k in keys if k != "|"})
    extra = ["rooms.", "auth.keys.", "scripts.", "plugins.", ".alg", ".path", ".priority", ".access", " = ",
             "true", "off", "KiB", "MiB", "ms", "burst", "/s", "\\\"", "#"]
    with open(os.path.join(HERE, "config.dict"), "w") as f:
        f.write("# keys of docs/configuration.md and value syntax (src/config.h)\n")
        f.write("\n".join('"%s"' % w.replace("\\", "\\\\").replace('"', '\\"') for w in keys + extra) + "\n")
    with open(os.path.join(HERE, "jwt.dict"), "w") as f:
        f.write("# JWT header and claim names (src/auth/jwt.h)\n")
        for w in ["eyJ", "alg", "kid", "typ", "crit", "sub", "name", "exp", "nbf", "iat", "aud", "iss", "rooms",
                  "HS256", "HS512", "RS256", "ES256", "none", "hs", "hs5", "rs", "es", ":rw", "*"]:
            f.write('"%s"\n' % w)
        for h in ({"alg": "HS256"}, {"alg": "RS256", "kid": "rs"}, {"alg": "none"}, {"sub": "ann"}):
            f.write('"%s"\n' % b64(js(h)))


if __name__ == "__main__":
    for h in ("codec", "config", "jwt", "ws"):  # regress-*: inputs that found bugs, kept by hand
        d = os.path.join(OUT, h)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if not f.startswith("regress-"):
                os.remove(os.path.join(d, f))
    codec_corpus()
    config_corpus()
    jwt_corpus()
    ws_corpus()
    dicts()
    print(sum(len(fs) for _, _, fs in os.walk(OUT)), "seed files in", OUT)
