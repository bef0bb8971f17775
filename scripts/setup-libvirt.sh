#!/bin/sh
# Install and start libvirt + QEMU for hotdesk's libvirt driver (Debian 12), then build
# libvirt-python into a virtualenv.  Idempotent, quiet on success, fast when all is there.
#
#   scripts/setup-libvirt.sh [VENV]        (VENV defaults to .venv)
#
# Needs root; as another user it explains what to do and exits 0 without changing anything.
# Details go to $HOTDESK_SETUP_LOG (default /var/tmp/hotdesk-setup-libvirt.log).
set -eu

VENV="${1:-.venv}"
LOG="${HOTDESK_SETUP_LOG:-/var/tmp/hotdesk-setup-libvirt.log}"
URI="qemu:///system"
LIBVIRT_PYTHON="libvirt-python==12.8.0"
PACKAGES="qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev \
pkg-config gcc cpio tini busybox-static"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-libvirt: not root, nothing done. Run as root (sudo $0 $VENV) to install" \
         "and start libvirt/QEMU; see docs/libvirt.md for the manual steps."
    exit 0
fi

fail() {
    echo "setup-libvirt: $1 (details in $LOG)" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
}

log() { echo "[$(date '+%F %T')] $*" >>"$LOG"; }

missing_packages() {
    for pkg in $PACKAGES; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        case "$status" in
            *" installed") ;;
            *) echo "$pkg" ;;
        esac
    done
}

install_packages() {
    missing=$(missing_packages)
    [ -z "$missing" ] && return 0
    log "installing: $missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y --no-install-recommends $missing >>"$LOG" 2>&1; then
        log "install failed; running apt-get update once and retrying"
        apt-get update >>"$LOG" 2>&1 || fail "apt-get update failed"
        # shellcheck disable=SC2086
        apt-get install -y --no-install-recommends $missing >>"$LOG" 2>&1 \
            || fail "apt-get install failed"
    fi
}

fix_kvm_perms() {
    [ -e /dev/kvm ] || return 0
    if getent group kvm >/dev/null 2>&1; then
        chgrp kvm /dev/kvm && chmod 0660 /dev/kvm || log "could not fix /dev/kvm permissions"
    fi
}

daemon_running() { pgrep -x "$1" >/dev/null 2>&1; }

start_daemons() {
    if ! daemon_running virtlogd; then
        log "starting virtlogd"
        virtlogd -d >>"$LOG" 2>&1 || fail "virtlogd did not start"
    fi
    if ! daemon_running libvirtd; then
        log "starting libvirtd under tini"
        # tini -s reaps the QEMU processes libvirtd kills (fast destroy without systemd).
        setsid tini -s -- libvirtd >>"$LOG" 2>&1 </dev/null &
    fi
    waited=0
    until virsh -c "$URI" version >/dev/null 2>&1; do
        waited=$((waited + 1))
        [ "$waited" -gt 60 ] && fail "libvirtd did not answer on $URI within 60 s"
        sleep 1
    done
}

install_python_binding() {
    [ -x "$VENV/bin/python" ] || fail "no virtualenv at $VENV"
    if "$VENV/bin/python" -c 'import libvirt, sys; sys.exit(libvirt.getVersion() == 0)' \
        >/dev/null 2>&1 \
        && "$VENV/bin/python" -m pip show libvirt-python 2>/dev/null \
            | grep -qx "Version: ${LIBVIRT_PYTHON#*==}"; then
        return 0
    fi
    log "pip install $LIBVIRT_PYTHON into $VENV"
    "$VENV/bin/python" -m pip install "$LIBVIRT_PYTHON" >>"$LOG" 2>&1 \
        || fail "pip install $LIBVIRT_PYTHON failed"
}

log "setup-libvirt start (venv $VENV)"
install_packages
fix_kvm_perms
start_daemons
install_python_binding
log "setup-libvirt done"
