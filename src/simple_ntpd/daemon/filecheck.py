"""Permission checks on the files the daemon trusts: the key file and the configuration.

This module owns deciding whether a secret or configuration file is safe to
use, from its ``lstat``/``stat`` result. It returns problems as plain sentences
(for the startup error and ``--test-config``); refusing to start is the
caller's decision. It never opens the file, so it never reads a key.

Rules (ntpd/chrony practice, and the issue's "refuse to start" list):

* secret file (``auth_key_file``): must be a regular file, not a symbolic
  link (a link can be re-pointed by whoever owns its directory), and must have
  no permission bits for group or others (0600 or 0400), since anyone who
  reads it can forge authenticated time.
* configuration file: must be a regular file and not writable by group or
  others, since whoever can write it controls the server.
* both: owned by root or by the user the daemon runs as (``allowed_uids``),
  when the caller says who that is.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection

__all__ = ["check_config_file", "check_secret_file"]


def _stat(path: str, problems: list[str], follow: bool) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=follow)
    except FileNotFoundError:
        problems.append(f"{path}: does not exist")
    except OSError as exc:
        problems.append(f"{path}: cannot stat: {exc.strerror}")
    return None


def _owner(path: str, st: os.stat_result, allowed_uids: Collection[int] | None) -> list[str]:
    if allowed_uids is None or st.st_uid in allowed_uids or st.st_uid == 0:
        return []
    return [f"{path}: owned by uid {st.st_uid}, expected root or uid {sorted(allowed_uids)}"]


def check_secret_file(path: str, allowed_uids: Collection[int] | None = None) -> list[str]:
    """Problems that make ``path`` unfit to hold keys; empty when it is fine."""
    problems: list[str] = []
    lst = _stat(path, problems, follow=False)
    if lst is None:
        return problems
    if stat.S_ISLNK(lst.st_mode):
        problems.append(f"{path}: is a symbolic link; point the configuration at the file itself")
        return problems
    if not stat.S_ISREG(lst.st_mode):
        problems.append(f"{path}: not a regular file")
        return problems
    mode = stat.S_IMODE(lst.st_mode)
    if mode & (stat.S_IRGRP | stat.S_IWGRP | stat.S_IXGRP):
        problems.append(f"{path}: accessible by group (mode {mode:04o}); use chmod 600")
    if mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH):
        problems.append(f"{path}: accessible by others (mode {mode:04o}); use chmod 600")
    problems.extend(_owner(path, lst, allowed_uids))
    return problems


def check_config_file(path: str, allowed_uids: Collection[int] | None = None) -> list[str]:
    """Problems that make ``path`` unfit as configuration; empty when it is fine."""
    problems: list[str] = []
    st = _stat(path, problems, follow=True)
    if st is None:
        return problems
    if not stat.S_ISREG(st.st_mode):
        problems.append(f"{path}: not a regular file")
        return problems
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWGRP:
        problems.append(f"{path}: writable by group (mode {mode:04o}); use chmod g-w")
    if mode & stat.S_IWOTH:
        problems.append(f"{path}: writable by others (mode {mode:04o}); use chmod o-w")
    problems.extend(_owner(path, st, allowed_uids))
    return problems
