"""Request bodies: one size limit for every body, whether its length is declared or not.

``MAX_CONTENT_LENGTH`` (``GATEWAY_MAX_CONTENT_LENGTH``) is enforced by Werkzeug for a declared
``Content-Length`` before anything is read (``create_app``'s ``refuse_large_bodies`` answers it
before any work). A body sent without one (``Transfer-Encoding: chunked``) is read through a
stream limited to the same size, but Werkzeug's whole-body read stops *at* the limit without
telling whether more was coming: the app was handed the first 64 KiB of a larger body as if it
were all of it (a JSON document padded with blanks then took effect). :class:`BoundedRequest`
looks one byte past the limit after a whole-body read, and a body that goes on is a 413, as a
declared one is.
"""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream


def too_large(limit: int) -> RequestEntityTooLarge:
    """The 413 of a body over ``limit`` bytes (a ``payload_too_large`` problem)."""
    return RequestEntityTooLarge(
        f"The body is larger than {limit} bytes (GATEWAY_MAX_CONTENT_LENGTH)."
    )


class BoundedRequest(Request):
    """Flask's request, refusing a body without ``Content-Length`` that runs past the limit."""

    _past_limit_checked = False
    _refused: RequestEntityTooLarge | None = None

    def get_data(self, *args: Any, **kwargs: Any) -> Any:
        """Werkzeug's ``get_data`` (the JSON bodies' read), refusing a body past the limit."""
        data = super().get_data(*args, **kwargs)
        self._refuse_past_limit()
        return data

    def _load_form_data(self) -> None:  # the forms' read (the console)
        super()._load_form_data()
        self._refuse_past_limit()

    def _refuse_past_limit(self) -> None:
        if self._refused is not None:
            raise self._refused  # every later read of the body too, never its first 64 KiB
        limit = self.max_content_length
        if self._past_limit_checked or limit is None or self.content_length is not None:
            return
        stream = self.stream
        if not (isinstance(stream, LimitedStream) and stream.is_exhausted):
            return  # not read up to the limit (yet): looked at again after the next read
        self._past_limit_checked = True
        # The limited stream has given all it may; one more byte of the input says whether the
        # body ended exactly at the limit or went on.
        try:
            more = self.environ["wsgi.input"].read(1)
        except (OSError, ValueError) as exc:  # the client went away, or broke its chunking
            raise ClientDisconnected() from exc
        if more:
            self._refused = too_large(limit)
            raise self._refused
