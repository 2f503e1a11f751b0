"""KIS ``/oauth2/tokenP``, ``/oauth2/revokeP``, ``/oauth2/Approval`` and ``/uapi/hashkey``.

Token rules (kis_kiwoom.md §1.2.1, §1.7): an HS512 JWT whose ``jti`` is the app key, valid 24 h;
asking again within 6 h returns the same token with its original ``access_token_token_expired``;
one answer a minute per app key, otherwise HTTP 403 ``EGW00133``; bad key or secret HTTP 403
``EGW00103``/``EGW00105``. Token errors use the OAuth-style body (``error_code`` /
``error_description``), not the ``rt_cd`` envelope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any, Final

from flask import Blueprint, Response, jsonify, request

from simulators.control import IssuedToken, mark_refused
from simulators.kis.protocol import KisContext, body
from simulators.krx import KST

__all__ = ["TOKEN_LIFETIME", "TOKEN_REUSE_WINDOW", "TOKEN_WINDOW", "create_oauth_blueprint"]

TOKEN_LIFETIME: Final = timedelta(days=1)
TOKEN_REUSE_WINDOW: Final = timedelta(hours=6)
TOKEN_WINDOW: Final = timedelta(minutes=1)

_EXPIRY_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


def _oauth_error(code: str, description: str, status: int = 403) -> tuple[Response, int]:
    app_key = body().get("appkey")
    mark_refused(
        "rate" if code == "EGW00133" else "auth",
        code,
        app_key=str(app_key) if app_key else None,
    )
    return jsonify({"error_description": description, "error_code": code}), status


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(ctx: KisContext, app_key: str, iat: int) -> str:
    """Build an HS512 JWT shaped like KIS's (``iss`` unogw, ``jti`` = app key, 24 h)."""
    header = {"typ": "JWT", "alg": "HS512"}
    aud = uuid.UUID(
        bytes=hashlib.blake2b(
            f"{ctx.state.seed}|aud|{app_key}|{iat}".encode(), digest_size=16
        ).digest(),
        version=4,
    )
    payload = {
        "sub": "token",
        "aud": str(aud),
        "prdt_cd": "",
        "iss": "unogw",
        "exp": iat + int(TOKEN_LIFETIME.total_seconds()),
        "iat": iat,
        "jti": app_key,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
    )
    key = hashlib.sha512(f"kis-simulator|{ctx.state.seed}".encode()).digest()
    signature = hmac.new(key, signing_input.encode(), hashlib.sha512).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _token_body(ctx: KisContext, issued: IssuedToken, *, reused: bool) -> dict[str, Any]:
    now = ctx.state.clock.now()
    full = int(TOKEN_LIFETIME.total_seconds())
    expires_in = issued.expires_in(now) if reused and ctx.reuse_expires_in == "remaining" else full
    return {
        "access_token": issued.token,
        "access_token_token_expired": issued.expires_at.astimezone(KST).strftime(_EXPIRY_FORMAT),
        "token_type": "Bearer",
        "expires_in": expires_in,
    }


