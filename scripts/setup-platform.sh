#!/usr/bin/env bash
# Install and start what hotdesk's real drivers and tests need, when we are root.
# Each step is idempotent and quiet; not being root skips with a message (tests then skip).
set -uo pipefail
venv="${1:-.venv}"
here="$(cd "$(dirname "$0")" && pwd)"
for step in setup-postgres.sh setup-libvirt.sh setup-web.sh; do
  if [ -f "$here/$step" ]; then
    bash "$here/$step" "$venv" || echo "hotdesk: $step failed; tests that need it will be skipped" >&2
  fi
done
exit 0
