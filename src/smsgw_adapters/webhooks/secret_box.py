"""Webhook signing secrets sealed for storage: a database dump alone signs nothing.

A customer's `whsec_` secret has to be stored in a form the gateway can turn
back into the secret (it signs every request with it), so it cannot be hashed
like an API key. It is encrypted instead, with AES-256-GCM under a master key
that lives outside the database: `SMSGW_WEBHOOK_KEY` in the environment, or,
in the embedded mode that has no configuration, a key file next to the data
(`key_file`). Whoever holds only the dump holds ciphertext.

The sealed form is `v1.<key id>.<base64url(nonce + ciphertext + tag)>`:
the key id, a short fingerprint of the master key, lets `open` pick the key
it needs from the list, so the master key can be rotated without a flag day:
configure `new,old`, and the new key seals while old seals still open; once
every secret has been re-sealed the old key can go. Nothing in the form
names the customer; a caller that passes `context` (the customer's id) binds
the seal to it as associated data, so a sealed secret copied into another
customer's row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smsgw_adapters.webhooks import signing

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's native nonce; random, so ~2**32 seals per key stay safe
VERSION = "v1"
# What every seal is bound to, so a ciphertext made under the same key for some
# other purpose (should the key ever be shared) does not open as a webhook secret.
_ASSOCIATED = b"smsgw-webhook-secret"
_KEY_HELP = "a key is 32 random bytes in base64 (openssl rand -base64 32)"


def key_id(key: bytes) -> str:
    """The short fingerprint a seal names its key by (it reveals nothing usable)."""
    return hashlib.sha256(key).hexdigest()[:8]


def _associated(context: str) -> bytes:
    # "" keeps the bare label; any other context is appended after a separator,
    # so distinct contexts always give distinct associated data.
    return _ASSOCIATED if not context else _ASSOCIATED + b"\x00" + context.encode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode_key(text: str) -> bytes | None:
    """The key `text` holds in standard or urlsafe base64, padding optional;
    None when it is not base64. Never echoes `text` (it is a secret)."""
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return None


class AesSecretBox:
    """The SecretBox port over AES-256-GCM: the first key seals, every key opens."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a secret box needs at least one key")
        for position, key in enumerate(keys, 1):
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {position} is {len(key)} bytes, not {KEY_BYTES}")
        # Only the ciphers are kept, not the raw keys, so neither a repr nor a
        # stray log of the box shows key material.
        self._sealing_id = key_id(keys[0])
        self._sealing = AESGCM(bytes(keys[0]))
        # A list per id: two distinct keys sharing a 32-bit fingerprint is
        # improbable, but then both are tried rather than one silently lost.
        self._opening: dict[str, list[AESGCM]] = {}
        seen: set[bytes] = set()
        for key in keys:
            if key not in seen:
                seen.add(key)
                self._opening.setdefault(key_id(key), []).append(AESGCM(bytes(key)))

    def new_secret(self) -> str:
        return signing.new_secret()

    def seal(self, secret: str, *, context: str = "") -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._sealing.encrypt(nonce, secret.encode(), _associated(context))
        return f"{VERSION}.{self._sealing_id}.{_b64url(nonce + sealed)}"

    def open(self, sealed: str, *, context: str = "") -> str:
        version, _, rest = sealed.partition(".")
        kid, _, payload = rest.partition(".")
        if version != VERSION or not kid or not payload:
            raise ValueError(f"not a {VERSION} sealed secret")
        ciphers = self._opening.get(kid)
        if ciphers is None:
            raise ValueError(f"sealed under key {kid}, which this box does not hold")
        raw = _decode_key(payload)
        # Only the canonical encoding is accepted: base64 tolerates changes to
        # a final character's unused bits, and a seal is either intact or refused.
        if raw is None or _b64url(raw) != payload:
            raise ValueError("a sealed secret's payload is not base64url")
        if len(raw) < NONCE_BYTES + 16:  # the nonce and GCM's 16-byte tag
            raise ValueError("a sealed secret's payload is too short")
        nonce, ciphertext = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        for cipher in ciphers:
            try:
                plain = cipher.decrypt(nonce, ciphertext, _associated(context))
            except InvalidTag:
                continue
            return plain.decode()  # it was encoded by seal, so it decodes
        raise ValueError("a sealed secret does not open: altered, or sealed for another context")


def parse_keys(text: str) -> list[bytes]:
    """The keys of `SMSGW_WEBHOOK_KEY`: comma-separated, the sealing key first.

    ValueError naming the problem, never a key's value, for an empty setting,
    an empty entry, bad base64 or a key that is not 32 bytes.
    """
    entries = [entry.strip() for entry in text.split(",")]
    if entries == [""]:
        raise ValueError(f"SMSGW_WEBHOOK_KEY holds no key: {_KEY_HELP}")
    keys: list[bytes] = []
    for position, entry in enumerate(entries, 1):
        where = f"SMSGW_WEBHOOK_KEY key {position} of {len(entries)}"
        if not entry:
            raise ValueError(f"{where} is empty (a stray comma?)")
        key = _decode_key(entry)
        if key is None:
            raise ValueError(f"{where} is not base64: {_KEY_HELP}")
        if len(key) != KEY_BYTES:
            raise ValueError(f"{where} is {len(key)} bytes, not {KEY_BYTES}: {_KEY_HELP}")
        keys.append(key)
    return keys


def key_file(path: Path) -> bytes:
    """The key in `path`, created there (32 random bytes, base64, mode 0600) if absent.

    For the embedded mode, which has no configuration. Two processes starting
    at once agree on one key: the key is written whole to a private temporary
    file (O_CREAT|O_EXCL, 0600) and published with a hard link, which, unlike a
    rename, fails when the name exists; the loser reads the winner's key, and
    nobody ever reads a half-written file. ValueError, one line, for a file
    that cannot be read or created or does not hold a key.
    """
    key = _read_key(path)
    if key is not None:
        return key
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
            os.fsync(descriptor)  # losing the key loses every secret sealed under it
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race: its key is the key
        else:
            _sync_directory(path.parent)
    except OSError as error:
        raise ValueError(
            f"cannot create the webhook key file {path}: {error.strerror or error}"
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    key = _read_key(path)
    if key is None:  # only if it was deleted under us
        raise ValueError(f"the webhook key file {path} vanished as it was created")
    return key


def _read_key(path: Path) -> bytes | None:
    """The key in `path`; None when there is no such file."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ValueError(
            f"cannot read the webhook key file {path}: {error.strerror or error}"
        ) from None
    try:
        key = _decode_key(content.decode("ascii").strip())
    except UnicodeDecodeError:
        key = None
    if key is None or len(key) != KEY_BYTES:
        raise ValueError(f"the webhook key file {path} does not hold a key: {_KEY_HELP}")
    return key


def _sync_directory(directory: Path) -> None:
    # The new name must survive a crash too, not only the file's bytes; POSIX
    # only (a directory cannot be opened for fsync on Windows).
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
