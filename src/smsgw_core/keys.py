"""API keys: who a request is from, proven by a secret only its holder has.

A key reads `smsgw_<key id>_<secret>`. The key id names the stored record, so a
presented key is found with one lookup (and a log line can name it without
revealing it); the secret is 32 random bytes. Only the SHA-256 of the secret
is stored, so a dump of the database holds no usable key. A slow password
hash (bcrypt, argon2) would add nothing: the secret is 256 random bits, not a
password anyone could guess, and the check stays cheap enough for every
request. Secrets are compared in constant time.

A key belongs to one customer, or is an admin key (no customer).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

PREFIX = "smsgw"
KEY_ID_BYTES = 8  # 16 hex characters: ids are unique by the primary key anyway
SECRET_BYTES = 32
MAX_KEY_NAME = 100
_KEY = re.compile(rf"{PREFIX}_([0-9a-f]{{{2 * KEY_ID_BYTES}}})_([A-Za-z0-9_-]{{43}})")


class Tokens(Protocol):
    """Random text: key ids in hex and secrets in URL-safe base64 (the system's
    CSPRNG: smsgw_core.system.SystemTokens)."""

    def hex(self, nbytes: int) -> str: ...

    def urlsafe(self, nbytes: int) -> str: ...


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: everything but the secret, of which only the hash."""

    key_id: str
    customer_id: int | None  # None: an admin key
    name: str
    secret_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.customer_id is None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: its record, and the key itself, shown once and kept nowhere."""

    record: ApiKey
    key: str


@dataclass(frozen=True, slots=True)
class PresentedKey:
    key_id: str
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(tokens: Tokens, customer_id: int | None, name: str, at: datetime) -> IssuedKey:
    key_id = tokens.hex(KEY_ID_BYTES)
    secret = tokens.urlsafe(SECRET_BYTES)
    record = ApiKey(key_id, customer_id, name, hash_secret(secret), at)
    return IssuedKey(record, f"{PREFIX}_{key_id}_{secret}")


def parse(key: str) -> PresentedKey | None:
    """The key id and secret of a well-formed key; None for anything else."""
    found = _KEY.fullmatch(key)
    return None if found is None else PresentedKey(found.group(1), found.group(2))


def proves(record: ApiKey, presented: PresentedKey) -> bool:
    """Whether `presented` is the key `record` was issued as (in constant time)."""
    return (record.key_id == presented.key_id
            and hmac.compare_digest(record.secret_hash, hash_secret(presented.secret)))


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header value is `Bearer <token>` (a shared token,
    such as the metrics scrape's), compared in constant time."""
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode())
