"""Dropping root after the sockets are bound, keeping only CAP_SYS_TIME when asked.

This module owns the uid/gid/capability change of the daemon process. The
order is the classic one (ntpd ``-u``, chrony ``user``): bind port 123 as
root, then ``setgroups`` (supplementary groups first, while still allowed),
``setgid``, ``setuid``. A ``setuid`` away from root clears every capability
unless ``PR_SET_KEEPCAPS`` is set, so when the daemon disciplines the system
clock it sets KEEPCAPS, changes ids, then ``capset``-s the permitted and
effective sets down to exactly CAP_SYS_TIME and clears KEEPCAPS again.
``capset`` has no stdlib binding, hence ctypes (libcap's Python binding would
be a dependency for two system calls).

Not root: nothing to drop; one log line says so and the call returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import logging
import os
import pwd

from simple_ntpd.errors import SimpleNtpdError

__all__ = ["CAP_SYS_TIME", "PrivilegeError", "drop_privileges"]

log = logging.getLogger(__name__)

# linux/capability.h
CAP_SYS_TIME = 25
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# linux/prctl.h
_PR_SET_KEEPCAPS = 8
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4


class PrivilegeError(SimpleNtpdError):
    """The process could not change to the configured user, group or capabilities."""


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"{what} failed: {os.strerror(err)}")


def _set_capabilities(libc: ctypes.CDLL, caps: list[int]) -> None:
    """Set permitted and effective to exactly ``caps``, inheritable to none."""
    words = [0, 0]  # version 3 uses two 32-bit words per set
    for cap in caps:
        words[cap // 32] |= 1 << (cap % 32)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(*(_CapData(w, w, 0) for w in words))
    _check(libc.capset(ctypes.byref(header), data), "capset")


def drop_privileges(user: str, group: str | None, keep_sys_time: bool) -> bool:
    """Become ``user``/``group``, keeping CAP_SYS_TIME if ``keep_sys_time``.

    Call after every privileged socket is bound. ``group`` None means the
    user's primary group.

    Returns:
        True when ids were changed; False when not running as root (no-op).

    Raises:
        PrivilegeError: unknown user or group, or a system call failed. The
            process must not go on serving in that case.
    """
    if os.geteuid() != 0:
        log.info("not running as root: keeping uid %d, no privileges to drop", os.geteuid())
        return False
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"unknown user {user!r}") from None
    if group is None:
        gid = pw.pw_gid
    else:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f"unknown group {group!r}") from None
    uid = pw.pw_uid
    libc = _libc()
    try:
        if keep_sys_time:
            _check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot change to {user}:{group}: {exc.strerror}") from None
    # Ambient capabilities would survive execve; nothing here wants that.
    # Older kernels lack PR_CAP_AMBIENT (EINVAL), which means there are none.
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if keep_sys_time:
        _set_capabilities(libc, [CAP_SYS_TIME])
        _check(libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS, 0)")
    if uid != 0:
        # Paranoia as ntpd does it: getting root back must be impossible.
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise PrivilegeError("setuid(0) succeeded after dropping privileges")
    log.info(
        "dropped privileges to uid %d gid %d%s",
        uid,
        gid,
        ", keeping CAP_SYS_TIME" if keep_sys_time else "",
    )
    return True
