"""The UI's forms: Flask-WTF, so each carries its CSRF token; secrets only in password inputs."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    widgets,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from web_server.services.accounts import ENVIRONMENTS, EXCHANGES, SECURITIES_EXCHANGES
from web_server.services.api_keys import SCOPES
from web_server.services.grammar import key_problem, text_problem

EXCHANGE_LABELS = {
    "KIS": "KIS (Korea Investment & Securities)",
    "KIWOOM": "Kiwoom Securities",
    "UPBIT": "Upbit",
    "BITHUMB": "Bithumb",
    "BINANCE": "Binance",
}
ENVIRONMENT_LABELS = {"REAL": "REAL (real money)", "PAPER": "PAPER (paper trading)"}
STOCK_MARKETS = ("KOSPI", "KOSDAQ", "KONEX")


def plain_text(form: FlaskForm, field: Any) -> None:
    """Refuse NUL, control characters and lone surrogates (the API's text grammar)."""
    if field.data and (problem := text_problem(str(field.data))):
        raise ValidationError(problem)


def broker_key(form: FlaskForm, field: Any) -> None:
    """Refuse a broker key that is not printable ASCII without blanks."""
    if field.data and (problem := key_problem(str(field.data))):
        raise ValidationError(problem)


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", validators=[DataRequired(), Length(max=64), plain_text])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class AccountCreateForm(FlaskForm):
    """A new broker account; the service checks what depends on the broker.

    Password fields never render their value, so a key typed in is not sent back even when the
    form has errors.
    """

    name = StringField("Name", validators=[DataRequired(), Length(max=100), plain_text])
    exchange = SelectField(
        "Exchange",
        choices=[SelectChoice(e.value, EXCHANGE_LABELS[e]) for e in EXCHANGES],
        default="KIS",
    )
    environment = SelectField(
        "Environment",
        choices=[SelectChoice(e.value, ENVIRONMENT_LABELS[e]) for e in ENVIRONMENTS],
        default="REAL",
    )
    api_key = PasswordField(
        "API key (app key)", validators=[DataRequired(), Length(max=4096), broker_key]
    )
    api_secret = PasswordField(
        "API secret (app secret)", validators=[DataRequired(), Length(max=4096), broker_key]
    )
    account_number = StringField(
        "Account number (8 digits)",
        validators=[Optional(), Regexp(r"^\d{8}$", message="must be 8 digits")],
    )
    product_code = StringField(
        "Product code (2 digits)",
        default="01",
        validators=[Optional(), Regexp(r"^\d{2}$", message="must be 2 digits")],
    )
    cert_password = PasswordField(
        "Certificate password (optional)", validators=[Optional(), Length(max=1024), plain_text]
    )
    base_url = StringField(
        "Base URL (optional, e.g. a simulator)",
        validators=[Optional(), Length(max=2048), plain_text],
    )

    def securities_config(self) -> dict[str, Any] | None:
        """Return the KIS/Kiwoom configuration the fields make, or None for a crypto exchange."""
        if self.exchange.data not in SECURITIES_EXCHANGES:
            return None
        config: dict[str, Any] = {
            "account_number": (self.account_number.data or "").strip(),
            "product_code": (self.product_code.data or "").strip(),
        }
        if self.cert_password.data:
            config["cert_password"] = self.cert_password.data
        return config


class AccountEditForm(FlaskForm):
    """Rename, (de)activate, repoint; new keys come as a pair."""

    name = StringField("Name", validators=[DataRequired(), Length(max=100), plain_text])
    is_active = BooleanField("Active")
    base_url = StringField(
        "Base URL (empty: the broker's configured host; a change needs the keys too)",
        validators=[Optional(), Length(max=2048), plain_text],
    )
    api_key = PasswordField("New API key", validators=[Optional(), Length(max=4096), broker_key])
    api_secret = PasswordField(
        "New API secret", validators=[Optional(), Length(max=4096), broker_key]
    )

    def validate(self, extra_validators: Any = None) -> bool:
        """Check the fields, then that a new key comes with its secret."""
        valid = super().validate(extra_validators)
        if bool(self.api_key.data) != bool(self.api_secret.data):
            missing = self.api_secret if self.api_key.data else self.api_key
            missing.errors = [*missing.errors, "give the new key and secret together"]
            valid = False
        return valid


def _at_least_one(form: FlaskForm, field: SelectMultipleField) -> None:
    # Not DataRequired: its "required" flag would mark every checkbox of the group as required.
    if not field.data:
        raise ValidationError("choose at least one scope")


class ApiKeyCreateForm(FlaskForm):
    """A new API key: label, scopes, optionally the accounts it may touch."""

    label = StringField("Label", validators=[DataRequired(), Length(max=100), plain_text])
    scopes = SelectMultipleField(
        "Scopes",
        choices=[SelectChoice(s) for s in SCOPES],
        widget=widgets.ListWidget(prefix_label=False),
        option_widget=widgets.CheckboxInput(),
        validators=[_at_least_one],
    )
    account_ids = SelectMultipleField(
        "Accounts (none selected: all accounts)", coerce=int, validators=[Optional()]
    )


class StockSearchForm(FlaskForm):
    """Search the stocks master (a GET: it changes nothing, so no CSRF token in the URL)."""

    class Meta:
        """No CSRF: the token would end up in URLs, logs and history for a read-only search."""

        csrf = False

    q = StringField("Code or name", validators=[Optional(), Length(max=100), plain_text])
    market = SelectField(
        "Market",
        choices=[SelectChoice("", "All markets"), *(SelectChoice(m) for m in STOCK_MARKETS)],
        default="",
    )
