"""The demo guest's ``/init`` (busybox sh) and its ACPI power-button handler."""

from __future__ import annotations

# stdout of /init is /dev/console = the last console= on the kernel command line (ttyS0, the
# serial log the broker reads); tty1 is the framebuffer console seen through VNC.
INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/ TERM=linux
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
echo "hotdesk demo guest: kernel $(uname -r), loading modules"
for m in __MODULES__; do
    insmod "/lib/modules/$m.ko" 2>/dev/null || echo "hotdesk: module $m did not load"
done
name="hotdesk desktop"
id="hotdesk-demo"
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hotdesk.name=*) name="$(httpd -d "${arg#hotdesk.name=}")" ;;
        hotdesk.id=*) id="${arg#hotdesk.id=}" ;;
    esac
done
hostname "$id"
mkdir -p /var/run /var/log
acpid -l /tmp/acpid.log || echo "hotdesk: acpid did not start"
i=0
while [ ! -e /dev/tty1 ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
{
    printf '\033c\n\n'
    echo "    ============================================================"
    echo "      hotdesk demo desktop"
    echo ""
    echo "      Desktop: $name"
    echo "      Host:    $id"
    echo "    ============================================================"
    echo ""
} >/dev/tty1 2>/dev/null
echo "=== hotdesk demo desktop: $name ($id), up $(cut -d' ' -f1 /proc/uptime) s ==="
echo "HOTDESK-READY $id"
while true; do
    setsid -c sh -l </dev/tty1 >/dev/tty1 2>&1
    sleep 1
done
"""

ACPI_POWER_SCRIPT = """#!/bin/sh
echo "hotdesk: power button pressed, powering off" >/dev/console
sync
poweroff -f
"""


def render_init(modules: tuple[str, ...]) -> str:
    """The /init script that loads ``modules`` in order."""
    return INIT_SCRIPT.replace("__MODULES__", " ".join(modules))
