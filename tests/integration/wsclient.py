"""A small, raw WebSocket client for Parley's integration tests.

Built on the stdlib `socket` module only, so that tests can do everything a well-behaved client does and
everything a badly-behaved one might: choose (or omit) the subprotocol, send fragmented, oversized or
invalid frames, stop reading, and read close frames with their code and reason. Every read has a timeout
(default 5 s): a test never hangs.

Two layers:
  * WebSocket  -- frames (RFC 6455): handshake, send_frame/send_text/send_binary/send_fragmented/send_raw,
                  recv_message (answers pings, reassembles fragments), expect_close.
  * Client     -- Parley protocol v1 on top (docs/protocol.md), JSON or MessagePack: request(op, **fields),
                  next_event(ev), hello/join/leave/send/ping.
"""

import base64
import collections
import hashlib
import http.client
import itertools
import json
import os
import socket
import struct
import threading
import time

import msgpack

DEFAULT_TIMEOUT = 5.0
HOST = "127.0.0.1"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

SUBPROTOCOLS = {"json": "parley.v1.json", "msgpack": "parley.v1.msgpack"}

_DEFAULT = object()


class WSError(Exception):
    pass


class HandshakeRefused(WSError):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status, headers, body):
        super().__init__(f"handshake refused: HTTP {status}: {body[:200]!r}")
        self.status = status
        self.headers = headers
        self.body = body


class ConnectionClosed(WSError):
    """The connection is closed: by a close frame (code, reason), or abnormally (code 1006)."""

    def __init__(self, code, reason, abnormal=False):
        super().__init__(f"connection closed: code={code} reason={reason!r}" + (" (abnormal)" if abnormal else ""))
        self.code = code
        self.reason = reason
        self.abnormal = abnormal


class Timeout(WSError):
    pass


