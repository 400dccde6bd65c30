"""lib/platform/keys.py: the center's key pairs (made, protected, rotated, read back) and the
refusals that name the file and never quote a key or a passphrase. The pipeline's secrets
(read_secret, create_secret) are tested with the pseudonyms (lib/policy/test_pseudonym.py)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

from kodomo_assets.lib.platform.keys import (
    ENCRYPTION_FILE,
    PASSPHRASE_ENV,
    PUBLIC_FILE,
    SIGNING_FILE,
    CenterPrivate,
    KeyProblem,
    center_keygen,
    read_center_private,
    read_center_public,
)

PASSPHRASE = "センター職員だけが知る合言葉"


def sign_and_verify(private: CenterPrivate, signer: str, public_file: Path) -> bool:
    """Whether the public file's key for `signer` verifies what `private` signed."""
    key = read_center_public(public_file).signing_key(signer)
    if key is None:
        return False
    key.verify(private.signing.sign(b"message"), b"message")  # raises when it does not
    return True


def test_keygen_writes_two_private_keys_and_the_public_file(tmp_path: Path) -> None:
    folder = tmp_path / "center"
    out = center_keygen(folder, passphrase=None)
    assert set(out) == {ENCRYPTION_FILE, SIGNING_FILE, PUBLIC_FILE}
    # nothing else: the temporary names the files were written under are gone
    assert sorted(p.name for p in folder.iterdir()) == sorted(out)
    for name in (ENCRYPTION_FILE, SIGNING_FILE):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    doc = json.loads((folder / PUBLIC_FILE).read_text(encoding="utf-8"))
    assert set(doc) == {"encryption", "signing", "fingerprint", "created", "previous"}
    assert doc["previous"] == []
    private = read_center_private(folder)
    public = read_center_public(folder / PUBLIC_FILE)
    assert public.fingerprint == doc["fingerprint"] == private.public().fingerprint
    assert sign_and_verify(private, public.fingerprint, folder / PUBLIC_FILE)


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    folder = tmp_path / "center"
    center_keygen(folder, passphrase=None)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(KeyProblem, match="既にあります（上書きしません"):
        center_keygen(folder, passphrase=None)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_passphrase_protects_the_private_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "center"
    center_keygen(folder, passphrase=PASSPHRASE)
    for name in (ENCRYPTION_FILE, SIGNING_FILE):
        assert (folder / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    public = read_center_public(folder / PUBLIC_FILE)

    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    assert read_center_private(folder).public().fingerprint == public.fingerprint

    monkeypatch.setenv(PASSPHRASE_ENV, "違う合言葉")
    with pytest.raises(KeyProblem, match="パスフレーズが違うか、壊れています") as err:
        read_center_private(folder)
    assert str(folder / ENCRYPTION_FILE) in str(err.value)
    assert "違う合言葉" not in str(err.value) and PASSPHRASE not in str(err.value)


def test_without_a_passphrase_and_no_terminal_the_key_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "center"
    center_keygen(folder, passphrase=PASSPHRASE)
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)  # never asks: nobody to answer
    with pytest.raises(KeyProblem) as err:
        read_center_private(folder)
    assert str(err.value) == (
        f"センター秘密鍵 {folder / ENCRYPTION_FILE} はパスフレーズで保護されています"
        f"（{PASSPHRASE_ENV}）"
    )


def test_a_rotation_keeps_every_earlier_signing_key(tmp_path: Path) -> None:
    first, second, third = (tmp_path / n for n in ("first", "second", "third"))
    center_keygen(first, passphrase=None)
    center_keygen(second, passphrase=None, previous=first / PUBLIC_FILE)
    center_keygen(third, passphrase=None, previous=second / PUBLIC_FILE)
    keys = {f: read_center_private(f) for f in (first, second, third)}
    prints = {f: k.public().fingerprint for f, k in keys.items()}
    assert len(set(prints.values())) == 3  # a new pair each time
    latest = third / PUBLIC_FILE
    previous = json.loads(latest.read_text(encoding="utf-8"))["previous"]
    assert [p["fingerprint"] for p in previous] == [prints[first], prints[second]]
    # what each pair signed still verifies under the latest public file, by its fingerprint
    for folder, private in keys.items():
        assert sign_and_verify(private, prints[folder], latest), folder.name
    # the latest encryption key is the new pair's: lists are encrypted to it from now on
    assert read_center_public(latest).fingerprint == prints[third]
    assert read_center_public(latest).signing_key("unknown") is None
    # an earlier key is found only under its own fingerprint
    with pytest.raises(InvalidSignature):
        sign_and_verify(keys[first], prints[second], latest)


def test_a_missing_or_malformed_public_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "center_public.json"
    with pytest.raises(KeyProblem) as err:
        read_center_public(missing)
    assert str(err.value) == (
        f"センターの公開鍵 {missing} がありません（kodomo center-keygen で作成）"
    )
    center_keygen(tmp_path / "center", passphrase=None)
    doc = json.loads((tmp_path / "center" / PUBLIC_FILE).read_text(encoding="utf-8"))
    for broken in (
        "not json",
        json.dumps({k: v for k, v in doc.items() if k != "signing"}),
        json.dumps({**doc, "encryption": doc["encryption"][:10]}),  # too short for X25519
        json.dumps({**doc, "previous": [{"fingerprint": "x"}]}),
    ):
        missing.write_text(broken, encoding="utf-8")
        with pytest.raises(KeyProblem) as err:
            read_center_public(missing)
        assert str(err.value) == f"センターの公開鍵 {missing} を読めません"


def test_private_keys_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "center"
    center_keygen(folder, passphrase=None)
    enc, sig = (folder / ENCRYPTION_FILE).read_bytes(), (folder / SIGNING_FILE).read_bytes()
    for name, data in ((ENCRYPTION_FILE, sig), (SIGNING_FILE, enc)):
        (folder / name).write_bytes(data)
    with pytest.raises(KeyProblem, match="鍵の種類が違います（X25519 と Ed25519）"):
        read_center_private(folder)


def test_a_private_key_beside_the_data_or_open_to_others_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / "center"
    center_keygen(folder, passphrase=None)
    with pytest.raises(KeyProblem, match="データと同じ場所"):
        read_center_private(folder, home=home)
    elsewhere = tmp_path / "elsewhere"
    center_keygen(elsewhere, passphrase=None)
    os.chmod(elsewhere / SIGNING_FILE, 0o640)
    with pytest.raises(KeyProblem, match="chmod 600") as err:
        read_center_private(elsewhere, home=home)
    assert str(elsewhere / SIGNING_FILE) in str(err.value)
    (elsewhere / ENCRYPTION_FILE).unlink()
    with pytest.raises(KeyProblem, match="がありません"):
        read_center_private(elsewhere, home=home)
