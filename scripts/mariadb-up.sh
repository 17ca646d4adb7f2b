#!/usr/bin/env bash
# Starts the host's MariaDB server when it is not running, and makes sure a
# monitoring user exists with its credentials in a 0600 my.cnf-style file, and,
# given a second file, an admin user for the agent's site operations (it
# creates and drops site databases and users).
# Usage: scripts/mariadb-up.sh <credentials-file> [<admin-credentials-file>]. Idempotent.
# With MARIADB_SOCKET set, it works on that server (e.g. the one of
# scripts/mariadb-private.sh, where the caller is root through the socket)
# instead of the host's.
#
# On the host's server the users are named after the folder of the
# credentials file (hybrid_exporter_<8 hex>), so that two agents (two
# checkouts, two roots) never reset each other's passwords.
set -euo pipefail
creds=${1:?usage: mariadb-up.sh <credentials-file> [<admin-credentials-file>]}
admin=${2:-}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
mariadb_root=($sudo mariadb)
suffix=_$(realpath -m "$(dirname "$creds")" | sha256sum | cut -c1-8)
if [ -n "${MARIADB_SOCKET:-}" ]; then
  mariadb_root=(mariadb --socket="$MARIADB_SOCKET")
  suffix=""
fi

if [ -z "${MARIADB_SOCKET:-}" ] && ! $sudo mariadb-admin ping --silent >/dev/null 2>&1; then
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

socket=$("${mariadb_root[@]}" -N -B -e "SELECT @@socket")

# ensure_user <file> <user> <grants> [<suffix>]: an existing credentials file that still
# logs in is kept as it is; otherwise the user gets a new random password.
ensure_user() {
  local file=$1 user=$2 grants=$3 suffix=${4:-}
  if [ -f "$file" ] && mariadb --defaults-extra-file="$file" -e "SELECT 1" >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$(dirname "$file")"
  local password
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  # The password goes to the server on stdin, never on a command line.
  "${mariadb_root[@]}" <<SQL
CREATE USER IF NOT EXISTS '${user}'@'localhost';
ALTER USER '${user}'@'localhost' IDENTIFIED BY '${password}';
GRANT ${grants} TO '${user}'@'localhost' ${suffix};
SQL
  local tmp
  tmp=$(umask 077 && mktemp "$file.XXXXXX")
  printf '[client]\nuser = %s\npassword = %s\nsocket = %s\n' "$user" "$password" "$socket" >"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$file"
  echo "mariadb-up: user $user ready, credentials in $file"
}

ensure_user "$creds" "hybrid_exporter$suffix" "PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.*"
if [ -n "$admin" ]; then
  ensure_user "$admin" "hybrid_admin$suffix" "ALL PRIVILEGES ON *.*" "WITH GRANT OPTION"
fi
