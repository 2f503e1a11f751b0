"""Encryption of stored secrets: a key ring, AES-256-GCM, and columns bound to their rows.

Format of a stored value (text, so it fits the seeds' ``TEXT`` columns)::

    gw1:<key id>:<base64url(12-byte nonce || ciphertext || 16-byte tag)>

The associated data is ``<schema.table>.<column>#<primary key>``: a ciphertext copied into another
row or another column fails authentication instead of decrypting to the wrong account's secret.
Because the primary key is part of the associated data, a new row gets its id from its sequence
before it is flushed (``_assign_ids_and_encrypt``), so even the first INSERT stores ciphertext.

Keys come from ``GATEWAY_ENCRYPTION_KEYS`` (``id:base64key,id:base64key``) or from the file named by
``GATEWAY_ENCRYPTION_KEY_FILE`` (one ``id:base64key`` a line). The first key encrypts; every key
decrypts. They are never stored in the database and never derived from ``SECRET_KEY``: one key, one
purpose. ``gateway keys rotate`` re-encrypts every encrypted column under the first key in one
transaction, after which older keys can be removed.

Decryption never returns its input: a missing key id, a wrong key or a moved value raises
``SecretUnreadable`` with a message that names the column and row (never the value) and says what to
do.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from sqlalchemy import event, inspect, select, text
from sqlalchemy.orm import Session

from web_server.errors import ConfigError, SecretUnreadable

PREFIX = "gw1"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NONCE_BYTES = 12
#: How many opened values a key ring remembers (see :class:`KeyRing`).
OPENED_KEPT = 4096


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def generate_key_entry(key_id: str | None = None) -> str:
    """Return a new ``id:base64key`` entry holding a random 256-bit key."""
    key_id = key_id or "k" + secrets.token_hex(4)
    if not KEY_ID_PATTERN.match(key_id):
        raise ConfigError(f"key id {key_id!r} must match {KEY_ID_PATTERN.pattern}")
    return f"{key_id}:{_b64encode(AESGCM.generate_key(bit_length=256))}"


@dataclass(frozen=True)
class KeyRing:
    """Ordered encryption keys: the first encrypts, all decrypt.

    Values it has opened are remembered by their stored form and binding (at most
    :data:`OPENED_KEPT`): an account's keys are read on every order (its adapter's identity, its
    token's), and AES-GCM plus base64 each time was measurable on the order path (issue 12). The
    process holds those plaintexts in its adapters anyway; a new ciphertext (new keys, a
    re-encryption) is a new entry, and a ring without the value's key is a new ring, which
    opens nothing it cannot.
    """

    keys: tuple[tuple[str, bytes], ...]
    _opened: dict[tuple[str, str], str] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    @classmethod
    def parse(cls, entries: Iterable[str], *, source: str) -> KeyRing:
        """Build a key ring from ``id:base64key`` entries, refusing anything malformed.

        Raises:
            ConfigError: an entry is malformed, a key is not 256 bits, an id repeats, or there is
                no key at all.
        """
        keys: list[tuple[str, bytes]] = []
        for number, entry in enumerate(entries, start=1):
            entry = entry.strip()
            if not entry or entry.startswith("#"):
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep or not KEY_ID_PATTERN.match(key_id):
                raise ConfigError(
                    f"{source}: entry {number} is not 'id:base64key' with an id of letters, digits,"
                    " '-' or '_'. Generate one with `gateway keys generate`."
                )
            try:
                key = _b64decode(encoded.strip())
            except (binascii.Error, ValueError):
                raise ConfigError(f"{source}: key {key_id!r} is not valid base64.") from None
            if len(key) != 32:
                raise ConfigError(
                    f"{source}: key {key_id!r} is {len(key)} bytes; AES-256 needs 32. "
                    "Generate one with `gateway keys generate`."
                )
            if any(existing == key_id for existing, _ in keys):
                raise ConfigError(f"{source}: key id {key_id!r} appears twice.")
            keys.append((key_id, key))
        if not keys:
            raise ConfigError(f"{source} holds no key. Generate one with `gateway keys generate`.")
        return cls(tuple(keys))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KeyRing:
        """Load the key ring from ``ENCRYPTION_KEYS`` or ``ENCRYPTION_KEY_FILE``.

        Raises:
            ConfigError: neither is set, the file is unreadable, or an entry is malformed.
        """
        inline = config.get("ENCRYPTION_KEYS")
        key_file = config.get("ENCRYPTION_KEY_FILE")
        if inline:
            entries = inline if isinstance(inline, list | tuple) else str(inline).split(",")
            return cls.parse(entries, source="GATEWAY_ENCRYPTION_KEYS")
        if key_file:
            path = Path(key_file)
            try:
                content = path.read_text(encoding="ascii")
            except OSError as exc:
                raise ConfigError(
                    f"GATEWAY_ENCRYPTION_KEY_FILE={path}: cannot read it ({exc.strerror})."
                ) from None
            if os.name == "posix" and path.stat().st_mode & 0o077:
                raise ConfigError(
                    f"GATEWAY_ENCRYPTION_KEY_FILE={path} is readable by group or others; "
                    f"run `chmod 600 {path}`."
                )
            return cls.parse(content.splitlines(), source=f"key file {path}")
        raise ConfigError(
            "No encryption key: set GATEWAY_ENCRYPTION_KEYS=<id:base64key> or "
            "GATEWAY_ENCRYPTION_KEY_FILE=<path>. Create a key with `gateway keys generate`."
        )

    @property
    def primary_id(self) -> str:
        """Return the id of the key that encrypts."""
        return self.keys[0][0]

    def key_ids(self) -> list[str]:
        """Return the ids of every key, primary first."""
        return [key_id for key_id, _ in self.keys]

    def encrypt(self, plaintext: str, associated_data: str) -> str:
        """Encrypt ``plaintext`` under the primary key, bound to ``associated_data``."""
        key_id, key = self.keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), associated_data.encode())
        return f"{PREFIX}:{key_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, stored: str, associated_data: str) -> str:
        """Decrypt a stored value; ``associated_data`` must be the one it was sealed with.

        Raises:
            SecretUnreadable: the value is not ours, its key is not in the ring, or authentication
                failed (wrong key, tampered, or copied from another row or column).
        """
        opened = self._opened.get((stored, associated_data))
        if opened is not None:
            return opened
        prefix, _, rest = stored.partition(":")
        key_id, _, payload = rest.partition(":")
        if prefix != PREFIX or not key_id or not payload:
            raise SecretUnreadable(
                f"{associated_data} does not hold a value encrypted by the gateway "
                "(it was written around the gateway, or is damaged)."
            )
        key = dict(self.keys).get(key_id)
        if key is None:
            raise SecretUnreadable(
                f"{associated_data} was encrypted with key id {key_id!r}, which is not configured "
                f"(configured: {', '.join(self.key_ids())}). Add that key to "
                "GATEWAY_ENCRYPTION_KEYS or the key file; if it is lost, enter the secret again."
            )
        try:
            raw = _b64decode(payload)
            plain = AESGCM(key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], associated_data.encode()
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretUnreadable(
                f"{associated_data} failed authentication under key {key_id!r}: the key with "
                "that id is not the one that encrypted it, or the value was copied from another "
                "row or column, or altered."
            ) from None
        text = plain.decode("utf-8")
        if len(self._opened) >= OPENED_KEPT:
            self._opened.clear()  # rare: as many secrets as accounts and tokens
        self._opened[(stored, associated_data)] = text
        return text


def current_keyring() -> KeyRing:
    """Return the key ring of the current app."""
    return current_app.extensions["gateway.keyring"]  # type: ignore[no-any-return]


def associated_data(instance: Any, column: str) -> str:
    """Return the associated data binding a value to its table, column and row."""
    table = instance.__table__
    primary_key = inspect(instance).mapper.primary_key_from_instance(instance)[0]
    return f"{table.fullname}.{column}#{primary_key}"


class Encrypted:
    """A plaintext attribute stored encrypted in a text column of the same model.

    ``api_secret = Encrypted("api_secret_ciphertext")`` reads and writes plaintext while the mapped
    column attribute ``api_secret_ciphertext`` holds the stored form. Reading opens the stored
    form through the key ring each time (nothing plain is kept on the instance; the ring remembers
    what it opened). Writing to a row that has no id yet waits until
    flush, when the row has taken its id from its sequence.
    """

    def __init__(self, column_attr: str) -> None:
        self.column_attr = column_attr
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        registry: dict[str, str] = dict(getattr(owner, "__encrypted_fields__", {}))
        registry[name] = self.column_attr
        owner.__encrypted_fields__ = registry  # type: ignore[attr-defined]

    def column_name(self, owner: type) -> str:
        """Return the database column name behind this attribute."""
        return owner.__mapper__.attrs[self.column_attr].columns[0].name  # type: ignore[attr-defined]

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return self
        pending = instance.__dict__.get("_pending_plaintext", {})
        if self.name in pending:
            return pending[self.name]
        stored = getattr(instance, self.column_attr)
        if stored is None:
            return None
        return current_keyring().decrypt(stored, associated_data(instance, self.column_name(owner)))

    def __set__(self, instance: Any, value: str | None) -> None:
        if value is None:
            instance.__dict__.get("_pending_plaintext", {}).pop(self.name, None)
            setattr(instance, self.column_attr, None)
            return
        if inspect(instance).mapper.primary_key_from_instance(instance)[0] is not None:
            sealed = current_keyring().encrypt(
                value, associated_data(instance, self.column_name(type(instance)))
            )
            setattr(instance, self.column_attr, sealed)
        else:
            instance.__dict__.setdefault("_pending_plaintext", {})[self.name] = value


def _assign_ids_and_encrypt(session: Session, flush_context: Any, instances: Any) -> None:
    """Give new rows with pending secrets their id, then encrypt the secrets bound to it."""
    for instance in list(session.new):
        pending: dict[str, str] | None = instance.__dict__.get("_pending_plaintext")
        if not pending:
            continue
        mapper = inspect(instance).mapper
        pk_column = mapper.primary_key[0]
        if getattr(instance, pk_column.key) is None:
            sequence = f"{instance.__table__.fullname}_{pk_column.name}_seq"
            new_id = session.execute(
                text("SELECT nextval(CAST(:seq AS regclass))"), {"seq": sequence}
            ).scalar_one()
            setattr(instance, pk_column.key, new_id)
        keyring = current_keyring()
        for field_name, value in pending.items():
            descriptor: Encrypted = getattr(type(instance), field_name)
            sealed = keyring.encrypt(
                value, associated_data(instance, descriptor.column_name(type(instance)))
            )
            setattr(instance, descriptor.column_attr, sealed)
        pending.clear()


def install_session_hooks(session_class: Any) -> None:
    """Register the flush hook that encrypts new rows' secrets (idempotent)."""
    if not event.contains(session_class, "before_flush", _assign_ids_and_encrypt):
        event.listen(session_class, "before_flush", _assign_ids_and_encrypt)


