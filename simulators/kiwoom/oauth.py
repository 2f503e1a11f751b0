"""Kiwoom ``au10001`` ``POST /oauth2/token`` and ``au10002`` ``POST /oauth2/revoke`` (§2.2).

Neither requires ``api-id`` or ``authorization`` (the official client sends neither).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from simulators.kiwoom.protocol import KiwoomContext, KiwoomError, body
from simulators.krx import KST

__all__ = ["create_oauth_blueprint"]


def _error(exc: KiwoomError) -> tuple[Response, int]:
    return jsonify({"return_code": exc.return_code, "return_msg": exc.return_msg}), exc.status


def create_oauth_blueprint(ctx: KiwoomContext) -> Blueprint:
    """Return the token routes bound to ``ctx``."""
    bp = Blueprint("kiwoom_oauth", __name__)
    state = ctx.state

    def check_keys(data: dict[str, Any]) -> str:
        app_key, secret = data.get("appkey"), data.get("secretkey")
        if not app_key or not secret:
            state.tokens.record_refusal(app_key or None, "appkey or secretkey missing")
            raise ctx.error(8020)
        credential = ctx.credentials.get(str(app_key))
        if credential is None or credential.secret_key != secret:
            state.tokens.record_refusal(str(app_key), "bad appkey or secretkey")
            raise ctx.error(8001)
        return str(app_key)

    @bp.post("/oauth2/token")
    def token() -> Any:
        data = body()
        try:
            grant = data.get("grant_type")
            if not grant:
                raise ctx.error(8011)
            if grant != "client_credentials":
                raise ctx.error(8012)
            app_key = check_keys(data)
        except KiwoomError as exc:
            return _error(exc)
        refusal = state.take_token_refusal(request.path)
        if refusal is not None:
            state.tokens.record_refusal(app_key, "fault")
            exc = ctx.error(8009)
            return jsonify(
                refusal.body or {"return_code": exc.return_code, "return_msg": exc.return_msg}
            ), refusal.status or 200
        credential = ctx.credentials[app_key]
        with ctx.lock:
            latest = state.tokens.latest(app_key) if ctx.reuse_token else None
            if latest is not None:
                state.tokens.record_reuse(latest, path=request.path)
                issued = latest
            else:
                issued = state.tokens.issue(
                    app_key,
                    timedelta(seconds=ctx.token_lifetime_seconds),
                    token=secrets.token_urlsafe(64),
                    account_id=credential.account_id,
                    path=request.path,
                )
        return jsonify(
            {
                "expires_dt": issued.expires_at.astimezone(KST).strftime("%Y%m%d%H%M%S"),
                "token_type": "bearer",
                "token": issued.token,
                "return_code": 0,
                "return_msg": "정상적으로 처리되었습니다",
            }
        )

    @bp.post("/oauth2/revoke")
    def revoke() -> Any:
        data = body()
        try:
            app_key = check_keys(data)
            token_value = data.get("token")
            if not token_value:
                raise ctx.error(8016)
            issued = state.tokens.lookup(str(token_value))
            if issued is None or issued.app_key != app_key:
                raise ctx.error(8015)
        except KiwoomError as exc:
            return _error(exc)
        state.tokens.revoke(str(token_value), reason="au10002")
        return jsonify({"return_code": 0, "return_msg": "정상적으로 처리되었습니다"})

    return bp
