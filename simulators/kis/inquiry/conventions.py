"""What the KIS inquiries share: admission, continued queries, messages and rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import Response, jsonify, request

from simulators.kis.protocol import (
    Credential,
    KisContext,
    KisReject,
    arg,
    authenticate,
    pad100,
    require_tr,
)

__all__ = ["account_inquiry", "done_message", "page", "page_message", "paged", "rate"]


def rate(numerator: Decimal, denominator: Decimal, places: str = "0.01") -> str:
    """A percentage ``numerator / denominator × 100`` at ``places`` ("0.00…" when undefined)."""
    if not denominator:
        return str(Decimal(0).quantize(Decimal(places)))
    return str((numerator * 100 / denominator).quantize(Decimal(places), rounding=ROUND_HALF_UP))


def account_inquiry(ctx: KisContext, tr_ids: Mapping[str, str]) -> Credential:
    """Admit an inquiry about the caller's account; return the caller's credential.

    Checks the token and keys, the ``tr_id`` against ``tr_ids``, then that the ``CANO``/
    ``ACNT_PRDT_CD`` query parameters name the caller's own account.

    Raises:
        KisGatewayError: a bad token, keys or tr_id, or over the rate limit (see
            :func:`~simulators.kis.protocol.authenticate` and ``require_tr``).
        KisReject: OPSQ2000 when the query names another account.
    """
    credential = authenticate(ctx)
    require_tr(ctx, tr_ids)
    if arg("CANO") != credential.account_number or arg("ACNT_PRDT_CD") != credential.product_code:
        raise KisReject("account")
    return credential


def page(
    ctx: KisContext, rows: Sequence[Any], size: int, filters: str
) -> tuple[Sequence[Any], dict[str, str], str]:
    """Cut one page; return (rows, cursor fields, tr_cont letter)."""
    continued = request.headers.get("tr_cont", "").strip().upper() == "N"
    cursor = arg("CTX_AREA_NK100").strip()
    start = int(cursor) if continued and cursor.isdigit() else 0
    chunk = rows[start : start + size]
    more = start + size < len(rows)
    # F first page with more, M middle, E last page of a continued query, D single page.
    letter = ("M" if start else "F") if more else ("E" if start else "D")
    cursors = {
        "ctx_area_fk100": pad100(filters),
        "ctx_area_nk100": pad100(str(start + size) if more else ""),
    }
    return chunk, cursors, letter


def paged(payload: dict[str, Any], letter: str) -> Response:
    """Answer ``payload`` with the page's ``tr_cont`` letter in the response header."""
    response = jsonify(payload)
    response.headers["tr_cont"] = letter
    return response


def done_message(ctx: KisContext) -> tuple[str, str]:
    """The (msg_cd, msg1) of a completed inquiry, on the real or the paper host."""
    return ctx.success_code(
        ("KIOK0510", "조회가 완료되었습니다"), ("20310000", "모의투자 조회가 완료되었습니다.")
    )


def page_message(ctx: KisContext, letter: str) -> tuple[str, str]:
    """The (msg_cd, msg1) of a page: completed on the last page, "continues" before it."""
    return done_message(ctx) if letter in {"D", "E"} else ("KIOK0490", "조회가 계속됩니다")
