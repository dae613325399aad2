"""Privilege dropping, run in a forked child so the test process keeps root."""

from __future__ import annotations

import json
import os

import pytest

from simple_ntpd.daemon.privileges import CAP_SYS_TIME, PrivilegeError, drop_privileges

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


def _in_child(user: str, group: str | None, keep: bool) -> dict[str, object]:
    """Run drop_privileges in a child; return what it saw in /proc/self/status."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(rfd)
            try:
                dropped = drop_privileges(user, group, keep)
                error = None
            except PrivilegeError as exc:
                dropped, error = False, str(exc)
            with open("/proc/self/status") as f:
                status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
            out = {
                "dropped": dropped,
                "error": error,
                "uid": os.getuid(),
                "euid": os.geteuid(),
                "gid": os.getgid(),
                "groups": os.getgroups(),
                "CapEff": int(status["CapEff"], 16),
                "CapPrm": int(status["CapPrm"], 16),
                "CapInh": int(status["CapInh"], 16),
                "CapAmb": int(status["CapAmb"], 16),
            }
            os.write(wfd, json.dumps(out).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    result: dict[str, object] = json.loads(data)
    return result


@needs_root
def test_drop_to_nobody_without_capabilities() -> None:
    r = _in_child("nobody", "nogroup", keep=False)
    assert r["error"] is None
    assert r["dropped"] is True
    assert (r["uid"], r["euid"], r["gid"], r["groups"]) == (65534, 65534, 65534, [65534])
    assert r["CapEff"] == r["CapPrm"] == r["CapInh"] == r["CapAmb"] == 0


@needs_root
def test_drop_keeping_exactly_cap_sys_time() -> None:
    r = _in_child("nobody", None, keep=True)
    assert r["error"] is None
    assert (r["uid"], r["gid"]) == (65534, 65534)
    assert r["CapEff"] == 1 << CAP_SYS_TIME
    assert r["CapPrm"] == 1 << CAP_SYS_TIME
    assert r["CapInh"] == 0
    assert r["CapAmb"] == 0


@needs_root
def test_unknown_user_and_group_raise() -> None:
    r = _in_child("no-such-user-simple-ntpd", None, keep=False)
    assert "unknown user" in str(r["error"])
    assert r["uid"] == 0
    r = _in_child("nobody", "no-such-group-simple-ntpd", keep=False)
    assert "unknown group" in str(r["error"])
    assert r["uid"] == 0


def test_not_root_is_a_noop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    calls: list[str] = []
    monkeypatch.setattr(os, "setuid", lambda uid: calls.append("setuid"))
    monkeypatch.setattr(os, "setgid", lambda gid: calls.append("setgid"))
    with caplog.at_level("INFO", logger="simple_ntpd.daemon.privileges"):
        assert drop_privileges("nobody", "nogroup", True) is False
    assert calls == []
    assert "not running as root" in caplog.text
