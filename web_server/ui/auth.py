"""Operator login and logout."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from web_server.errors import Unauthorized
from web_server.extensions import db, login_manager
from web_server.services import users as users_service
from web_server.services.users import User
from web_server.ui.blueprint import ActionForm, bp
from web_server.ui.forms import LoginForm


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """Load the logged-in user from the session."""
    return users_service.get_enabled_user(user_id)


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    """Give every page (the error pages too) the logout form of the nav bar."""
    if not current_user or not current_user.is_authenticated:
        return {}
    # formdata=None: this form only renders its button, and must not read the body of the
    # request being answered (a 413 page would read the body it refuses).
    return {"logout_form": ActionForm(prefix="logout", formdata=None)}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form and log the operator in."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = users_service.authenticate(
                form.username.data or "", form.password.data or "", address=request.remote_addr
            )
        except Unauthorized as exc:
            db.session.commit()  # keep the failure count even though the login failed
            flash(exc.detail, "error")
            retry = getattr(exc, "retry_after", None)
            headers = {"Retry-After": str(retry)} if retry else {}
            return render_template("auth/login.html", form=form), 401, headers
        db.session.commit()
        # Permanent: the session then ends after PERMANENT_SESSION_LIFETIME without a request
        # (the signed cookie carries its age), not only when the browser closes.
        session.permanent = True
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    # A submitted form that does not validate (a NUL in the name, an empty field) is a 422.
    return render_template("auth/login.html", form=form), 422 if form.is_submitted() else 200


@bp.post("/logout")
@login_required
def logout() -> Any:
    """Log out (a POST, so a link on another site cannot do it)."""
    logout_user()
    return redirect(url_for("ui.login"))


def _safe_next(target: str | None) -> str:
    # Only a plain local path: browsers read "/\\host" and "/\thost" as "//host", so any
    # backslash, control character, scheme or host sends the operator to the dashboard instead.
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and "%5c" not in target.lower()
        and target.isprintable()
        and not any(c.isspace() for c in target)
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("ui.dashboard")  # what needs attention first
