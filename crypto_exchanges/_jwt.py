"""A small HS256/HS512 JWT signer and the Upbit-style ``query_hash`` payload.

Upbit and Bithumb 2.0 only need to *sign* HMAC JWTs, never to verify them, so a dozen lines of
``hmac`` + ``base64`` replace a dependency (tests verify the tokens with ``authlib.jose``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["encode_hs_jwt", "query_hash"]

_DIGESTS = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_hs_jwt(payload: Mapping[str, Any], secret: str, *, algorithm: str = "HS256") -> str:
    """Return a compact JWS of ``payload`` signed with HMAC ``algorithm`` under ``secret``.

    Raises:
        ValueError: for an algorithm other than HS256 or HS512.
    """
    digest = _DIGESTS.get(algorithm)
    if digest is None:
        raise ValueError(f"unsupported JWT algorithm {algorithm!r}")
    header = {"alg": algorithm, "typ": "JWT"}
    segments = [
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(dict(payload), separators=(",", ":")).encode()),
    ]
    signing_input = ".".join(segments).encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, digest).digest()
    return ".".join([*segments, _b64url(signature)])


def query_hash(query_string: str) -> str:
    """Return the hex SHA-512 of ``query_string`` (Upbit/Bithumb ``query_hash``)."""
    return hashlib.sha512(query_string.encode("utf-8")).hexdigest()
