"""Listening sockets: the receive buffer the daemon asks for, and how it reports a short one."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest

from simple_ntpd.config.load import parse_config_text
from simple_ntpd.config.schema import DEFAULT_RECEIVE_BUFFER
from simple_ntpd.runtime.sockets import ListenSpec, make_udp_socket
from simple_ntpd.runtime.supervisor import listen_spec

# The largest size the schema accepts; the kernel never grants it (it halves anything above
# INT_MAX / 2 before doubling), privileged or not, so it always comes back short.
TOO_BIG = 2**31 - 1


def _rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


def _spec(size: int, *, configured: bool) -> ListenSpec:
    return ListenSpec(
        addresses=("127.0.0.1",),
        port=0,
        receive_buffer_size=size,
        receive_buffer_configured=configured,
    )


def test_the_default_buffer_is_asked_for() -> None:
    sock = make_udp_socket("127.0.0.1", _spec(DEFAULT_RECEIVE_BUFFER, configured=False))
    try:
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        sock.close()
    # Root passes net.core.rmem_max (SO_RCVBUFFORCE); anyone else is capped by it. The
    # kernel doubles what it grants, for its bookkeeping.
    size = DEFAULT_RECEIVE_BUFFER
    granted = size if os.geteuid() == 0 else min(size, _rmem_max())
    assert got == 2 * granted


def test_zero_leaves_the_kernel_default() -> None:
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock = make_udp_socket("127.0.0.1", _spec(0, configured=True))
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == plain.getsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF
        )
    finally:
        sock.close()
        plain.close()


@pytest.mark.parametrize(("configured", "level"), [(True, logging.WARNING), (False, logging.INFO)])
def test_a_short_buffer_is_a_warning_only_when_configured(
    caplog: pytest.LogCaptureFixture, configured: bool, level: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="simple_ntpd.runtime.sockets")
    make_udp_socket("127.0.0.1", _spec(TOO_BIG, configured=configured)).close()
    short = [r for r in caplog.records if "less than the" in r.getMessage()]
    assert [r.levelno for r in short] == [level]
    assert "SO_RCVBUF" in short[0].getMessage() and "rmem_max" in short[0].getMessage()


def test_listen_spec_knows_whether_the_size_was_configured() -> None:
    base = '[network]\nlisten_address = "127.0.0.1"\n'
    spec = listen_spec(parse_config_text(base).config)
    assert (spec.receive_buffer_size, spec.receive_buffer_configured) == (1 << 20, False)
    spec = listen_spec(parse_config_text(base + 'receive_buffer_size = "4MB"\n').config)
    assert spec.receive_buffer_configured is True
    assert spec.receive_buffer_size > DEFAULT_RECEIVE_BUFFER
    # Configured to the default's own value, or by the environment: still configured.
    spec = listen_spec(parse_config_text(base + f"receive_buffer_size = {1 << 20}\n").config)
    assert spec.receive_buffer_configured is True
    env = {"SIMPLE_NTPD_NETWORK__RECEIVE_BUFFER_SIZE": "0"}
    spec = listen_spec(parse_config_text(base, env=env).config)
    assert (spec.receive_buffer_size, spec.receive_buffer_configured) == (0, True)
