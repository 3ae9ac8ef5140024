"""Where the keys sealing session records come from, and how a bad setting is refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from smart_app.web.errors import ConfigurationError
from smart_app.web.token_keys import DEFAULT_KEY_FILE, RecordCipher, load_cipher, new_key


def test_a_single_instance_makes_its_own_private_key_file_once(tmp_path: Path) -> None:
    first = load_cipher({}, tmp_path, shared=False)
    key_file = tmp_path / DEFAULT_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text("ascii").strip()
    sealed = first.seal("an access token")
    assert Fernet(key.encode()).decrypt(sealed.encode()) == b"an access token"
    again = load_cipher({}, tmp_path, shared=False)  # the next start reads the same key
    assert again.unseal(sealed) == "an access token"
    assert key_file.read_text("ascii").strip() == key


def test_keys_from_the_environment_newest_first(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    cipher = load_cipher({"TOKEN_KEYS": f" {new} , {old} "}, tmp_path, shared=True)
    sealed = cipher.seal("t")
    assert Fernet(new.encode()).decrypt(sealed.encode()) == b"t"
    assert cipher.unseal(RecordCipher([old.encode()]).seal("older")) == "older"
    assert not (tmp_path / DEFAULT_KEY_FILE).exists()


def test_keys_from_a_key_file_one_a_line(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    path = tmp_path / "keys"
    path.write_text(f"# newest first\n{new}\n\n{old}\n", "ascii")
    cipher = load_cipher({"TOKEN_KEY_FILE": str(path)}, tmp_path, shared=True)
    assert Fernet(new.encode()).decrypt(cipher.seal("t").encode()) == b"t"
    assert cipher.unseal(Fernet(old.encode()).encrypt(b"o").decode()) == "o"


@pytest.mark.parametrize(
    ("config", "shared", "message"),
    [
        ({"TOKEN_KEYS": "not-a-key"}, False, "ATTACH_TOKEN_KEYS: key 1 is not a Fernet key"),
        ({"TOKEN_KEYS": " , "}, False, "ATTACH_TOKEN_KEYS: no key given"),
        ({"TOKEN_KEYS": "K", "TOKEN_KEY_FILE": "f"}, False, "not both"),
        ({"TOKEN_KEY_FILE": "/nonexistent/keys"}, False, "cannot read /nonexistent/keys"),
        ({}, True, "A PostgreSQL session store needs ATTACH_TOKEN_KEYS or ATTACH_TOKEN_KEY_FILE"),
    ],
)
def test_a_bad_key_setting_stops_the_start_and_names_the_setting(
    config: dict[str, str], shared: bool, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_cipher(config, tmp_path, shared=shared)
    assert message in raised.value.description


def test_a_bad_key_is_not_quoted_in_the_error(tmp_path: Path) -> None:
    good, bad = new_key(), "x" * 20  # base64, but 15 bytes instead of 32
    with pytest.raises(ConfigurationError) as raised:
        load_cipher({"TOKEN_KEYS": f"{good},{bad}"}, tmp_path, shared=False)
    assert "key 2 is not a Fernet key" in raised.value.description
    assert good not in raised.value.description and bad not in raised.value.description


def test_a_tampered_or_foreign_value_opens_as_nothing() -> None:
    cipher = RecordCipher([new_key().encode()])
    sealed = cipher.seal('{"access_token": "t"}')
    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    assert cipher.unseal(flipped) is None
    assert cipher.unseal('{"access_token": "t"}') is None  # a plaintext row from before
    assert cipher.unseal(RecordCipher([new_key().encode()]).seal("x")) is None
