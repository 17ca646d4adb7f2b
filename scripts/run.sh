#!/usr/bin/env bash
# `make run`: the agent with its exporters and job API on this host, on
# embedded defaults, behind basic auth (metrics) and a bearer token (jobs) on
# localhost. Everything it writes is under one folder, ./.run unless ROOT says
# otherwise: the agent's files, the benches, and a MariaDB server of its own
# (scripts/mariadb-private.sh) that bench containers reach on the Docker
# bridge. The stand-in bench image is built when missing, so the quick start
# in the README ends with a site answering through nginx. Ctrl-C stops the
# agent and that MariaDB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(realpath -m "${ROOT:-$PWD/.run}")
listen=${LISTEN:-127.0.0.1:9470}
db_port=${MARIADB_PORT:-3307}
site_listen=${SITE_LISTEN:-127.0.0.1:8080}

bash scripts/deps.sh
mkdir -p "$root/agent"
chmod 700 "$root/agent"
bash scripts/mariadb-private.sh "$root/mariadb" "$db_port"
stop_mariadb() { mariadb-admin --socket="$root/mariadb/mariadb.sock" shutdown >/dev/null 2>&1 || true; }
trap stop_mariadb EXIT
MARIADB_SOCKET="$root/mariadb/mariadb.sock" bash scripts/mariadb-up.sh "$root/agent/mariadb.cnf" "$root/agent/mariadb-admin.cnf"

CGO_ENABLED=0 go build -o bin/hybrid-agent ./cmd/hybrid-agent
image=$(go run ./test/bench/cmd/bench-image)

config=$root/agent/agent.yml
if [ ! -f "$config" ]; then
  cat >"$config" <<YAML
# Written by make run on first start; edit freely, it is not rewritten.
root: $root
host:
  mariadb_datadir: $root/mariadb/data
sites:
  db_port: $db_port      # make run's own MariaDB, on loopback and the Docker bridge
  nginx:
    listen: "$site_listen"
YAML
fi

cat <<MSG
hybrid-agent: serving http://$listen/metrics (basic auth)
  user:     hybrid
  password: in $root/agent/metrics.password (created on first start)
  try:      curl -su "hybrid:\$(cat $root/agent/metrics.password)" http://$listen/metrics | head
hybrid-agent: job API on http://127.0.0.1:9475 (bearer token in $root/agent/api-token, created on first start)
  try:      curl -s http://127.0.0.1:9475/ping
            curl -s -H "Authorization: Bearer \$(cat $root/agent/api-token)" http://127.0.0.1:9475/jobs
sites:  served by nginx on http://$site_listen by Host header; bench image $image
  first site: ROOT=$root bash scripts/demo-site.sh
MSG
bin/hybrid-agent --config "$config" --web.listen-address "$listen" &
agent=$!
trap 'kill -INT $agent 2>/dev/null || true' INT TERM
wait $agent || true
wait $agent 2>/dev/null || true
