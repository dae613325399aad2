"""scripts/install.sh into a staging tree: the package, the files, the permissions."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import REPO

pytestmark = pytest.mark.integration


def test_install_into_a_staging_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "install.sh"),
            "--production",
            "--root",
            str(root),
            "--prefix",
            "/opt/simple-ntpd",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration OK" in r.stdout
    assert "would run: useradd --system" in r.stdout  # no user created in a staging tree

    exe = root / "opt/simple-ntpd/bin/simple-ntpd"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("simple-ntpd ")
    assert os.readlink(root / "usr/local/bin/simple-ntpd") == "/opt/simple-ntpd/bin/simple-ntpd"

    conf = root / "etc/simple-ntpd/simple-ntpd.conf"
    assert conf.read_text() == (REPO / "deployment/configs/production.conf").read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644  # not writable by others: starts
    for unit in ("simple-ntpd.service", "simple-ntpd.socket"):
        assert (root / "etc/systemd/system" / unit).is_file()
    assert (root / "etc/logrotate.d/simple-ntpd").is_file()
    assert (root / "var/lib/simple-ntpd").is_dir() and (root / "var/log/simple-ntpd").is_dir()

    # A second run keeps an operator's configuration.
    conf.write_text(conf.read_text() + "\n# local change\n")
    again = subprocess.run(
        ["bash", str(REPO / "scripts" / "install.sh"), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "keeping the existing" in again.stdout
    assert conf.read_text().endswith("# local change\n")