def create_oauth_blueprint(ctx: KisContext) -> Blueprint:
    """Return the OAuth and hashkey routes bound to ``ctx``."""
    bp = Blueprint("kis_oauth", __name__)
    state = ctx.state

    @bp.post("/oauth2/tokenP")
    def token_p() -> Any:
        data = body()
        app_key = str(data.get("appkey") or "")
        grant = data.get("grant_type")
        if not grant:
            state.tokens.record_refusal(app_key or None, "grant_type missing")
            return _oauth_error("EGW00115", "grant_type은 필수입니다.")
        if grant != "client_credentials":
            state.tokens.record_refusal(app_key or None, "grant_type unsupported")
            return _oauth_error("EGW00116", "지원하지 않는 grant_type입니다.")
        if not app_key:
            state.tokens.record_refusal(None, "appkey missing")
            return _oauth_error("EGW00102", "AppKey는 필수입니다.")
        credential = ctx.credentials.get(app_key)
        if credential is None:
            state.tokens.record_refusal(app_key, "bad appkey")
            return _oauth_error("EGW00103", "유효하지 않은 AppKey입니다.")
        secret = data.get("appsecret")
        if not secret:
            state.tokens.record_refusal(app_key, "appsecret missing")
            return _oauth_error("EGW00104", "AppSecret은 필수입니다.")
        if secret != credential.app_secret:
            state.tokens.record_refusal(app_key, "bad appsecret")
            return _oauth_error("EGW00105", "유효하지 않은 AppSecret입니다.")
        refusal = state.take_token_refusal(request.path)
        if refusal is not None:
            state.tokens.record_refusal(app_key, "fault")
            code = (refusal.body or {}).get("error_code", "EGW00133")
            mark_refused("rate", code, app_key=app_key)
            default = {
                "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
                "error_code": "EGW00133",
            }
            return jsonify(refusal.body or default), refusal.status or 403
        with ctx.lock:
            now = state.clock.now()
            last = ctx.last_token_answer.get(app_key)
            window = timedelta(seconds=ctx.token_window_seconds)
            if last is not None and now - last < window:
                state.tokens.record_refusal(app_key, "one a minute")
                return _oauth_error("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
            latest = state.tokens.latest(app_key)
            if latest is not None and now - latest.issued_at < TOKEN_REUSE_WINDOW:
                state.tokens.record_reuse(latest, path=request.path)
                # A re-served token starts the one-a-minute window too (the default switch).
                if ctx.token_window_counts == "requests":  # noqa: S105 - a mode, not a secret
                    ctx.last_token_answer[app_key] = now
                return jsonify(_token_body(ctx, latest, reused=True))
            iat = int(now.timestamp())
            issued = state.tokens.issue(
                app_key,
                TOKEN_LIFETIME,
                token=make_jwt(ctx, app_key, iat),
                account_id=credential.account_id,
                path=request.path,
            )
            ctx.last_token_answer[app_key] = now
        return jsonify(_token_body(ctx, issued, reused=False))

    @bp.post("/oauth2/revokeP")
    def revoke_p() -> Any:
        data = body()
        app_key = str(data.get("appkey") or "")
        credential = ctx.credentials.get(app_key)
        if credential is None:
            return _oauth_error("EGW00103", "유효하지 않은 AppKey입니다.")
        if data.get("appsecret") != credential.app_secret:
            return _oauth_error("EGW00105", "유효하지 않은 AppSecret입니다.")
        token = str(data.get("token") or "")
        issued = state.tokens.lookup(token)
        if issued is None or issued.app_key != app_key:
            return _oauth_error("EGW00121", "유효하지 않은 token 입니다.")
        state.tokens.revoke(token, reason="revokeP")
        return jsonify({"code": 200, "message": "접근토큰 폐기에 성공하였습니다"})

    @bp.post("/oauth2/Approval")
    def approval() -> Any:
        data = body()
        app_key = str(data.get("appkey") or "")
        credential = ctx.credentials.get(app_key)
        if credential is None:
            return _oauth_error("EGW00103", "유효하지 않은 AppKey입니다.")
        # The websocket approval takes the secret as "secretkey", not "appsecret".
        if data.get("secretkey") != credential.app_secret:
            return _oauth_error("EGW00105", "유효하지 않은 AppSecret입니다.")
        digest = hashlib.sha256(f"{state.seed}|approval|{app_key}".encode()).hexdigest()
        key = str(uuid.UUID(hex=digest[:32]))
        return jsonify({"approval_key": key})

    @bp.post("/uapi/hashkey")
    def hashkey() -> Any:
        app_key = request.headers.get("appkey", "")
        credential = ctx.credentials.get(app_key)
        if credential is None:
            return jsonify(
                {"rt_cd": "1", "msg_cd": "EGW00103", "msg1": "유효하지 않은 AppKey입니다."}
            ), 500
        if request.headers.get("appsecret") != credential.app_secret:
            return jsonify(
                {"rt_cd": "1", "msg_cd": "EGW00105", "msg1": "유효하지 않은 AppSecret입니다."}
            ), 500
        raw = request.get_data()
        data = body()
        digest = hashlib.sha256(raw).hexdigest()
        return jsonify({"JsonBody": data, "HASH": digest})

    return bp
