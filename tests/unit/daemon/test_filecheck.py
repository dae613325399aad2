"""File permission checks on key and configuration files, with real tmp files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simple_ntpd.daemon.filecheck import check_config_file, check_secret_file


def _file(tmp_path: Path, mode: int, name: str = "f") -> str:
    path = tmp_path / name
    path.write_text("1 MD5 secret\n")
    os.chmod(path, mode)
    return str(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_secret_ok(tmp_path: Path, mode: int) -> None:
    assert check_secret_file(_file(tmp_path, mode)) == []


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0o640, ["group"]),
        (0o604, ["others"]),
        (0o644, ["group", "others"]),
        (0o620, ["group"]),
        (0o602, ["others"]),
        (0o666, ["group", "others"]),
        (0o610, ["group"]),
    ],
)
def test_secret_group_or_other_access(tmp_path: Path, mode: int, expected: list[str]) -> None:
    problems = check_secret_file(_file(tmp_path, mode))
    assert len(problems) == len(expected)
    for problem, who in zip(problems, expected, strict=True):
        assert f"accessible by {who}" in problem
        assert f"{mode:04o}" in problem


def test_secret_problems_never_contain_content(tmp_path: Path) -> None:
    problems = check_secret_file(_file(tmp_path, 0o666))
    assert problems
    assert not any("secret" in p.split(":", 1)[1] for p in problems)


def test_secret_missing_dir_symlink(tmp_path: Path) -> None:
    assert "does not exist" in check_secret_file(str(tmp_path / "nope"))[0]
    assert "not a regular file" in check_secret_file(str(tmp_path))[0]
    target = _file(tmp_path, 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert "symbolic link" in check_secret_file(str(link))[0]


def test_secret_owner(tmp_path: Path) -> None:
    path = _file(tmp_path, 0o600)
    uid = os.stat(path).st_uid
    assert check_secret_file(path, allowed_uids={uid}) == []
    if uid != 0:
        assert "owned by" in check_secret_file(path, allowed_uids={uid + 1})[0]
    else:
        os.chown(path, 12345, -1)
        assert "owned by uid 12345" in check_secret_file(path, allowed_uids={999})[0]
        assert check_secret_file(path, allowed_uids={12345}) == []


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o444])
def test_config_ok(tmp_path: Path, mode: int) -> None:
    assert check_config_file(_file(tmp_path, mode, "c.conf")) == []


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(0o664, ["group"]), (0o646, ["others"]), (0o666, ["group", "others"])],
)
def test_config_writable(tmp_path: Path, mode: int, expected: list[str]) -> None:
    problems = check_config_file(_file(tmp_path, mode, "c.conf"))
    assert [p.split("writable by ")[1].split()[0] for p in problems] == expected


def test_config_missing_and_dir(tmp_path: Path) -> None:
    assert "does not exist" in check_config_file(str(tmp_path / "none.conf"))[0]
    assert "not a regular file" in check_config_file(str(tmp_path))[0]
