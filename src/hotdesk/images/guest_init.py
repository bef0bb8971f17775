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
agent_url=""
agent_desktop=""
agent_token=""
__AGENT_FUNCTIONS__
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hotdesk.name=*) name="$(httpd -d "${arg#hotdesk.name=}")" ;;
        hotdesk.id=*) id="${arg#hotdesk.id=}" ;;
        hotdesk.agent=*) agent_url="${arg#hotdesk.agent=}" ;;
        hotdesk.desktop=*) agent_desktop="${arg#hotdesk.desktop=}" ;;
        hotdesk.token=*) agent_token="${arg#hotdesk.token=}" ;;
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
network_up
if [ -n "$agent_url" ]; then
    agent_loop </dev/null &
fi
while true; do
    setsid -c sh -l </dev/tty1 >/dev/tty1 2>&1
    sleep 1
done
"""

# QEMU user networking: the guest is 10.0.2.15, the host (the broker) is reachable as 10.0.2.2.
# The agent (docs/guest-agent.md) posts "ready" until the broker accepts it (HTTP 200: busybox
# wget fails on any other status), then a heartbeat every AGENT_HEARTBEAT_SECONDS.  Debian's
# static busybox wget has no working -T (it crashes): `timeout` bounds each request instead.
AGENT_HEARTBEAT_SECONDS = 10
AGENT_FUNCTIONS = r"""
network_up() {
    ip link set lo up
    [ -e /sys/class/net/eth0 ] || return 0
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
    echo "hotdesk: eth0 10.0.2.15/24 via 10.0.2.2"
}
agent_post() {
    timeout 10 wget -q -O /tmp/agent-reply --header 'Content-Type: application/json' \
        --post-data "$agent_body" "$agent_url/api/v1/agent/$1" 2>/dev/null
}
agent_loop() {
    agent_body="{\"desktop\":\"$agent_desktop\",\"token\":\"$agent_token\",\"version\":\"demo-1\"}"
    until agent_post ready; do sleep 2; done
    echo "HOTDESK-AGENT ready sent"
    while true; do
        sleep __HEARTBEAT__
        agent_post heartbeat || echo "hotdesk: heartbeat not acknowledged"
    done
}
""".replace("__HEARTBEAT__", str(AGENT_HEARTBEAT_SECONDS))

ACPI_POWER_SCRIPT = """#!/bin/sh
echo "hotdesk: power button pressed, powering off" >/dev/console
sync
poweroff -f
"""


def render_init(modules: tuple[str, ...]) -> str:
    """The /init script that loads ``modules`` in order and runs the agent loop."""
    return INIT_SCRIPT.replace("__MODULES__", " ".join(modules)).replace(
        "__AGENT_FUNCTIONS__", AGENT_FUNCTIONS.strip("\n")
    )
