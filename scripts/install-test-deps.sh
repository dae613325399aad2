#!/usr/bin/env bash
# Install the tools the tests and the benchmark use (run by `make test-deps`).
#
# Idempotent and quick when everything is already present: it only queries dpkg and runs
# `chronyd -v` / `ntpq -V`, and rewrites nothing that is already up to date.
#
# What it provides:
#   Debian packages  ntpsec-ntpdig ntpsec-ntpdate sntp python3-ntp iproute2 gcc libc6-dev
#                    prometheus (for promtool only; its service is never started), logrotate
#   unpacked tools   .cache/tools/chrony/usr/sbin/chronyd   (chrony conflicts with ntpsec)
#                    .cache/tools/ntpsec/usr/bin/ntpq       (installing ntpsec would start an
#                                                            ntpd that steers this machine's clock)
#   paths file       .cache/tools/env.sh  (CHRONYD, NTPQ, NTPDIG, NTPDATE, SNTP, PROMTOOL, GCC,
#                                         LOGROTATE)
#
# chrony and ntpsec are never installed as packages: `apt-get download` + `dpkg -x` only, so no
# time daemon is ever started on this machine. Package postinst scripts are also kept from
# starting any service by a temporary /usr/sbin/policy-rc.d that answers 101 ("action forbidden").
#
# Not root and no password-less sudo: prints what is missing and carries on (the tests that need a
# missing tool fail loudly on their own). With CI=true, anything missing makes the exit status 1.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO_ROOT/.cache/tools"
CHRONY_DIR="$TOOLS/chrony"
NTPSEC_DIR="$TOOLS/ntpsec"
CHRONYD="$CHRONY_DIR/usr/sbin/chronyd"
NTPQ="$NTPSEC_DIR/usr/bin/ntpq"
ENV_FILE="$TOOLS/env.sh"

APT_PACKAGES=(ntpsec-ntpdig ntpsec-ntpdate sntp python3-ntp iproute2 gcc libc6-dev prometheus logrotate systemd)

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300)

missing=()       # things that could not be provided, reported at the end
updated_lists=0  # apt-get update runs at most once, and only when something is missing
policy_created=0

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

# Root, or password-less sudo, or nothing (developer machine): decides what we may try.
if [[ $EUID -eq 0 ]]; then
    SUDO=()
    can_admin=1
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
    can_admin=1
else
    SUDO=()
    can_admin=0
fi

# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
    # Remove only the policy-rc.d this run created; an existing one (Docker images ship one) stays.
    if [[ $policy_created -eq 1 ]]; then
        "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d || true
    fi
    if [[ -n "${WORK_TMP:-}" ]]; then
        rm -rf "$WORK_TMP"
    fi
}
trap cleanup EXIT
# A signal exits through the EXIT trap too, so a policy-rc.d we created never stays behind.
trap 'exit 1' INT TERM HUP

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

apt_update_once() {
    if [[ $updated_lists -eq 0 && $can_admin -eq 1 ]]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get update -q >&2
        updated_lists=1
    fi
}

guard_services() {
    # invoke-rc.d and deb-systemd-invoke consult policy-rc.d; 101 = no service may be started.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# created by simple-ntpd scripts/install-test-deps.sh\nexit 101\n' |
            "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        policy_created=1
    fi
}

