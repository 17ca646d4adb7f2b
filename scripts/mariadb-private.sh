#!/usr/bin/env bash
# Starts a MariaDB server of `make run`'s own, under <dir>, when it is not
# running: its data, socket, log and pid file stay in <dir>, so trying the
# suite neither changes nor depends on the machine's MariaDB (and two
# checkouts never share users). It listens on loopback and on the Docker
# bridge's gateway, where bench containers reach the host
# (host.docker.internal), on <port>. root logs in only through the socket, as
# the user who runs this script.
# Usage: scripts/mariadb-private.sh <dir> <port>. Idempotent; prints nothing
# but progress. Stop it with: mariadb-admin --socket=<dir>/mariadb.sock shutdown
set -euo pipefail
dir=${1:?usage: mariadb-private.sh <dir> <port>}
port=${2:?usage: mariadb-private.sh <dir> <port>}
dir=$(realpath -m "$dir")
socket=$dir/mariadb.sock
ping() { mariadb-admin --socket="$socket" --connect-timeout=2 ping --silent >/dev/null 2>&1; }

if ping; then
  exit 0
fi

find_bin() {
  command -v "$1" 2>/dev/null || { for d in /usr/sbin /usr/bin /usr/libexec; do [ -x "$d/$1" ] && { echo "$d/$1"; return; }; done; }
}
mariadbd=$(find_bin mariadbd)
install_db=$(find_bin mariadb-install-db)
[ -n "$mariadbd" ] && [ -n "$install_db" ] || { echo "mariadb-private: mariadbd or mariadb-install-db missing (scripts/deps.sh installs them)" >&2; exit 1; }

# The bridge gateway, where containers reach the host; loopback alone if
# Docker has no default bridge.
gateway=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)
if [ -z "$gateway" ] && command -v ip >/dev/null; then
  gateway=$(ip -4 -o addr show docker0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | head -1)
fi
bind=127.0.0.1
[ -n "$gateway" ] && bind="127.0.0.1,$gateway"

mkdir -p "$dir/tmp"
chmod 700 "$dir"
user=$(id -un)
cat >"$dir/my.cnf" <<CNF
[mariadbd]
datadir=$dir/data
socket=$socket
port=$port
bind-address=$bind
pid-file=$dir/mariadbd.pid
log-error=$dir/error.log
tmpdir=$dir/tmp
skip-name-resolve
innodb_buffer_pool_size=128M
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
CNF
chmod 600 "$dir/my.cnf"
runas=()
[ "$(id -u)" -eq 0 ] && runas=(--user=root)

if [ ! -d "$dir/data/mysql" ]; then
  echo "mariadb-private: creating a data directory in $dir/data"
  "$install_db" --defaults-file="$dir/my.cnf" "${runas[@]}" --skip-test-db --skip-name-resolve \
    --auth-root-authentication-method=socket --auth-root-socket-user="$user" >"$dir/install.log" 2>&1 \
    || { echo "mariadb-private: mariadb-install-db failed; see $dir/install.log" >&2; exit 1; }
fi

echo "mariadb-private: starting MariaDB on $bind port $port (socket $socket)"
nohup "$mariadbd" --defaults-file="$dir/my.cnf" "${runas[@]}" >>"$dir/error.log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  ping && exit 0
  sleep 0.5
done
echo "mariadb-private: MariaDB did not start; the end of $dir/error.log:" >&2
tail -20 "$dir/error.log" >&2
exit 1
