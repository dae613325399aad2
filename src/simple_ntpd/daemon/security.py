"""Startup and reload side of security: file checks, the key file, the service user.

This module owns reading the key file (after checking its permissions), the
refuse-to-start rules for the key and configuration files, and turning a
configuration into the :class:`~simple_ntpd.server.policy.SecurityPolicy`
the workers inherit. The same functions serve startup, SIGHUP and
``--test-config``. Key material never reaches a message: parse errors name
the file and line (:class:`~simple_ntpd.auth.keys.KeyFileError`).
"""

from __future__ import annotations

import logging
import os
import pwd

from simple_ntpd.auth.keys import KeyStore, parse_key_file
from simple_ntpd.config.schema import Config
from simple_ntpd.daemon.filecheck import check_config_file, check_secret_file
from simple_ntpd.daemon.privileges import PrivilegeError, drop_privileges
from simple_ntpd.errors import ConfigError
from simple_ntpd.server.policy import (
    SecurityPolicy,
    keys_required,
    policy_from_config,
    security_notes,
)

__all__ = [
    "SecurityFileError",
    "build_policy",
    "drop_to_service_user",
    "file_problems",
    "load_keys",
    "security_notes",
]

log = logging.getLogger(__name__)


class SecurityFileError(ConfigError):
    """The key file or the configuration file is unsafe or unusable; the daemon must not start."""


def _service_uid(cfg: Config) -> int | None:
    try:
        return pwd.getpwnam(cfg.security.user).pw_uid
    except KeyError:
        return None


def _key_file_in_use(cfg: Config) -> bool:
    path = cfg.ntp_server.auth_key_file
    if not path:
        return False
    return keys_required(cfg) or os.path.lexists(path)


def file_problems(config_path: str | None, cfg: Config) -> list[str]:
    """Why the configuration file or key file must not be trusted; empty when both are fine.

    The key file is checked when it will be used: authentication is enabled
    (either side), or the file exists. Owner checks allow root and the
    service user.
    """
    uid = _service_uid(cfg)
    allowed = None if uid is None else {uid}
    problems: list[str] = []
    if config_path is not None:
        problems += [f"configuration file {p}" for p in check_config_file(config_path, allowed)]
    if _key_file_in_use(cfg):
        problems += [
            f"key file {p}" for p in check_secret_file(cfg.ntp_server.auth_key_file, allowed)
        ]
    return problems


def load_keys(cfg: Config) -> KeyStore | None:
    """Read and parse the key file, or None when no key file is in use.

    Raises:
        SecurityFileError: the file is unsafe (permissions) or unreadable.
        KeyFileError: a line is malformed (file and line named, never the key).
    """
    if not _key_file_in_use(cfg):
        return None
    path = cfg.ntp_server.auth_key_file
    uid = _service_uid(cfg)
    problems = check_secret_file(path, None if uid is None else {uid})
    if problems:
        raise SecurityFileError("key file " + "; ".join(problems))
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        # str(exc) of an OSError names the file, not its contents.
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SecurityFileError(f"key file {path}: cannot read: {reason}") from None
    keys = parse_key_file(text, source=path)
    log.info("loaded %d keys from %s", len(keys), path)
    return keys


def build_policy(cfg: Config) -> SecurityPolicy:
    """Load the keys and build the policy for ``cfg`` (startup and SIGHUP)."""
    return policy_from_config(cfg, load_keys(cfg))


def drop_to_service_user(cfg: Config) -> bool:
    """Become ``security.user``/``security.group`` if running as root.

    ``user = "root"`` keeps root (an explicit opt-out, logged as a warning).

    Keeps CAP_SYS_TIME only when ``ntp_server.discipline_system_clock`` is true.

    Raises:
        PrivilegeError: unknown user or group, or a system call failed.
    """
    sec = cfg.security
    if sec.user == "root":
        # chrony's "user root": an explicit choice to keep root, said loudly.
        if os.geteuid() == 0:
            log.warning("security.user is root: running as root, privileges not dropped")
        return False
    try:
        return drop_privileges(sec.user, sec.group or None, cfg.ntp_server.discipline_system_clock)
    except PrivilegeError as exc:
        raise PrivilegeError(
            f"{exc} (security.user = {sec.user!r}, security.group = {sec.group!r}; "
            "create them, e.g. useradd --system --user-group --no-create-home "
            "--shell /usr/sbin/nologin ntp, or set other names)"
        ) from None
