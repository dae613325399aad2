"""Issue 4 end to end: rate limiting, access control and authentication on the running daemon.

Loopback tests use a high port; ntpdig only talks to port 123, so those run
the daemon in a network namespace the test creates (root only; CI runs as
root). chronyd runs only with -Q (never touches the clock).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simple_ntpd.runtime.control_socket import request
from tests.integration.helpers import (
    IS_ROOT,
    NetNs,
    basic_config,
    chronyd,
    free_udp_port,
    needs_root,
    run_client,
    running_daemon,
    sntp_query,
    tool,
)

pytestmark = pytest.mark.integration

VECTORS = Path(__file__).parents[1] / "vectors" / "mac"


def counters(ctl: Path) -> dict[str, int]:
    # Workers copy their counters to shared memory shortly after the sockets
    # go quiet; let them.
    time.sleep(0.25)
    reply = request(str(ctl), "counters")
    out: dict[str, int] = {}
    for group in ("counters", "drops"):
        out.update(reply[group])  # type: ignore[arg-type]
    return out


def burst(source: str, port: int, count: int, wait: float = 1.0) -> list[bytes]:
    """``count`` requests from ``source``, each from a fresh socket (fresh source port)."""
    socks = []
    try:
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((source, 0))
            s.setblocking(False)
            s.sendto(struct.pack("!B39xQ", 0x23, 1000 + i), ("127.0.0.1", port))
            socks.append(s)
        replies: list[bytes] = []
        deadline = time.monotonic() + wait
        pending = set(socks)
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(list(pending), [], [], 0.05)
            for s in ready:
                replies.append(s.recv(512))
                pending.discard(s)
        return replies
    finally:
        for s in socks:
            s.close()


# -- rate limiting and access control, live on loopback ---------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("guarded")
    port = free_udp_port()
    ctl = tmp / "ctl.sock"
    cfg = basic_config(
        port,
        workers=2,
        security="\n".join(
            [
                'allow_query_from = ["127.0.0.0/8", "::1"]',
                'deny_query_from = ["127.0.0.4"]',
                "kod_deny = true",
                "enable_rate_limiting = true",
                "max_queries_per_minute = 60",
                "rate_limit_burst = 5",
                "rate_limit_kod_log2 = 1",
                'trusted_networks = ["127.0.0.1"]',
            ]
        ),
        extra=f'\n[monitoring]\ncontrol_socket = "{ctl}"\n',
    )
    with running_daemon(tmp, cfg, port):
        yield port, ctl


def test_burst_from_one_address_is_limited_while_another_is_served(guarded) -> None:  # type: ignore[no-untyped-def]
    port, ctl = guarded
    before = counters(ctl)
    replies = burst("127.0.0.2", port, 40)
    normal = [r for r in replies if r[1] != 0]
    kisses = [r for r in replies if r[1] == 0]
    # Burst of 5 (one more if a token refilled during the test); the rest
    # limited, one in two answered with a RATE kiss. Every request came from a
    # new source port: without steering to one worker, two workers would
    # answer up to twice the burst.
    assert 5 <= len(normal) <= 6, len(normal)
    assert all(len(r) == 48 and r[12:16] == b"RATE" and r[0] >> 6 == 3 for r in kisses)
    assert 15 <= len(kisses) <= 18, len(kisses)
    # Another client is served normally, while the first one is limited.
    other = burst("127.0.0.3", port, 3)
    assert len(other) == 3 and all(r[1] == 2 and r[12:16] == b"TEST" for r in other)
    after = counters(ctl)
    assert after["kod_rate"] - before["kod_rate"] == len(kisses)
    assert after["rate_limited"] - before["rate_limited"] == 40 - len(normal) - len(kisses)
    # The trusted address is never limited.
    assert len([r for r in burst("127.0.0.1", port, 30) if r[1] == 2]) == 30


def test_denied_address_gets_deny_kiss(guarded) -> None:  # type: ignore[no-untyped-def]
    port, ctl = guarded
    before = counters(ctl)
    (reply,) = burst("127.0.0.4", port, 1)
    assert len(reply) == 48 and reply[1] == 0 and reply[12:16] == b"DENY"
    assert struct.unpack("!Q", reply[40:48])[0] == 1000  # echoes the request, no time
    assert counters(ctl)["kod_deny"] == before["kod_deny"] + 1
    assert sntp_query("::1", port) is not None


# -- authentication: ntpdig (port 123, namespace) and chronyd --------------------------------


def _keyfile(tmp: Path, name: str, lines: str) -> Path:
    path = tmp / name
    path.write_text(lines)
    path.chmod(0o600)
    return path


NTPDIG_KEYS = (VECTORS / "ntpdig.keys").read_text().replace("5 M shortkey\n", "")


@needs_root
def test_ntpdig_authenticated_md5_sha1_aes_sha256(tmp_path: Path) -> None:
    keys = _keyfile(tmp_path, "server.keys", NTPDIG_KEYS)
    wrong = _keyfile(
        tmp_path, "wrong.keys", NTPDIG_KEYS.replace("1 MD5 ntpsecret", "1 MD5 notthesecret")
    )
    ctl = tmp_path / "ctl.sock"

    def config(require: bool) -> str:
        return basic_config(
            123,
            ipv6=False,
            security=f"enable_authentication = {'true' if require else 'false'}",
            extra=f'\n[monitoring]\ncontrol_socket = "{ctl}"\n',
        ).replace("[performance]", f'auth_key_file = "{keys}"\n\n[performance]')

    ntpdig = tool("ntpdig")

    def query(*args: str) -> tuple[int, str]:
        r = run_client([ntpdig, "-j", "-t", "2", *args, "127.0.0.1"], netns=ns.name)
        return r.returncode, r.stdout + r.stderr

    # Authentication not required at first, so that the harness's plain
    # readiness probe is answered; then required through a reload.
    with NetNs() as ns, running_daemon(tmp_path, config(False), 123, netns=ns.name) as d:
        for key_id in (1, 2, 3, 4, 8):  # MD5, SHA1, AES128CMAC, SHA256 ASCII, SHA256 hex
            rc, out = query("-a", str(key_id), "-k", str(keys))
            assert rc == 0 and '"stratum":2' in out.replace(" ", ""), (key_id, out)
        assert counters(ctl)["authenticated"] == 5
        # A wrong key never gets an authenticated response: a crypto-NAK,
        # which ntpdig rejects.
        rc, out = query("-a", "1", "-k", str(wrong))
        assert rc != 0 and '"stratum"' not in out, out
        got = counters(ctl)
        assert got["authenticated"] == 5 and got["crypto_nak"] == 1

        (tmp_path / "simple-ntpd.conf").write_text(config(True))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "configuration reloaded" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # the new worker generation takes over
        rc, out = query()
        assert rc != 0 and '"stratum"' not in out, out
        assert counters(ctl)["auth_required"] >= 1
        rc, out = query("-a", "2", "-k", str(keys))
        assert rc == 0, out
        assert d.log().count("keys loaded") >= 1


def _running_daemon_with_keys(tmp: Path, keys: Path, port: int, extra_security: str = ""):  # type: ignore[no-untyped-def]
    ctl = tmp / "ctl.sock"
    cfg = basic_config(
        port,
        security=extra_security,
        extra=f'\n[monitoring]\ncontrol_socket = "{ctl}"\n',
    ).replace("[performance]", f'auth_key_file = "{keys}"\n\n[performance]')
    return running_daemon(tmp, cfg, port), ctl


def _chronyd_with_key(tmp: Path, port: int, keyfile: Path, key_id: int, timeout: int) -> str:
    r = run_client(
        [
            chronyd(),
            "-Q",
            "-u",
            "root" if IS_ROOT else str(os.getuid()),
            "-t",
            str(timeout),
            "-f",
            "/dev/null",
            f"server 127.0.0.1 port {port} key {key_id} iburst minpoll -6 maxpoll -6 maxsamples 2",
            f"keyfile {keyfile}",
            f"pidfile {tmp}/chronyd-{key_id}.pid",
        ],
        timeout=timeout + 15,
    )
    return r.stdout + r.stderr


@pytest.mark.parametrize(
    ("key_id", "name"), [(1, "MD5"), (2, "SHA1"), (3, "AES128"), (4, "SHA256")]
)
def test_chronyd_with_key_accepts_authenticated_response(
    tmp_path: Path, key_id: int, name: str
) -> None:
    keys = _keyfile(tmp_path, "chrony.keys", (VECTORS / "chronyd.keys").read_text())
    port = free_udp_port()
    daemon, ctl = _running_daemon_with_keys(tmp_path, keys, port)
    with daemon:
        out = _chronyd_with_key(tmp_path, port, keys, key_id, 10)
        assert "System clock wrong by" in out, (name, out)
        assert counters(ctl)["authenticated"] >= 1


def test_chronyd_with_wrong_key_gets_no_authenticated_response(tmp_path: Path) -> None:
    server_keys = _keyfile(tmp_path, "server.keys", (VECTORS / "chronyd.keys").read_text())
    client_keys = _keyfile(tmp_path, "client.keys", "1 MD5 HEX:00112233445566778899\n")
    port = free_udp_port()
    daemon, ctl = _running_daemon_with_keys(tmp_path, server_keys, port)
    with daemon:
        out = _chronyd_with_key(tmp_path, port, client_keys, 1, 4)
        assert "System clock wrong by" not in out, out
        got = counters(ctl)
        assert got["authenticated"] == 0 and got["crypto_nak"] >= 1


# -- files, privileges --------------------------------------------------------------------


def _daemon(*args: str) -> tuple[int, str]:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "simple_ntpd.daemon.cli", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return r.returncode, r.stdout + r.stderr


def test_unsafe_key_and_config_files_refuse_to_start(tmp_path: Path) -> None:
    keys = _keyfile(tmp_path, "k", "1 MD5 topsecretvalue\n")
    port = free_udp_port()
    text = basic_config(port).replace("[performance]", f'auth_key_file = "{keys}"\n\n[performance]')
    conf = tmp_path / "d.conf"
    conf.write_text(text)
    conf.chmod(0o644)
    rc, out = _daemon("--config", str(conf), "--test-config")
    assert rc == 0, out
    assert "security: authentication: 1 keys loaded" in out
    assert "topsecretvalue" not in out

    keys.chmod(0o640)
    for mode in ("--test-config", "--foreground"):
        rc, out = _daemon("--config", str(conf), mode)
        assert rc == 1 and f"{keys}: accessible by group" in out, out
    keys.chmod(0o600)

    conf.chmod(0o666)
    rc, out = _daemon("--config", str(conf), "--foreground")
    assert rc == 1 and f"{conf}: writable by others" in out, out
    conf.chmod(0o644)

    keys.write_text("1 MD5 fine\n2 SHA1 topsecretvalue-but-not-hex-and-long\n")
    rc, out = _daemon("--config", str(conf), "--test-config")
    assert rc == 1 and f"{keys}:2:" in out and "topsecretvalue" not in out, out

    # Authentication required and no key file: refused.
    conf.write_text(
        basic_config(port, security="enable_authentication = true").replace(
            "[performance]", f'auth_key_file = "{tmp_path / "nokeys"}"\n\n[performance]'
        )
    )
    rc, out = _daemon("--config", str(conf), "--test-config")
    assert rc == 1 and "does not exist" in out, out


@needs_root
def test_unknown_user_is_a_clear_error(tmp_path: Path) -> None:
    port = free_udp_port()
    conf = tmp_path / "d.conf"
    conf.write_text(basic_config(port, user="no-such-user-xyz"))
    conf.chmod(0o644)
    rc, out = _daemon("--config", str(conf), "--foreground")
    assert rc != 0 and "unknown user 'no-such-user-xyz'" in out, out


def _status_ids(pid: int) -> tuple[str, str, str]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return fields["Uid"].split()[0], fields["Gid"].split()[0], fields["CapEff"].strip()


@needs_root
def test_started_as_root_runs_as_nobody_and_answers(tmp_path: Path) -> None:
    if shutil.which("pgrep") is None:
        pytest.skip("pgrep missing")  # procps is a test dependency
    import subprocess

    port = free_udp_port()
    ctl = tmp_path / "ctl.sock"
    cfg = basic_config(
        port,
        user="nobody",
        security='group = "nogroup"',
        extra=f'\n[monitoring]\ncontrol_socket = "{ctl}"\n',
    )
    with running_daemon(tmp_path, cfg, port) as d:
        children = subprocess.run(
            ["pgrep", "-P", str(d.proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) == 2
        for pid in [d.proc.pid, *map(int, children)]:
            assert _status_ids(pid) == ("65534", "65534", "0000000000000000"), pid
        assert sntp_query("127.0.0.1", port) is not None
        # The control socket was created before the drop and still answers.
        assert counters(ctl)["responded"] >= 1
        assert "dropped privileges to uid 65534" in d.log()


def _signed_query(port: int, key_id: int, keys_text: str) -> bytes | None:
    from simple_ntpd.auth import parse_key_file
    from simple_ntpd.server.auth import sign_request, verify_reply

    keys = parse_key_file(keys_text, "client")
    key = keys.trusted(key_id)
    assert key is not None
    req = sign_request(struct.pack("!B39xQ", 0x1B, 0xABCDEF), key)  # NTPv3, as chronyd
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.sendto(req, ("127.0.0.1", port))
        try:
            reply = s.recv(512)
        except TimeoutError:
            return None
    return reply if verify_reply(keys, reply, key_id) else None


def test_key_file_reloaded_on_sighup_and_a_bad_one_keeps_the_old_keys(tmp_path: Path) -> None:
    first = "1 SHA1 HEX:0123456789abcdef0123456789abcdef01234567\n"
    second = "1 SHA1 HEX:00000000000000000000000000000000000000ff\n"
    keys = _keyfile(tmp_path, "server.keys", first)
    port = free_udp_port()
    daemon, _ctl = _running_daemon_with_keys(tmp_path, keys, port)
    with daemon as d:

        def reload_and_wait(count: int) -> None:
            d.signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                log = d.log()
                if log.count("configuration reloaded") + log.count("reload failed") >= count:
                    break
                time.sleep(0.1)
            time.sleep(0.3)  # the new worker generation takes over

        assert _signed_query(port, 1, first) is not None
        keys.write_text(second)
        reload_and_wait(1)
        assert _signed_query(port, 1, second) is not None
        assert _signed_query(port, 1, first) is None
        keys.write_text("1 SHA1 not-hex-and-longer-than-twenty\n")
        reload_and_wait(2)
        assert "reload failed, keeping the running configuration" in d.log()
        assert f"{keys}:1:" in d.log() and "not-hex" not in d.log()
        assert _signed_query(port, 1, second) is not None