apt_install() {
    # $@: package names that are not installed yet.
    (($# > 0)) || return 0
    if [[ $can_admin -eq 0 ]]; then
        log "not root and no password-less sudo: cannot install $*"
        log "  run: sudo apt-get install --no-install-recommends $*"
        missing+=("$@")
        return 0
    fi
    guard_services
    apt_update_once
    log "apt-get install $*"
    if ! "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "$@" >&2; then
        log "apt-get install failed for: $*"
        missing+=("$@")
    fi
}

has_candidate() {
    local cand
    cand="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [[ -n "$cand" && "$cand" != "(none)" ]]
}

# Unpack package $1 into directory $2 with apt-get download + dpkg -x (never installed).
# $3, if given, is a version to try first. The .deb is kept as $2.deb for dependency lookups.
unpack_package() {
    local pkg=$1 dest=$2 version=${3:-}
    if ! has_candidate "$pkg"; then
        apt_update_once
    fi
    WORK_TMP="${WORK_TMP:-$(mktemp -d)}"
    local dl="$WORK_TMP/$pkg"
    mkdir -p "$dl"
    # As root, apt would download as the _apt user, who cannot write to this private directory.
    local sandbox=()
    [[ $EUID -ne 0 ]] || sandbox=(-o APT::Sandbox::User=root)
    if [[ -n "$version" ]] &&
        (cd "$dl" && apt-get download -q "${sandbox[@]}" "$pkg=$version" >&2); then
        :
    elif ! (cd "$dl" && apt-get download -q "${sandbox[@]}" "$pkg" >&2); then
        log "apt-get download $pkg failed"
        return 1
    fi
    local deb
    deb="$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)"
    [[ -n "$deb" ]] || return 1
    rm -rf "$dest.new"
    mkdir -p "$dest.new"
    dpkg -x "$deb" "$dest.new" || return 1
    rm -rf "$dest"
    mv "$dest.new" "$dest"
    cp "$deb" "$dest.deb"
}

# Library dependencies of an unpacked package (lib* from its Depends), to install with apt.
lib_depends() {
    dpkg-deb -f "$1" Depends | tr ',' '\n' | sed -e 's/[(|].*//' -e 's/ //g' | grep '^lib' || true
}

mkdir -p "$TOOLS"
# Several engineers (and CI jobs) may run this at once in one checkout: one at a time.
exec 9>"$TOOLS/.install.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 600 9 || { log "timed out waiting for $TOOLS/.install.lock"; exit 1; }
fi

# 1. Debian packages.
to_install=()
for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || to_install+=("$pkg")
done
apt_install "${to_install[@]}"
# promtool is all we want from prometheus: its service was not started (policy-rc.d), and it
# should not start at the next boot either.
if [[ " ${to_install[*]} " == *" prometheus "* ]] && is_installed prometheus &&
    command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable prometheus.service >&2 2>&1 || true
fi

# 2. chronyd, unpacked (chrony conflicts with ntpsec in Debian).
chronyd_ok() { [[ -x "$CHRONYD" ]] && "$CHRONYD" -v >/dev/null 2>&1; }
if ! chronyd_ok; then
    if [[ ! -f "$CHRONY_DIR.deb" || ! -x "$CHRONYD" ]]; then
        log "unpacking chrony into $CHRONY_DIR"
        unpack_package chrony "$CHRONY_DIR" || true
    fi
    if [[ -f "$CHRONY_DIR.deb" ]] && ! chronyd_ok; then
        # Usually missing shared libraries on a minimal system (libnettle8, libgnutls30, ...).
        libs=()
        for lib in $(lib_depends "$CHRONY_DIR.deb"); do
            is_installed "$lib" || libs+=("$lib")
        done
        apt_install "${libs[@]}"
    fi
    if chronyd_ok; then
        log "chronyd ready: $("$CHRONYD" -v | head -n 1)"
    else
        log "chronyd is not usable at $CHRONYD"
        missing+=(chronyd)
    fi
fi

# 3. ntpq from the ntpsec package, unpacked (a python script over the python3-ntp module).
ntpq_ok() { [[ -x "$NTPQ" ]] && "$NTPQ" -V >/dev/null 2>&1; }
if ! ntpq_ok; then
    if [[ ! -x "$NTPQ" ]]; then
        log "unpacking ntpsec (for ntpq only) into $NTPSEC_DIR"
        # ntpq imports the python3-ntp module: take the ntpsec build of the same version.
        ntp_version="$(dpkg-query -W -f='${Version}' python3-ntp 2>/dev/null || true)"
        unpack_package ntpsec "$NTPSEC_DIR" "$ntp_version" || true
    fi
    if ntpq_ok; then
        log "ntpq ready: $("$NTPQ" -V 2>&1 | head -n 1)"
    else
        log "ntpq is not usable at $NTPQ (it needs python3 and the python3-ntp package)"
        missing+=(ntpq)
    fi
fi

# 4. Paths for tests and the benchmark (`source .cache/tools/env.sh`). Written only on change.
path_of() { command -v "$1" 2>/dev/null || echo "/usr/bin/$1"; }
env_text="# generated by scripts/install-test-deps.sh; paths of the tools tests and benchmarks use
export CHRONYD='$CHRONYD'
export NTPQ='$NTPQ'
export NTPDIG='$(path_of ntpdig)'
export NTPDATE='$(PATH="$PATH:/usr/sbin" path_of ntpdate)'
export SNTP='$(path_of sntp)'
export PROMTOOL='$(path_of promtool)'
export GCC='$(path_of gcc)'
export LOGROTATE='$(PATH="$PATH:/usr/sbin" path_of logrotate)'"
if [[ ! -f "$ENV_FILE" || "$(cat "$ENV_FILE")" != "$env_text" ]]; then
    printf '%s\n' "$env_text" >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "wrote $ENV_FILE"
fi

# 5. Final check of every tool, by what the tests call rather than by package name.
for tool in ntpdig ntpdate sntp promtool gcc ip logrotate; do
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1; then
        missing+=("$tool")
    fi
done

if ((${#missing[@]} > 0)); then
    # De-duplicate for the report.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "MISSING: ${missing[*]} (tests that need them will fail)"
    if [[ "${CI:-}" == "true" ]]; then
        exit 1
    fi
fi
exit 0
