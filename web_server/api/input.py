"""The API's input grammar: one strict reading of bodies, query strings and fields.

Every view reads its input through the :class:`Blueprint` below, whose parser:

* reads a body only when it is ``application/json`` (another type is a 415 problem) and within
  ``GATEWAY_MAX_CONTENT_LENGTH`` (a 413 problem: for a declared length before the body is read,
  for a chunked one once it passes the limit, ``web_server/bodies.py``);
* parses JSON with bounds (:func:`load_json_body`): at most :data:`MAX_JSON_DEPTH` levels, numbers
  of at most :data:`MAX_JSON_NUMBER_LENGTH` characters, no duplicate keys, no ``NaN``; each is a
  400 ``invalid_json`` problem, never a ``RecursionError`` or ``ValueError`` (a 500);
* refuses a NUL or a lone surrogate in any string of the body, keys included (a 422
  ``validation_failed`` naming where), so no field, known or not, can carry one to PostgreSQL or
  to a log;
* refuses unknown query parameters, as unknown body fields already are.

The fields are the grammar of values (:mod:`web_server.services.grammar` has the rules):
:class:`DecimalString` (ASCII digits with an optional fraction, as a JSON string),
:class:`Boolean` (a JSON boolean, nothing else), :class:`QueryBoolean` (``true`` or ``false``),
:class:`Integer` (a JSON integer, or ASCII digits in a query), :class:`Text` (no NUL, control
character or lone surrogate) and :class:`BrokerKey` (printable ASCII).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from marshmallow import ValidationError, fields, validate
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import UnsupportedMediaType

from web_server.errors import InvalidJson, ValidationFailed
from web_server.services.grammar import (
    DECIMAL_MAX_LENGTH,
    DECIMAL_PATTERN,
    KEY_PATTERN,
    SIGNED_DECIMAL_PATTERN,
    is_ascii_digits,
    key_problem,
    parse_decimal,
    text_problem,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_JSON_NUMBER_LENGTH",
    "Blueprint",
    "Boolean",
    "BrokerKey",
    "DecimalString",
    "FullMatch",
    "GatewayParser",
    "Integer",
    "QueryBoolean",
    "Text",
    "load_json_body",
]

#: Arrays and objects nested deeper than this are refused (the API's own bodies use 3 levels).
MAX_JSON_DEPTH = 32
#: A JSON number longer than this is refused before Python turns it into an int or a float.
MAX_JSON_NUMBER_LENGTH = 100

# A JSON string (with its escapes) or a bracket: enough to measure nesting without parsing.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
# What no string of a body may hold: a NUL cannot be stored by PostgreSQL, a lone surrogate
# cannot be encoded at all.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


class _Refused(Exception):
    """A JSON body broke a bound; the message says which."""


def load_json_body(data: bytes) -> Any:
    """Parse a request body as bounded JSON.

    Raises:
        InvalidJson: the body is not UTF-8 JSON, is nested too deep, holds a number that is too
            long, a duplicate key, or ``NaN``/``Infinity``.
        ValidationFailed: a string (a key or a value) holds a NUL or a lone surrogate.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("The body is not UTF-8 text.") from None
    if _too_deep(text):
        raise InvalidJson(f"The body is nested deeper than {MAX_JSON_DEPTH} levels.")
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_int=_bounded_number(int),
            parse_float=_bounded_number(float),
            parse_constant=_no_constant,
        )
    except _Refused as exc:
        raise InvalidJson(str(exc)) from None
    except RecursionError:  # the depth check above should make this unreachable
        raise InvalidJson(f"The body is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        position = getattr(exc, "pos", None)
        where = f" (at character {position})" if position is not None else ""
        raise InvalidJson(f"The body is not valid JSON{where}.") from None
    problems = _unstorable_strings(document)
    if problems:
        raise ValidationFailed(
            "The request has invalid fields; see 'errors'.", errors={"json": problems}
        )
    return document


def _too_deep(text: str) -> bool:
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two readers of one body must not see two different requests.
            raise _Refused(f"The key {_printable(key)!r} appears twice in one object.")
        result[key] = value
    return result


def _bounded_number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(literal: str) -> Any:
        if len(literal) > MAX_JSON_NUMBER_LENGTH:
            raise _Refused(f"A number is longer than {MAX_JSON_NUMBER_LENGTH} characters.")
        return kind(literal)

    return parse


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON.")


def _printable(text: str) -> str:
    """Return ``text`` with its NULs and lone surrogates escaped, safe to echo back."""
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _unstorable_strings(node: Any) -> dict[str, Any]:
    """Return field problems shaped like the document, one for each string that is unstorable."""
    problems: dict[str, Any] = {}
    if isinstance(node, dict):
        items = [(key, key, value) for key, value in node.items()]
    elif isinstance(node, list):
        items = [(str(index), None, value) for index, value in enumerate(node)]
    else:
        return problems
    for name, key, value in items:
        where = _printable(name)
        if key is not None and (problem := _unstorable(key)):
            problems[where] = [f"the key {problem}"]
        elif isinstance(value, str):
            if problem := _unstorable(value):
                problems.setdefault(where, []).append(problem)
        elif isinstance(value, dict | list) and (inner := _unstorable_strings(value)):
            problems[where] = inner
    return problems


def _unstorable(value: str) -> str | None:
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain a NUL character"
    return "must not contain an unpaired surrogate (not a Unicode character)"


class GatewayParser(FlaskParser):
    """webargs' Flask parser with the gateway's bounds on bodies and query strings."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type[ma.Schema], ma.Schema] = {}

    def _get_schema(self, argmap: Any, req: flask.Request) -> ma.Schema:
        # One instance per schema class, not one per request: building a schema deep-copies its
        # fields, a measurable part of an order's CPU (issue 12). Loading keeps no state on it.
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas.setdefault(argmap, argmap())
            return schema
        return super()._get_schema(argmap, req)

    def _raw_load_json(self, req: flask.Request) -> Any:
        # get_data enforces MAX_CONTENT_LENGTH (413): a declared length before anything is read,
        # a chunked body one byte past the limit (web_server/bodies.py).
        data = req.get_data(cache=True)
        if not data:
            return core.missing
        if not core.is_json(req.mimetype):
            raise UnsupportedMediaType(
                f"Send the body as application/json (not {req.mimetype or 'untyped'})."
            )
        return load_json_body(data)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint reading arguments with :class:`GatewayParser`."""

    ARGUMENTS_PARSER = GatewayParser()


class FullMatch(validate.Regexp):
    """A pattern the whole value must match (``re.match`` with ``$`` lets a final newline by).

    The pattern keeps its ``^…$`` anchors for the OpenAPI document (ECMA-262 reads them as the
    whole string); Python checks it with ``fullmatch`` and ASCII classes.
    """

    def __init__(self, pattern: str, *, error: str | None = None) -> None:
        super().__init__(pattern, flags=re.ASCII, error=error)

    def __call__(self, value: Any) -> Any:
        """Return ``value`` if the whole of it matches the pattern.

        Raises:
            ValidationError: it does not.
        """
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class DecimalString(fields.String):
    r"""A decimal as a JSON string: ``"10"``, ``"70000.5"`` (DESIGN §3: money is never a float).

    Read with the grammar ``^[0-9]+(\.[0-9]+)?$`` in ASCII, at most 15 digits before the point
    and 12 after; ``positive`` also refuses zero. Written as plain digits, never with an
    exponent (``signed`` documents a leading minus, for profits and losses).
    """

    def __init__(self, *, positive: bool = True, signed: bool = False, **kwargs: Any) -> None:
        self.positive = positive
        pattern = SIGNED_DECIMAL_PATTERN if signed else DECIMAL_PATTERN
        length = DECIMAL_MAX_LENGTH + (1 if signed else 0)
        metadata = {"pattern": pattern, "maxLength": length, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        number, problem = parse_decimal(value)
        if number is None:
            raise ValidationError(problem or "not a decimal")
        if self.positive and number == 0:
            raise ValidationError("must be greater than 0")
        return number

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        return format(number, "f")


class Boolean(fields.Boolean):
    """A JSON boolean, ``true`` or ``false``; ``"yes"``, ``1`` and ``"true"`` are refused."""

    default_error_messages = {"invalid": "must be a JSON boolean: true or false"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid")


class QueryBoolean(fields.Boolean):
    """A boolean in a query string: exactly ``true`` or ``false``."""

    default_error_messages = {"invalid": "must be true or false"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value in ("true", "false"):
            return bool(value == "true")
        raise self.make_error("invalid")


class Integer(fields.Integer):
    """An integer: a JSON integer in a body (not ``true``, not ``1.0``), ASCII digits in a query.

    ``int()`` would take ``"１０"``, ``"10_000"`` and ``" 10 "``; this takes none of them.
    """

    default_error_messages = {"invalid": "must be an integer", "too_large": "too many digits"}

    def __init__(self, *, in_query: bool = False, **kwargs: Any) -> None:
        self.in_query = in_query
        super().__init__(strict=not in_query, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if self.in_query:
            if not isinstance(value, str) or not is_ascii_digits(value):
                raise self.make_error("invalid")
            if len(value) > 18:
                raise self.make_error("too_large")
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class Text(fields.String):
    """A string without NUL, control characters or lone surrogates.

    ``multiline`` allows tabs and line breaks.
    """

    def __init__(self, *, multiline: bool = False, **kwargs: Any) -> None:
        self.multiline = multiline
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if problem := text_problem(text, multiline=self.multiline):
            raise ValidationError(problem)
        return text


class BrokerKey(fields.String):
    """A broker key or secret: printable ASCII without blanks, load-only, 1 to 4096 characters."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Length(min=1, max=4096))
        metadata = {"pattern": KEY_PATTERN, "writeOnly": True, **kwargs.pop("metadata", {})}
        super().__init__(load_only=True, metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        key = super()._deserialize(value, attr, data, **kwargs)
        if problem := key_problem(key):
            raise ValidationError(problem)
        return key
