#!/usr/bin/env bash
# `make run`: the agent with its exporters on this host, on embedded defaults,
# behind basic auth on localhost. Only the server root is set, to ./.run unless
# ROOT says otherwise, so that trying it out writes nothing outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${ROOT:-$PWD/.run}
bash scripts/deps.sh
mkdir -p "$root/agent"
chmod 700 "$root/agent"
bash scripts/mariadb-up.sh "$root/agent/mariadb.cnf" "$root/agent/mariadb-admin.cnf"
go build -o bin/hybrid-agent ./cmd/hybrid-agent
listen=${LISTEN:-127.0.0.1:9470}
cat <<MSG
hybrid-agent: serving http://$listen/metrics (basic auth)
  user:     hybrid
  password: in $root/agent/metrics.password (created on first start)
  try:      curl -su "hybrid:\$(cat $root/agent/metrics.password)" http://$listen/metrics | head
hybrid-agent: job API on http://127.0.0.1:9475 (bearer token in $root/agent/api-token, created on first start)
  try:      curl -s http://127.0.0.1:9475/ping
            curl -s -H "Authorization: Bearer \$(cat $root/agent/api-token)" http://127.0.0.1:9475/jobs
MSG
exec bin/hybrid-agent --root "$root" --web.listen-address "$listen"
