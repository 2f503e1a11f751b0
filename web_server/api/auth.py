"""API authentication: a Bearer API key with scopes, checked once per request."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from web_server.services import api_keys
from web_server.services.api_keys import ApiKey

F = TypeVar("F", bound=Callable[..., Any])


def current_key() -> ApiKey:
    """Return the API key of this request (set by ``scoped``)."""
    return g.api_key  # type: ignore[no-any-return]


def scoped(scope: str | None, *, unrestricted: bool = False) -> Callable[[F], F]:
    """Require an API key with ``scope`` (or ``admin``; ``None``: any valid key) on a view.

    ``unrestricted`` also requires a key not limited to some accounts: for actions on the whole
    instance (creating an account), which no account restriction could bound.

    Raises:
        Unauthorized: no valid key (401).
        Forbidden: the key lacks the scope, or is limited to some accounts (403).
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = api_keys.authenticate(request.headers.get("Authorization"))
            if scope is not None:
                api_keys.require(key, scope)
            if unrestricted:
                api_keys.require_unrestricted(key)
            g.api_key = key
            # Plain values for the audit hook, which runs after the session may be gone.
            g.api_key_ref = (key.id, key.prefix)
            if scope == "admin":
                g.admin_call = True
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
