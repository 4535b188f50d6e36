"""Mint HS256 JWTs for tests (stdlib only: hmac + base64url + json)."""

import base64
import hashlib
import hmac
import json
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(secret, sub=None, name=None, exp=None, nbf=None, header=None, alg="HS256", **claims):
    """A JWT signed with HMAC-SHA256 under `secret`. exp/nbf are absolute epoch seconds (ints); pass
    exp_in=/nbf_in= (seconds from now) as claims for relative times. `header` overrides the JOSE header."""
    now = int(time.time())
    if "exp_in" in claims:
        exp = now + claims.pop("exp_in")
    if "nbf_in" in claims:
        nbf = now + claims.pop("nbf_in")
    payload = {}
    if sub is not None:
        payload["sub"] = sub
    if name is not None:
        payload["name"] = name
    if exp is not None:
        payload["exp"] = exp
    if nbf is not None:
        payload["nbf"] = nbf
    payload.update(claims)
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = (b64url(json.dumps(hdr, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(payload, separators=(",", ":")).encode()))
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def tamper_signature(token):
    """The same token with its signature changed (still valid base64url)."""
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"
