"""The operator's web UI: server-rendered pages, CSRF on every form, every change a POST.

Views are thin (STYLE H3): parse a form, call one service, commit through
``blueprint.transaction`` or roll back and show the error's ``detail``. No page ever shows a key,
a secret, a token or a full account number.
"""

from __future__ import annotations

# Importing the view modules registers their routes on the blueprint.
from web_server.ui import (  # noqa: F401
    accounts,
    api_keys,
    audit,
    auth,
    dashboard,
    formatting,
    live,
    orders,
    risk,
    stocks,
    trade,
)
from web_server.ui.blueprint import bp

__all__ = ["bp"]
