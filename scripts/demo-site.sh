#!/usr/bin/env bash
# The README's first site: with `make run` going in another terminal, creates
# a bench (the stand-in bench image) and a site on it through the agent's job
# API, shows each job's steps as they end, and asks the site for
# /api/method/ping through nginx. Safe to run again: the job ids are fixed, so
# the agent answers with the jobs it already has.
# Usage: ROOT=.run scripts/demo-site.sh [<bench> [<site>]]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(realpath -m "${ROOT:-$PWD/.run}")
bench=${1:-demo}
site=${2:-demo.example.com}
api=${API:-http://127.0.0.1:9475}
site_listen=${SITE_LISTEN:-127.0.0.1:8080}
image=${IMAGE:-hybrid-test/bench:latest}
token=$(cat "$root/agent/api-token" 2>/dev/null) || { echo "demo-site: no $root/agent/api-token: is make run going?" >&2; exit 1; }
auth=(-H "Authorization: Bearer $token")

# submit <job id> <path> <json>: prints the job id the agent answers with.
submit() {
  local out
  out=$(curl -sS "${auth[@]}" -H "X-Agent-Job-Id: $1" -H 'Content-Type: application/json' -d "$3" "$api$2")
  case $out in
    *'"job"'*) sed -E 's/.*"job":"([^"]+)".*/\1/' <<<"$out" ;;
    *) echo "demo-site: POST $2: $out" >&2; return 1 ;;
  esac
}

# follow <job id>: prints each step once it ends, until the job ends; fails
# when the job does.
follow() {
  local seen="" job status
  while :; do
    job=$(curl -sS "${auth[@]}" "$api/jobs/$1")
    # one line per step: name, status
    while IFS=$'\t' read -r name st; do
      case $st in Success|Failure|Skipped) ;; *) continue ;; esac
      case $seen in *"|$name|"*) continue ;; esac
      seen="$seen|$name|"
      printf '  %-24s %s\n' "$name" "$st"
    done < <(grep -oE '"name":"[^"]*","status":"[A-Za-z]+"' <<<"$job" | sed -E 's/"name":"([^"]*)","status":"([A-Za-z]+)"/\1\t\2/')
    status=$(grep -oE '"status":"[A-Za-z]+"' <<<"$job" | head -1 | cut -d'"' -f4)
    case $status in
      Success) return 0 ;;
      Failure) echo "demo-site: job $1 failed: $(grep -oE '"error":"[^"]*"' <<<"$job" | head -1)" >&2; return 1 ;;
    esac
    sleep 1
  done
}

echo "bench $bench ($image):"
follow "$(submit "demo-bench-$bench" /benches "{\"name\":\"$bench\",\"image\":\"$image\"}")"
echo "site $site on $bench:"
follow "$(submit "demo-site-$site" "/benches/$bench/sites" "{\"name\":\"$site\"}")"
echo "through nginx:"
echo "  curl -H 'Host: $site' http://$site_listen/api/method/ping"
curl -sS -H "Host: $site" "http://$site_listen/api/method/ping"
echo
