#!/usr/bin/env bash
# Starts the host's MariaDB server when it is not running, and makes sure a
# monitoring user exists with its credentials in a 0600 my.cnf-style file.
# Usage: scripts/mariadb-up.sh <credentials-file>. Idempotent.
set -euo pipefail
creds=${1:?usage: mariadb-up.sh <credentials-file>}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if ! $sudo mariadb-admin ping --silent >/dev/null 2>&1; then
  echo "mariadb-up: starting MariaDB"
  if [ -d /run/systemd/system ]; then
    $sudo systemctl start mariadb
  else
    $sudo service mariadb start >/dev/null
  fi
  for _ in $(seq 1 60); do
    $sudo mariadb-admin ping --silent >/dev/null 2>&1 && break
    sleep 0.5
  done
  $sudo mariadb-admin ping --silent >/dev/null || { echo "mariadb-up: MariaDB did not start" >&2; exit 1; }
fi

socket=$($sudo mariadb -N -B -e "SELECT @@socket")
# An existing credentials file that still logs in is kept as it is.
if [ -f "$creds" ] && mariadb --defaults-extra-file="$creds" -e "SELECT 1" >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$(dirname "$creds")"
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
# The password goes to the server on stdin, never on a command line.
$sudo mariadb <<SQL
CREATE USER IF NOT EXISTS 'hybrid_exporter'@'localhost';
ALTER USER 'hybrid_exporter'@'localhost' IDENTIFIED BY '${password}' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO 'hybrid_exporter'@'localhost';
SQL
umask 077
tmp=$(mktemp "$creds.XXXXXX")
printf '[client]\nuser = hybrid_exporter\npassword = %s\nsocket = %s\n' "$password" "$socket" >"$tmp"
chmod 600 "$tmp"
mv "$tmp" "$creds"
echo "mariadb-up: monitoring user hybrid_exporter ready, credentials in $creds"
