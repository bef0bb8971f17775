#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the integration suite.
# Installs Debian's postgresql when missing (root only) and starts the cluster.
set -uo pipefail
log=/tmp/hotdesk-setup-postgres.log
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "hotdesk: PostgreSQL is not running and we are not root: PostgreSQL tests will be skipped" >&2
  exit 0
fi
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "hotdesk: installing PostgreSQL (Debian package)..." >&2
  { [ -n "$(find /var/lib/apt/lists -name '*Packages*' 2>/dev/null | head -1)" ] || apt-get update; } >>"$log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >>"$log" 2>&1 || {
    echo "hotdesk: could not install PostgreSQL (see $log)" >&2; exit 1; }
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  # a throwaway test server: trust local TCP connections, as on the CI machines
  sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/' "$hba"
  sed -i 's/^\(host\s\+all\s\+all\s\+::1\/128\s\+\)\S\+/\1trust/' "$hba"
fi
ver=$(ls /etc/postgresql | sort -V | tail -1)
pg_ctlcluster --skip-systemctl-redirect "$ver" main start >>"$log" 2>&1 || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 0.5
done
echo "hotdesk: PostgreSQL did not start (see $log)" >&2
exit 1
