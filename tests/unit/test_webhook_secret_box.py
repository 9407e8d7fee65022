"""Sealed webhook secrets: what a database dump, a wrong key, a tampered or
misplaced seal, and a bad key setting or key file each come to."""

from __future__ import annotations

import base64
import multiprocessing
import os
import secrets
import stat
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsgw_adapters.webhooks.secret_box import (
    AesSecretBox,
    key_file,
    key_id,
    parse_keys,
)
from smsgw_adapters.webhooks.signing import PREFIX, secret_key
from smsgw_core.ports import SecretBox

KEY = bytes(range(32))
OTHER = bytes(range(100, 132))


def box(*keys: bytes) -> AesSecretBox:
    return AesSecretBox(keys or (KEY,))


def payload(sealed: str) -> bytes:
    encoded = sealed.split(".")[2]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def with_payload(sealed: str, raw: bytes) -> str:
    head = sealed.rsplit(".", 1)[0]
    return head + "." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_it_is_the_port() -> None:
    port: SecretBox = box()
    assert port.new_secret().startswith(PREFIX)


def test_new_secret_is_a_fresh_whsec_secret() -> None:
    first, second = box().new_secret(), box().new_secret()
    assert first != second
    assert len(secret_key(first)) == 32


@given(st.text(), st.text())
def test_a_sealed_secret_opens_to_itself(secret: str, context: str) -> None:
    sealer = box()
    assert sealer.open(sealer.seal(secret)) == secret
    assert sealer.open(sealer.seal(secret, context=context), context=context) == secret


def test_the_sealed_form_does_not_contain_the_secret() -> None:
    sealer = box()
    secret = sealer.new_secret()
    sealed = sealer.seal(secret)
    assert sealed.startswith(f"v1.{key_id(KEY)}.")
    for part in (secret, secret[len(PREFIX):], secret[len(PREFIX):][:12]):
        assert part not in sealed
    assert secret_key(secret) not in payload(sealed)
    assert len(sealed) <= 255  # the webhook table's column


def test_two_seals_of_one_secret_differ() -> None:
    sealer = box()
    secret = sealer.new_secret()
    first, second = sealer.seal(secret), sealer.seal(secret)
    assert first != second
    assert payload(first)[:12] != payload(second)[:12]  # the nonces
    assert sealer.open(first) == sealer.open(second) == secret


def test_another_key_does_not_open_it() -> None:
    sealed = box(KEY).seal("whsec_abc")
    with pytest.raises(ValueError, match="does not hold"):
        box(OTHER).open(sealed)
    # The same key id with another key (a forged or colliding fingerprint) is refused too.
    forged = sealed.replace(key_id(KEY), key_id(OTHER))
    with pytest.raises(ValueError, match="does not open"):
        box(OTHER).open(forged)


def test_a_rotated_key_list_opens_old_seals_and_seals_with_the_new_key() -> None:
    old_seal = box(KEY).seal("whsec_old")
    rotated = box(OTHER, KEY)
    assert rotated.open(old_seal) == "whsec_old"
    new_seal = rotated.seal("whsec_new")
    assert new_seal.split(".")[1] == key_id(OTHER)
    assert box(OTHER).open(new_seal) == "whsec_new"
    with pytest.raises(ValueError):
        box(KEY).open(new_seal)  # the old key alone cannot open what the new one sealed
    # Re-sealing under the new key is what lets the old key be dropped.
    resealed = rotated.seal(rotated.open(old_seal))
    assert box(OTHER).open(resealed) == "whsec_old"


def test_any_flipped_byte_is_refused() -> None:
    sealer = box()
    sealed = sealer.seal(sealer.new_secret())
    raw = payload(sealed)
    for position in range(len(raw)):  # nonce, ciphertext and tag alike
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        with pytest.raises(ValueError):
            sealer.open(with_payload(sealed, bytes(tampered)))
    for cut in (with_payload(sealed, raw[:-1]), with_payload(sealed, raw + b"\0")):
        with pytest.raises(ValueError):
            sealer.open(cut)


def test_any_changed_character_is_refused() -> None:
    sealer = box()
    sealed = sealer.seal(sealer.new_secret())
    for position in range(len(sealed)):
        for replacement in ("A", "_"):
            if sealed[position] != replacement:
                changed = sealed[:position] + replacement + sealed[position + 1:]
                with pytest.raises(ValueError):
                    sealer.open(changed)


@pytest.mark.parametrize("sealed", [
    "", "whsec_abc", "v1", "v1.", "v1..", "v2.00000000.AAAA", f"v1.{key_id(KEY)}.",
    f"v1.{key_id(KEY)}.AAAA", f"v1.{key_id(KEY)}.!!!!", f"v1.{key_id(KEY)}.é",
])
def test_what_was_never_sealed_is_refused(sealed: str) -> None:
    with pytest.raises(ValueError):
        box().open(sealed)


