#!/usr/bin/env bash
# Install simple-ntpd on a Debian-like host, the way the deployment guide describes it:
#
#   sudo scripts/install.sh --production [--high-availability]
#
# What it does (each step skipped when already done, so it can be run again to upgrade):
#   1. a virtualenv in PREFIX (default /opt/simple-ntpd) with this checkout installed in it,
#      and /usr/local/bin/simple-ntpd pointing at it;
#   2. the system user and group "ntp" the daemon drops to after binding port 123;
#   3. /etc/simple-ntpd (root, 0755) and /var/log, /var/lib/simple-ntpd (ntp, 0755);
#   4. /etc/simple-ntpd/simple-ntpd.conf from deployment/configs (production.conf with
#      --production, development.conf otherwise), 0644, only if there is none yet;
#   5. the systemd units and the logrotate file, then `systemctl daemon-reload` if systemd runs;
#   6. `simple-ntpd --test-config` on the installed configuration.
# It never starts the service: `systemctl enable --now simple-ntpd` is the operator's call.
#
# --root DIR installs into a staging tree (packaging, tests): every path is under DIR and no
# user is created (the step is printed instead).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/simple-ntpd
ROOT=""
PROFILE=development
HA=0
PYTHON=${PYTHON:-python3}

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --production  --high-availability  --prefix DIR  --root DIR  --help"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --production) PROFILE=production ;;
        --high-availability) HA=1 ;;
        --prefix) PREFIX="$2"; shift ;;
        --root) ROOT="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'install: %s\n' "$*"; }

if [[ -z "$ROOT" && $EUID -ne 0 ]]; then
    echo "install.sh: run as root (or with --root DIR for a staging tree)" >&2
    exit 1
fi

as_owner() {  # chown only in a real install: a staging tree keeps the caller's ownership
    if [[ -z "$ROOT" ]]; then chown "$@"; fi
}

# 1. the package
say "virtualenv $ROOT$PREFIX"
"$PYTHON" -m venv "$ROOT$PREFIX"
"$ROOT$PREFIX/bin/pip" install --quiet --upgrade "$REPO"
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sfn "$PREFIX/bin/simple-ntpd" "$ROOT/usr/local/bin/simple-ntpd"

# 2. the service user
if [[ -n "$ROOT" ]]; then
    say "(staging) would run: useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ntp"
elif ! getent passwd ntp >/dev/null; then
    say "creating system user and group ntp"
    useradd --system --user-group --no-create-home --home-dir /var/lib/simple-ntpd \
        --shell /usr/sbin/nologin ntp
fi

# 3. directories
install -d -m 0755 "$ROOT/etc/simple-ntpd"
for dir in /var/log/simple-ntpd /var/lib/simple-ntpd; do
    install -d -m 0755 "$ROOT$dir"
    as_owner ntp:ntp "$ROOT$dir"
done

# 4. configuration (never overwritten)
CONF="$ROOT/etc/simple-ntpd/simple-ntpd.conf"
if [[ -e "$CONF" ]]; then
    say "keeping the existing $CONF"
else
    say "installing deployment/configs/$PROFILE.conf as $CONF"
    install -m 0644 "$REPO/deployment/configs/$PROFILE.conf" "$CONF"
    as_owner root:root "$CONF"
fi

# 5. service manager and log rotation
install -d -m 0755 "$ROOT/etc/systemd/system" "$ROOT/etc/logrotate.d"
install -m 0644 "$REPO/deployment/systemd/simple-ntpd.service" "$ROOT/etc/systemd/system/"
install -m 0644 "$REPO/deployment/systemd/simple-ntpd.socket" "$ROOT/etc/systemd/system/"
install -m 0644 "$REPO/deployment/logrotate/simple-ntpd" "$ROOT/etc/logrotate.d/simple-ntpd"
if [[ -z "$ROOT" && -d /run/systemd/system ]]; then
    systemctl daemon-reload
fi

# 6. check what was installed
"$ROOT$PREFIX/bin/simple-ntpd" --test-config --config "$CONF"

say "done. Start it with: systemctl enable --now simple-ntpd"
if [[ $HA -eq 1 ]]; then
    say "high availability: point the load balancer's health check at"
    say "  http://<node>:<metrics_port>/health (200 when serving synchronized time, else 503);"
    say "  set [maintenance] maintenance_mode = true and reload (SIGHUP) to drain a node."
fi