def encrypted_models(base: Any) -> Iterator[type]:
    """Yield every mapped class that has encrypted fields."""
    for mapper in base.registry.mappers:
        if getattr(mapper.class_, "__encrypted_fields__", None):
            yield mapper.class_


def key_ids_in_use(session: Session, base: Any) -> dict[str, int]:
    """Count the stored secrets per key id, across every encrypted column."""
    counts: dict[str, int] = {}
    for model in encrypted_models(base):
        for column_attr in model.__encrypted_fields__.values():  # type: ignore[attr-defined]
            column = getattr(model, column_attr)
            for stored in session.scalars(select(column).where(column.is_not(None))):
                key_id = stored.split(":", 2)[1] if stored.count(":") >= 2 else "?"
                counts[key_id] = counts.get(key_id, 0) + 1
    return counts


def rotate(session: Session, base: Any, keyring: KeyRing) -> int:
    """Re-encrypt every stored secret under the primary key; return how many were rewritten.

    The caller commits: one transaction for all rows, so a failure rewrites none. Rows are locked
    (``FOR UPDATE``) so a concurrent writer cannot slip an old-key value in behind the rotation.

    Raises:
        SecretUnreadable: a stored value cannot be decrypted with the configured keys.
    """
    rewritten = 0
    for model in encrypted_models(base):
        fields: dict[str, str] = model.__encrypted_fields__  # type: ignore[attr-defined]
        for row in session.scalars(select(model).with_for_update()):
            for field_name, column_attr in fields.items():
                stored = getattr(row, column_attr)
                if stored is None:
                    continue
                descriptor: Encrypted = getattr(model, field_name)
                aad = associated_data(row, descriptor.column_name(model))
                plain = keyring.decrypt(stored, aad)
                if stored.split(":", 2)[1] != keyring.primary_id:
                    setattr(row, column_attr, keyring.encrypt(plain, aad))
                    rewritten += 1
    session.flush()
    return rewritten
