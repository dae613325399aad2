"""The embedded default configuration: what ``simple-ntpd --default-config`` (``make run``) uses.

It is kept as INI text, commented, so that it doubles as a small readable example; it goes
through exactly the same parser and schema as a file.
"""

from __future__ import annotations

DEFAULT_CONFIG_TEXT = """\
# simple-ntpd embedded default configuration (simple-ntpd --default-config).
#
# A development server: unprivileged port on loopback, serving this machine's own clock as a
# LOCAL reference. It never changes the system clock. Copy deployment/configs/production.conf
# for a real deployment.

[network]
listen_address = 127.0.0.1
listen_port = 11123          # unprivileged; NTP's own port 123 needs root or CAP_NET_BIND_SERVICE
enable_ipv6 = true           # with 127.0.0.1 this also serves ::1

[ntp_server]
# Serving an unsynchronized system clock is what chrony calls `local stratum 10`: a stratum
# high enough that clients prefer any real time source over this one.
reference_clock = "LOCAL"
stratum = 10
reference_id = "LOCL"

[performance]
worker_threads = 1

[logging]
level = "INFO"
output = "console"
log_format = "text"

[security]
# Started as root, drop to an account every system has: the port is unprivileged
# and nothing here needs root after binding. Production uses a dedicated "ntp" user.
user = "nobody"
group = ""                   # nobody's primary group

[monitoring]
# The control socket lives beside the checkout, so `make run` needs no privileges:
# `simple-ntpd status --socket .cache/run/simple-ntpd.sock`.
control_socket = ".cache/run/simple-ntpd.sock"
"""
