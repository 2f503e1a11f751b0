r"""The input grammar the API, the UI and the services share: decimals, text, keys.

One definition of what a well-formed value is, so that the API's schemas, the UI's forms and the
services (the last line, for callers that skip both) refuse the same inputs with the same words.

Python is generous where the gateway must not be: ``str.isdigit()``, ``int()`` and ``Decimal()``
accept full-width (``"１０"``) and Arabic-Indic (``"١٠"``) digits, underscores (``"10_000"``),
surrounding blanks (``" 10 "``) and exponents (``"1e2"``); ``re``'s ``\d`` matches any Unicode
digit and ``$`` matches before a final newline. Every pattern here is therefore ASCII-only and
checked with ``fullmatch``.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = [
    "DECIMAL_MAX_FRACTION_DIGITS",
    "DECIMAL_MAX_INTEGER_DIGITS",
    "DECIMAL_MAX_LENGTH",
    "DECIMAL_PATTERN",
    "KEY_PATTERN",
    "SIGNED_DECIMAL_PATTERN",
    "is_ascii_digits",
    "key_problem",
    "parse_decimal",
    "text_problem",
]

#: A decimal as the API takes it: ASCII digits, optionally a point and more digits.
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
#: A decimal as the API gives it (a profit and loss may be negative).
SIGNED_DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
DECIMAL_MAX_INTEGER_DIGITS = 15
DECIMAL_MAX_FRACTION_DIGITS = 12
#: The longest decimal string: 15 digits, the point, 12 digits.
DECIMAL_MAX_LENGTH = DECIMAL_MAX_INTEGER_DIGITS + 1 + DECIMAL_MAX_FRACTION_DIGITS

#: A broker key or secret: printable ASCII without blanks (every broker issues such keys).
KEY_PATTERN = r"^[\x21-\x7e]+$"

_DECIMAL = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,12}))?", re.ASCII)
_DECIMAL_SHAPE = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_KEY = re.compile(r"[\x21-\x7e]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
# NUL and the other C0 controls, DEL, the C1 controls, and UTF-16 surrogates (a lone surrogate
# is not a character: it cannot be encoded as UTF-8, so PostgreSQL and every log would choke).
_FORBIDDEN_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_FORBIDDEN_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def is_ascii_digits(value: str) -> bool:
    """Tell whether ``value`` is one or more ASCII digits and nothing else."""
    return _DIGITS.fullmatch(value) is not None


def parse_decimal(value: object) -> tuple[Decimal | None, str | None]:
    r"""Parse a decimal string of the API grammar; return the number or what is wrong with it.

    The grammar is ``[0-9]+(\.[0-9]+)?`` in ASCII, at most 15 digits before the point and 12
    after: no sign, no blanks, no exponent, no separators, no other script's digits.
    """
    if not isinstance(value, str):
        return None, 'send decimals as JSON strings, e.g. "10" or "70000.5"'
    match = _DECIMAL.fullmatch(value)
    if match is None:
        if _DECIMAL_SHAPE.fullmatch(value) is not None:
            return None, (
                f"at most {DECIMAL_MAX_INTEGER_DIGITS} digits before the point and "
                f"{DECIMAL_MAX_FRACTION_DIGITS} after"
            )
        return None, "must be ASCII digits with an optional fraction, e.g. 10 or 70000.5"
    return Decimal(value), None


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Say what is wrong with a text value, or None.

    NUL, control characters and lone surrogates are refused (a line break and a tab too, unless
    ``multiline``): PostgreSQL cannot store a NUL, a lone surrogate cannot be encoded, and a
    control character in a name ends up in logs and terminals.
    """
    pattern = _FORBIDDEN_IN_TEXT if multiline else _FORBIDDEN_IN_LINE
    found = pattern.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "must not contain a NUL character"
    if "\ud800" <= char <= "\udfff":
        return "must not contain an unpaired surrogate (not a Unicode character)"
    return f"must not contain the control character U+{ord(char):04X}"


def key_problem(value: str) -> str | None:
    """Say what is wrong with a broker key or secret, or None: printable ASCII, no blanks."""
    if _KEY.fullmatch(value) is None:
        return "must be printable ASCII characters without blanks"
    return None
