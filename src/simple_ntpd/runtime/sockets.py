"""UDP server sockets: addresses, options, kernel receive timestamps.

Each worker gets its own socket per listening address, all bound to the same
address with SO_REUSEPORT, so the kernel spreads clients across workers and a
client's packets stay on one worker (the 4-tuple hash). The main process
creates every socket (it may need privileges for port 123) and hands them to
the workers it forks; the sockets stay open in the main process, so a worker
generation can be replaced on reload without closing the port.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)

# <linux/socket.h>; the socket module does not export all of them.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """What to bind: addresses, port and socket options."""

    addresses: tuple[str, ...]
    port: int
    interface: str = ""
    receive_buffer_size: int = 0
    send_buffer_size: int = 0
    receive_buffer_configured: bool = True
    """Whether the receive size was configured: a short buffer is then a WARNING, else INFO."""


def listen_addresses(listen_address: str, enable_ipv6: bool) -> tuple[str, ...]:
    """The addresses to bind for ``listen_address`` and ``enable_ipv6``.

    The IPv4 wildcard pairs with the IPv6 wildcard and IPv4 loopback with IPv6
    loopback; a specific address is bound alone. An IPv6 address is bound
    only when ``enable_ipv6`` is set.
    """
    addr = ipaddress.ip_address(listen_address)
    if addr.version == 6:
        return (str(addr),) if enable_ipv6 else ()
    out = [str(addr)]
    if enable_ipv6 and socket.has_ipv6:
        if addr.is_unspecified:
            out.append("::")
        elif addr.is_loopback:
            out.append("::1")
    return tuple(out)


def is_wildcard(address: str) -> bool:
    return ipaddress.ip_address(address).is_unspecified


def make_udp_socket(address: str, spec: ListenSpec, *, reuseport: bool = True) -> socket.socket:
    """A bound, non-blocking UDP socket with kernel receive timestamps."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if spec.interface:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, spec.interface.encode() + b"\0")
        _set_buffer(
            sock,
            socket.SO_RCVBUF,
            SO_RCVBUFFORCE,
            spec.receive_buffer_size,
            logging.WARNING if spec.receive_buffer_configured else logging.INFO,
        )
        _set_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE, spec.send_buffer_size, logging.WARNING)
        enable_rx_options(sock, wildcard=is_wildcard(address))
        sock.bind((address, spec.port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def enable_rx_options(sock: socket.socket, *, wildcard: bool) -> None:
    """Kernel receive timestamps, and the destination address on wildcard sockets.

    On a wildcard socket the reply must leave from the address the request
    was sent to (a multi-homed server, an anycast or load-balanced VIP), so
    the destination comes in IP_PKTINFO and goes back out in sendmsg.
    """
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    if wildcard:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)


def _set_buffer(sock: socket.socket, opt: int, force_opt: int, size: int, level: int) -> None:
    """Ask for a socket buffer of ``size`` bytes; log at ``level`` when the kernel gives less."""
    if size <= 0:
        return
    try:
        # The FORCE variant passes net.core.[rw]mem_max when privileged.
        sock.setsockopt(socket.SOL_SOCKET, force_opt, size)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES):
            raise
        sock.setsockopt(socket.SOL_SOCKET, opt, size)
    got = sock.getsockopt(socket.SOL_SOCKET, opt)
    if got < size:
        log.log(
            level,
            "socket buffer %s is %d bytes, less than the %d asked for (raise net.core.%s)",
            "SO_RCVBUF" if opt == socket.SO_RCVBUF else "SO_SNDBUF",
            got,
            size,
            "rmem_max" if opt == socket.SO_RCVBUF else "wmem_max",
        )


def socket_is_wildcard(sock: socket.socket) -> bool:
    host = sock.getsockname()[0]
    return is_wildcard(host.split("%", 1)[0])
