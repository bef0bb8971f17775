#!/usr/bin/env bash
# The browser side of hotdesk: noVNC from npm (package-lock.json, served at /static/novnc/ from
# node_modules, never copied into the repository) and, as root, Debian's Chromium for the
# browser tests (tests/e2e/test_portal.py; never `playwright install`). Idempotent and quiet.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
status=0

if [ "$(id -u)" -eq 0 ] && ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1; }
fi
if command -v npm >/dev/null 2>&1; then
  lock="$here/package-lock.json"
  stamp="$here/node_modules/.hotdesk-lock"
  if [ ! -f "$here/node_modules/@novnc/novnc/core/rfb.js" ] || ! cmp -s "$lock" "$stamp"; then
    (cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null) \
      && cp "$lock" "$stamp" \
      || { echo "hotdesk: npm ci failed: the browser console (noVNC) is unavailable" >&2; status=1; }
  fi
else
  echo "hotdesk: npm not found: the browser console (noVNC) is unavailable; install nodejs + npm" >&2
  status=1
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
      || { echo "hotdesk: chromium install failed: browser tests will be skipped" >&2; status=1; }
  else
    echo "hotdesk: not root: chromium not installed; browser tests will be skipped" >&2
  fi
fi
exit $status
