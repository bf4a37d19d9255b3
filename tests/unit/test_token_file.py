"""A tenant's token file, re-read when it changes: in place, or as a mounted Kubernetes Secret
(a ``..data`` symlink swapped to a new directory); a broken new file keeps the old token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.redaction import Redactor, SecretSet
from service.token_file import TokenFile, TokenFileError

OLD, NEW = "old-token-5b2c91", "new-token-0d7e44"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def mounted_secret(root: Path, token: str, version: str) -> Path:
    """What the kubelet does: files in a fresh directory, then ``..data`` swapped to it."""
    fresh = root / f"..{version}"
    fresh.mkdir()
    (fresh / "token").write_text(token + "\n")
    link = root / "..data_tmp"
    link.symlink_to(fresh.name)
    os.replace(link, root / "..data")
    if not (root / "token").is_symlink():
        (root / "token").symlink_to("..data/token")
    return root / "token"


def test_a_swapped_secret_volume_gives_the_new_token_within_one_check(tmp_path: Path) -> None:
    clock, seen = Clock(), SecretSet()
    path = mounted_secret(tmp_path, OLD, "v1")
    token = TokenFile(path, 8, on_new=seen.add, clock=clock)
    assert token.current() == OLD
    mounted_secret(tmp_path, NEW, "v2")
    assert token.current() == OLD, "not looked at again within the check interval"
    clock.now += 1.0
    assert token.current() == NEW
    assert list(seen) == sorted([OLD, NEW])


def test_a_file_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "token"
    path.write_text(OLD)
    token = TokenFile(path, 8, clock=clock)
    path.write_text(NEW + "-longer")
    clock.now += 1.0
    assert token.current() == NEW + "-longer"


@pytest.mark.parametrize("broken", ["", "short", None], ids=["empty", "too-short", "removed"])
def test_a_broken_new_file_keeps_the_token_in_use(tmp_path: Path, broken: str | None) -> None:
    clock = Clock()
    path = tmp_path / "token"
    path.write_text(OLD)
    token = TokenFile(path, 8, clock=clock)
    if broken is None:
        path.unlink()
    else:
        path.write_text(broken)
    clock.now += 1.0
    assert token.current() == OLD


def test_an_unusable_file_at_start_up_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    with pytest.raises(TokenFileError, match="too short"):
        TokenFile(tmp_path / "token", 8)


def test_a_redactor_on_a_secret_set_masks_tokens_added_later() -> None:
    secrets = SecretSet([OLD])
    redactor = Redactor(secrets)
    assert redactor.text(f"a {NEW} b") == f"a {NEW} b"
    secrets.add(NEW)
    assert redactor.text(f"a {NEW} {OLD}") == "a *** ***"
    assert redactor.data(NEW.encode()) == b"***"