def _mask(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload, fin=True, mask=True, rsv=0, mask_key=None, length_override=None):
    """Build one frame's bytes. length_override lets a test lie about the payload length."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length_override is None else length_override
    head = bytearray([b0])
    mbit = 0x80 if mask else 0
    if n < 126:
        head.append(mbit | n)
    elif n < 65536:
        head.append(mbit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mbit | 127)
        head += struct.pack("!Q", n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        head += key
        payload = _mask(payload, key)
    return bytes(head) + payload


class WebSocket:
    """One raw WebSocket client connection."""

    def __init__(self, port, host=HOST, path="/ws", subprotocols=(), timeout=DEFAULT_TIMEOUT, rcvbuf=None,
                 extra_headers=None, connect=True):
        self.host = host
        self.port = port
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.buf = bytearray()
        self.subprotocol = None
        self.response_headers = {}
        self.close_sent = False
        self.closed = None  # ConnectionClosed once the connection is closed
        self.pongs = []  # payloads of pongs received
        self.pings = []  # payloads of pings received (answered automatically)
        self.auto_pong = True
        if connect:
            self.connect(subprotocols, rcvbuf=rcvbuf, extra_headers=extra_headers)

    # ---- connection and handshake ------------------------------------------------------------------

    def _open_socket(self, rcvbuf):
        """The connected socket the handshake goes over (TLSWebSocket wraps it in TLS)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Must be set before connect() so the advertised window is small.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(self.timeout)
        try:
            s.connect((self.host, self.port))
        except Exception:
            s.close()
            raise
        return s

    def connect(self, subprotocols=(), rcvbuf=None, extra_headers=None):
        self.sock = self._open_socket(rcvbuf)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if isinstance(subprotocols, str):
            subprotocols = [subprotocols]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        for k, v in (extra_headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

        status, headers = self._read_http_head()
        if status != 101:
            body = self._read_http_body(headers)
            self.sock.close()
            raise HandshakeRefused(status, headers, body)
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            self.sock.close()
            raise WSError(f"bad Sec-WebSocket-Accept: {headers.get('sec-websocket-accept')!r}")
        self.response_headers = headers
        self.subprotocol = headers.get("sec-websocket-protocol")
        return self

    def _read_http_head(self):
        deadline = time.monotonic() + self.timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise WSError(f"connection closed during handshake; got {bytes(self.buf)!r}")
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return status, headers

    def _read_http_body(self, headers):
        deadline = time.monotonic() + self.timeout
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                if not self._fill(deadline):
                    break
            body = bytes(self.buf[:n])
            del self.buf[:n]
            return body.decode("utf-8", "replace")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill(deadline):
                        return out.decode("utf-8", "replace")
                line, _, rest = bytes(self.buf).partition(b"\r\n")
                self.buf = bytearray(rest)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return out.decode("utf-8", "replace")
                while len(self.buf) < size + 2:
                    if not self._fill(deadline):
                        break
                out += self.buf[:size]
                del self.buf[: size + 2]
        # No length: read until EOF (bounded by the timeout).
        try:
            while self._fill(deadline):
                pass
        except Timeout:
            pass
        body = bytes(self.buf)
        self.buf.clear()
        return body.decode("utf-8", "replace")

    # ---- low-level reading -------------------------------------------------------------------------

    def _fill(self, deadline):
        """Read more bytes into self.buf. False on EOF; raises Timeout past the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("timed out waiting for data") from None
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                self._abnormal()

    def _abnormal(self):
        self.closed = ConnectionClosed(1006, "", abnormal=True)
        raise self.closed

    def recv_frame(self, timeout=None):
        """Read one raw frame: (fin, opcode, payload). Does not interpret control frames."""
        if self.closed:
            raise self.closed
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin = bool(b0 & 0x80)
        opcode = b0 & 0xF
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        key = None
        if masked:  # servers must not mask, but be liberal in what we read
            self._need(pos + 4, deadline)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        self._need(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if key:
            payload = _mask(payload, key)
        return fin, opcode, payload

    def recv_message(self, timeout=None):
        """Next data message as (opcode, payload) with opcode OP_TEXT or OP_BINARY. Answers pings,
        records pongs, reassembles fragments. On a close frame: answers it and raises ConnectionClosed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        parts = []
        first_op = None
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == OP_PING:
                self.pings.append(payload)
                if self.auto_pong and not self.close_sent:
                    self._send_quiet(OP_PONG, payload)
                continue
            if op == OP_PONG:
                self.pongs.append(payload)
                continue
            if op == OP_CLOSE:
                code, reason = None, ""
                if len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                    reason = payload[2:].decode("utf-8", "replace")
                if code is None:
                    code = 1005
                if not self.close_sent:
                    self._send_quiet(OP_CLOSE, payload[:2])
                    self.close_sent = True
                self.closed = ConnectionClosed(code, reason)
                raise self.closed
            if op in (OP_TEXT, OP_BINARY):
                if first_op is not None:
                    raise WSError("new data frame inside a fragmented message")
                first_op = op
                parts.append(payload)
            elif op == OP_CONT:
                if first_op is None:
                    raise WSError("continuation frame without a start")
                parts.append(payload)
            else:
                raise WSError(f"unexpected opcode {op:#x}")
            if fin:
                return first_op, b"".join(parts)

    def expect_close(self, timeout=None):
        """Read (and discard) data until the connection closes. Returns (code, reason); an abnormal close
        (EOF/reset without a close frame) is (1006, "")."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self.recv_message(max(0.0, deadline - time.monotonic()))
            except ConnectionClosed as e:
                return e.code, e.reason

    # ---- sending -----------------------------------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def _send_quiet(self, opcode, payload):
        try:
            self.sock.sendall(encode_frame(opcode, payload))
        except OSError:
            pass

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.sock.sendall(encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def send_text(self, data):
        """A text frame. `data` may be bytes, which are sent as-is (e.g. invalid UTF-8)."""
        self.send_frame(OP_TEXT, data)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send_fragmented(self, opcode, payload, pieces=3):
        """Send one message as `pieces` frames (first with opcode, the rest continuations)."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        n = max(1, pieces)
        size = max(1, -(-len(payload) // n))
        chunks = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
        for i, chunk in enumerate(chunks):
            self.send_frame(opcode if i == 0 else OP_CONT, chunk, fin=(i == len(chunks) - 1))

    def ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def close(self, code=1000, reason=""):
        """Send a close frame (if not sent yet) and close the socket. Never raises."""
        if self.sock is None:
            return
        if not self.close_sent and not self.closed:
            try:
                self.sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()))
            except OSError:
                pass
            self.close_sent = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None

    def abort(self):
        """Drop the TCP connection without a close frame."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def handshake_status(port, subprotocols=(), host=HOST, path="/ws", timeout=DEFAULT_TIMEOUT):
    """Try an upgrade; return (status, headers, body). status 101 means it was accepted (then closed)."""
    try:
        ws = WebSocket(port, host=host, path=path, subprotocols=subprotocols, timeout=timeout)
    except HandshakeRefused as e:
        return e.status, e.headers, e.body
    status, headers = 101, ws.response_headers
    ws.close()
    return status, headers, ""


# ---- Parley protocol -------------------------------------------------------------------------------


class Client:
    """A Parley v1 client over the raw WebSocket, in the JSON or the MessagePack codec."""

    _ids = itertools.count(1)

    websocket_class = WebSocket  # the transport (support_auth.TLSClient: over TLS)

    def __init__(self, port, codec="json", host=HOST, subprotocol=_DEFAULT, timeout=DEFAULT_TIMEOUT,
                 rcvbuf=None, name=None):
        assert codec in SUBPROTOCOLS, codec
        self.codec = codec
        self.port = port
        self.timeout = timeout
        self.name = name or codec
        sp = SUBPROTOCOLS[codec] if subprotocol is _DEFAULT else subprotocol
        self.ws = self.websocket_class(port, host=host, subprotocols=[sp] if sp else [], timeout=timeout,
                                       rcvbuf=rcvbuf)
        self.events = collections.deque()  # buffered events (frames with "ev")
        self.replies = collections.deque()  # buffered replies (frames with "re") not yet claimed
        self.others = []  # frames that are neither (should not happen)
        self.log = []  # every decoded frame, in arrival order (set to None to keep nothing)
        self.next_id = 1
        self.user = None  # set by a successful hello()

    # ---- codec ----

    def encode(self, obj):
        if self.codec == "json":
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return msgpack.packb(obj, use_bin_type=True)

    def decode(self, opcode, payload):
        if self.codec == "json":
            assert opcode == OP_TEXT, f"JSON connection got a frame with opcode {opcode:#x}"
            return json.loads(payload.decode("utf-8"))
        assert opcode == OP_BINARY, f"MessagePack connection got a frame with opcode {opcode:#x}"
        return msgpack.unpackb(payload, raw=False)

    def send_obj(self, obj):
        """Encode obj in this connection's codec and send it in the right frame type."""
        data = self.encode(obj)
        if self.codec == "json":
            self.ws.send_text(data)
        else:
            self.ws.send_binary(data)

    def send_bytes(self, data, opcode=None):
        """Send raw bytes in a frame of this codec's type (or the given opcode)."""
        if opcode is None:
            opcode = OP_TEXT if self.codec == "json" else OP_BINARY
        self.ws.send_frame(opcode, data)

    # ---- reading ----

    def _read_one(self, deadline):
        op, payload = self.ws.recv_message(max(0.0, deadline - time.monotonic()))
        frame = self.decode(op, payload)
        if self.log is not None:
            self.log.append(frame)
        if isinstance(frame, dict) and "re" in frame:
            self.replies.append(frame)
        elif isinstance(frame, dict) and "ev" in frame:
            self.events.append(frame)
        else:
            self.others.append(frame)
        return frame

    def next_reply(self, re=_DEFAULT, timeout=None):
        """The next reply (optionally the one whose `re` equals re, compared with its type)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)

        def match(f):
            return re is _DEFAULT or (f.get("re") == re and type(f.get("re")) is type(re))

        while True:
            for f in list(self.replies):
                if match(f):
                    self.replies.remove(f)
                    return f
            try:
                self._read_one(deadline)
            except Timeout:
                raise Timeout(f"[{self.name}] no reply re={re if re is not _DEFAULT else 'any'!r} within "
                              f"{self.timeout if timeout is None else timeout}s; replies={list(self.replies)} "
                              f"events={list(self.events)}") from None

    def next_event(self, ev=None, timeout=None, room=None, **match):
        """The next event (optionally of kind ev / in room / with matching fields); other events stay
        buffered in order."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)

        def ok(f):
            if ev is not None and f.get("ev") != ev:
                return False
            if room is not None and f.get("room") != room:
                return False
            return all(f.get(k) == v for k, v in match.items())

        while True:
            for f in list(self.events):
                if ok(f):
                    self.events.remove(f)
                    return f
            try:
                self._read_one(deadline)
            except Timeout:
                raise Timeout(f"[{self.name}] no event ev={ev!r} room={room!r} {match} within "
                              f"{self.timeout if timeout is None else timeout}s; buffered events="
                              f"{list(self.events)}") from None

    def no_event(self, ev=None, timeout=0.3, room=None, **match):
        """Assert that no matching event arrives within timeout; returns None."""
        try:
            f = self.next_event(ev, timeout=timeout, room=room, **match)
        except Timeout:
            return None
        raise AssertionError(f"[{self.name}] unexpected event {f}")

    def drain(self, timeout=0.2):
        """Read everything that arrives within timeout into the buffers."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._read_one(deadline)
        except Timeout:
            pass

    def messages(self, room, count, timeout=None):
        """The next `count` message events of room, in arrival order."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return [self.next_event("message", room=room, timeout=max(0.0, deadline - time.monotonic()))
                for _ in range(count)]

    # ---- requests ----

    def request(self, op, _timeout=None, **fields):
        """Send {"id": auto, "op": op, **fields} (an explicit id= overrides) and return the matching reply.
        Events arriving meanwhile are buffered for next_event()."""
        if "id" in fields:
            rid = fields.pop("id")
        else:
            rid = self.next_id
            self.next_id += 1
        frame = {"id": rid, "op": op}
        frame.update(fields)
        self.send_obj(frame)
        return self.next_reply(re=rid, timeout=_timeout)

    def call(self, op, **fields):
        """request() that must succeed; returns the `ok` map."""
        r = self.request(op, **fields)
        assert "ok" in r, f"[{self.name}] {op} {fields} failed: {r}"
        return r["ok"]

    def hello(self, token=None, **fields):
        if token is not None:
            fields["token"] = token
        r = self.request("hello", **fields)
        if "ok" in r:
            self.user = r["ok"].get("user")
        return r

    def join(self, room, since=None, **fields):
        if since is not None:
            fields["since"] = since
        return self.request("join", room=room, **fields)

    def leave(self, room, **fields):
        return self.request("leave", room=room, **fields)

    def send(self, room, body, cmid=None, **fields):
        if cmid is None:
            cmid = f"c-{os.getpid()}-{next(Client._ids)}"
        return self.request("send", room=room, body=body, cmid=cmid, **fields)

    def ping(self):
        return self.request("ping")

    def expect_close(self, timeout=None):
        """Read until the server closes; returns (code, reason), (1006, "") if it just dropped the socket.
        Frames read meanwhile are decoded into the buffers when possible."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._read_one(deadline)
            except ConnectionClosed as e:
                return e.code, e.reason
            except (ValueError, AssertionError, msgpack.exceptions.ExtraData):
                continue

    def stop_reading(self):
        """Deliberately a no-op: a slow consumer simply does not call any reading method. (Construct the
        Client with a small rcvbuf= so the kernel buffers fill up quickly.)"""

    def close(self, code=1000):
        self.ws.close(code)

    def abort(self):
        self.ws.abort()

    @property
    def closed(self):
        return self.ws.closed


def ok(reply):
    assert isinstance(reply, dict) and "ok" in reply, f"expected an ok reply, got {reply}"
    return reply["ok"]


def err_code(reply):
    assert isinstance(reply, dict) and "err" in reply, f"expected an error reply, got {reply}"
    err = reply["err"]
    assert isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("msg"), str), \
        f"error reply must carry err.code and err.msg strings: {reply}"
    return err["code"]


# ---- HTTP --------------------------------------------------------------------------------------------


def http_get(port, path, host=HOST, timeout=DEFAULT_TIMEOUT, headers=None):
    """GET http://host:port/path; returns (status, headers-dict-lowercase, body-text)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def parse_metrics(text):
    """Prometheus text exposition -> {"name{labels}": float} (labels as written) plus {"name": float}
    for unlabelled samples."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # "name{labels} value [timestamp]" or "name value [timestamp]"
        if "}" in line:
            key, rest = line.rsplit("}", 1)
            key += "}"
            val = rest.split()[0]
        else:
            bits = line.split()
            key, val = bits[0], bits[1]
        try:
            out[key] = float(val)
        except ValueError:
            pass
    return out


class RoomReader(threading.Thread):
    """Reads `count` message events of `room` on a client in a thread of its own, so that the client never
    lags behind while the test sends. .seqs gets each event's seq; .bodies its body unless keep_bodies is
    false; check(event) may raise to stop at a bad event. An exception ends up in .error for the test."""

    def __init__(self, client, room, count, timeout=60, keep_bodies=True, check=None):
        super().__init__(daemon=True)
        self.client, self.room, self.count, self.timeout = client, room, count, timeout
        self.keep_bodies, self.check = keep_bodies, check
        self.seqs, self.bodies, self.error = [], [], None

    def run(self):
        deadline = time.monotonic() + self.timeout
        try:
            while len(self.seqs) < self.count:
                ev = self.client.next_event("message", room=self.room, timeout=max(0.0, deadline - time.monotonic()))
                if self.check:
                    self.check(ev)
                self.seqs.append(ev["seq"])
                if self.keep_bodies:
                    self.bodies.append(ev["body"])
        except Exception as e:  # reported by the test
            self.error = e
