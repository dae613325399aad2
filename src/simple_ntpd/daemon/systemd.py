"""systemd integration without libsystemd: sd_notify, the watchdog, socket activation.

The notification protocol is a datagram of ``KEY=VALUE`` lines sent to the Unix
socket named by ``$NOTIFY_SOCKET`` (sd_notify(3)); a leading ``@`` names a socket
in the abstract namespace. Socket activation hands the listening sockets over as
file descriptors 3, 4, ... with ``LISTEN_PID``, ``LISTEN_FDS`` and
``LISTEN_FDNAMES`` in the environment (sd_listen_fds(3)). Both are small and
stable enough to speak directly; nothing here fails when systemd is absent:
:func:`notify` returns False and :func:`listen_fds` returns an empty list.

How the daemon uses it (``Type=notify`` in the unit):

* :func:`ready` once the NTP sockets are bound and the first served-clock state
  is published, with a STATUS line;
* :func:`reloading` when SIGHUP arrives and :func:`ready` again when the reload
  is done (systemd 253+ ``Type=notify-reload`` wants ``MONOTONIC_USEC`` with it);
* :func:`watchdog` every :func:`watchdog_interval` / 2 seconds from the main loop,
  so a wedged loop stops the pings and systemd restarts the service;
* :func:`stopping` at the start of a clean shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import time

from simple_ntpd.errors import SimpleNtpdError

log = logging.getLogger(__name__)

# sd_listen_fds(3): passed file descriptors start at 3 (SD_LISTEN_FDS_START).
SD_LISTEN_FDS_START = 3
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class SystemdError(SimpleNtpdError):
    """The environment systemd gave us is malformed (LISTEN_FDS, WATCHDOG_USEC)."""


def _notify_address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        # Abstract namespace: the name starts with a NUL byte instead of the '@'.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # vsock: and other forms are not used on a host we run on.
    return None


def notify(state: str) -> bool:
    """Send ``state`` (newline-separated ``KEY=VALUE`` lines) to ``$NOTIFY_SOCKET``.

    True when the datagram was sent; False when not run by systemd (no
    ``NOTIFY_SOCKET``), the address form is not supported, or the send failed.
    Never raises: a missing notification must not take the daemon down.
    """
    value = os.environ.get("NOTIFY_SOCKET", "")
    if not value:
        return False
    address = _notify_address(value)
    if address is None:
        log.warning("NOTIFY_SOCKET %r is not a Unix socket address; not notifying", value)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", value, exc)
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would end the STATUS= assignment and start a forged one.
    return " ".join(text.splitlines())


def ready(status: str | None = None) -> bool:
    """READY=1 (startup or reload finished), with an optional STATUS line."""
    message = "READY=1"
    if status is not None:
        message += "\nSTATUS=" + _one_line(status)
    return notify(message)


def reloading() -> bool:
    """RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC now), as systemd 253+ requires."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    """STOPPING=1: a clean shutdown has begun."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """STATUS=<text>, shown by ``systemctl status``."""
    return notify("STATUS=" + _one_line(text))


def watchdog() -> bool:
    """WATCHDOG=1: the main loop is alive."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds, or None when the watchdog is off for us.

    Like sd_watchdog_enabled(3): ``WATCHDOG_USEC`` set and ``WATCHDOG_PID``
    either unset or our pid. Ping at half this interval.
    """
    usec_text = os.environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = os.environ.get("WATCHDOG_PID")
    try:
        usec = int(usec_text)
        pid = int(pid_text) if pid_text else None
    except ValueError:
        raise SystemdError(
            f"WATCHDOG_USEC={usec_text!r} / WATCHDOG_PID={pid_text!r} are not integers"
        ) from None
    if usec <= 0:
        raise SystemdError(f"WATCHDOG_USEC={usec_text!r} is not positive")
    if pid is not None and pid != os.getpid():
        return None
    return usec / 1e6


def listen_fds_with_names() -> list[tuple[str, socket.socket]]:
    """The sockets systemd passed us, with their ``FileDescriptorName=`` (default "unknown").

    Reads ``LISTEN_PID``/``LISTEN_FDS``/``LISTEN_FDNAMES`` and removes them from
    the environment, as sd_listen_fds(unset_environment=1) does, so worker
    processes do not take the sockets for their own. Each descriptor gets
    FD_CLOEXEC. Empty when the variables are absent or meant for another process.
    """
    env = {name: os.environ.pop(name, None) for name in _LISTEN_VARS}
    pid_text, count_text, names_text = env["LISTEN_PID"], env["LISTEN_FDS"], env["LISTEN_FDNAMES"]
    if not pid_text or not count_text:
        return []
    try:
        pid = int(pid_text)
        count = int(count_text)
    except ValueError:
        raise SystemdError(
            f"LISTEN_PID={pid_text!r} / LISTEN_FDS={count_text!r} are not integers"
        ) from None
    if pid != os.getpid():
        return []
    if count < 0:
        raise SystemdError(f"LISTEN_FDS={count_text!r} is negative")
    names = names_text.split(":") if names_text else []
    if names and len(names) != count:
        raise SystemdError(f"LISTEN_FDNAMES has {len(names)} names for {count} descriptors")
    result: list[tuple[str, socket.socket]] = []
    for i in range(count):
        fd = SD_LISTEN_FDS_START + i
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            raise SystemdError(f"LISTEN_FDS={count} but descriptor {fd} is not open") from exc
        if not stat.S_ISSOCK(mode):
            raise SystemdError(f"descriptor {fd} passed by systemd is not a socket")
        os.set_inheritable(fd, False)
        # socket.socket(fileno=...) asks the kernel for family, type and protocol.
        result.append((names[i] if names else "unknown", socket.socket(fileno=fd)))
    return result


def listen_fds() -> list[socket.socket]:
    """The sockets systemd passed us (see :func:`listen_fds_with_names`)."""
    return [sock for _, sock in listen_fds_with_names()]