def test_a_seal_for_one_context_does_not_open_in_another() -> None:
    sealer = box()
    sealed = sealer.seal("whsec_abc", context="cus_1")
    assert sealer.open(sealed, context="cus_1") == "whsec_abc"
    for other in ("cus_2", "", "cus_1\x00", "cus_"):
        with pytest.raises(ValueError, match="does not open"):
            sealer.open(sealed, context=other)
    with pytest.raises(ValueError):
        sealer.open(sealer.seal("whsec_abc"), context="cus_1")


def test_a_box_needs_32_byte_keys() -> None:
    with pytest.raises(ValueError, match="at least one"):
        AesSecretBox([])
    with pytest.raises(ValueError, match="key 2 is 16 bytes"):
        AesSecretBox([KEY, bytes(16)])
    assert KEY.hex() not in repr(box())


def test_parse_keys_takes_standard_or_urlsafe_base64_with_or_without_padding() -> None:
    key = bytes([0xFB, 0xFF] * 16)  # encodes with + and / (or - and _)
    standard = base64.b64encode(key).decode()
    urlsafe = base64.urlsafe_b64encode(key).decode()
    assert "+" in standard and "/" in standard and standard.endswith("=")
    for text in (standard, urlsafe, standard.rstrip("="), urlsafe.rstrip("=")):
        assert parse_keys(text) == [key]
    assert parse_keys(f" {urlsafe} ,{base64.b64encode(KEY).decode()}\n") == [key, KEY]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "holds no key"),
    ("  ", "holds no key"),
    ("{good},", "key 2 of 2 is empty"),
    ("{short}", "key 1 of 1 is 16 bytes, not 32"),
    ("{long}", "key 1 of 1 is 33 bytes, not 32"),
    ("{good},{short}", "key 2 of 2 is 16 bytes"),
    ("{good}!", "key 1 of 1 is not base64"),
    ("{good}é", "key 1 of 1 is not base64"),
    ("{good_inner_space}", "key 1 of 1 is not base64"),
    ("{hex}", "key 1 of 1 is 48 bytes"),  # hex is base64 too, of the wrong length
])
def test_parse_keys_names_the_problem_and_not_the_key(text: str, problem: str) -> None:
    good = base64.b64encode(secrets.token_bytes(32)).decode()
    values = {
        "good": good,
        "short": base64.b64encode(secrets.token_bytes(16)).decode(),
        "long": base64.b64encode(secrets.token_bytes(33)).decode(),
        "good_inner_space": good[:20] + " " + good[20:],
        "hex": secrets.token_hex(32),
    }
    setting = text.format(**values)
    with pytest.raises(ValueError, match=problem) as raised:
        parse_keys(setting)
    message = str(raised.value)
    assert "\n" not in message
    for value in values.values():
        assert value[:8] not in message and value.rstrip("=")[-8:] not in message


def test_key_file_creates_a_private_key_and_then_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "webhook.key"
    key = key_file(path)
    assert len(key) == 32
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text().strip()) == key
    assert key_file(path) == key
    assert key_file(tmp_path / "another.key") != key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["another.key", "webhook.key"]


def test_key_file_reads_a_key_written_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "webhook.key"
    path.write_text(base64.urlsafe_b64encode(KEY).decode().rstrip("=") + "\n\n")
    assert key_file(path) == KEY


def test_threads_creating_the_key_file_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "webhook.key"
    starting = threading.Barrier(16)
    keys: list[bytes] = []

    def create() -> None:
        starting.wait()
        keys.append(key_file(path))

    threads = [threading.Thread(target=create) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 16 and len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["webhook.key"]  # no temporary left


def test_processes_creating_the_key_file_at_once_agree(tmp_path: Path) -> None:
    path = tmp_path / "webhook.key"
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        keys = list(pool.map(key_file, [path] * 8))
    assert len(set(keys)) == 1
    assert key_file(path) == keys[0]
    assert [p.name for p in tmp_path.iterdir()] == ["webhook.key"]


@pytest.mark.parametrize("content", [
    b"", b"\n", b"not a key", base64.b64encode(bytes(16)), b"\xff\xfe" * 22,
    base64.b64encode(KEY) + b"!",
])
def test_a_corrupt_key_file_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "webhook.key"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="does not hold a key") as raised:
        key_file(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
    assert path.read_bytes() == content  # never replaced: secrets may be sealed under it


def test_an_unreadable_or_uncreatable_key_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        key_file(tmp_path)  # a directory
    with pytest.raises(ValueError, match="cannot create"):
        key_file(tmp_path / "missing" / "webhook.key")
