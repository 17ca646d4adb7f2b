#!/usr/bin/env bash
# `make bench`: our exporters beside the peers operators compare us with, on this
# machine, scraped the same number of times:
#   host:    hybrid-agent (host collectors only)  vs Debian's prometheus-node-exporter (defaults)
#   mariadb: hybrid-agent (MariaDB collector only) vs Debian's prometheus-mysqld-exporter (defaults), same server, same user
#   bench:   hybrid-agent (bench collector only) with BENCH_CONTAINERS labelled containers (target: < 100 ms CPU per scrape)
#   rules:   hybrid monitor vs Debian's prometheus evaluating the same rules over RULEBENCH_SERVERS simulated servers
#   memory:  RSS (anonymous and file-backed) of hybrid-agent host-only, MariaDB-only and whole (every collector and the job API) beside node_exporter and mysqld_exporter, after N scrapes of each
#   sitelog: real nginx sending SITELOG_RATE requests/s for SITELOG_SECONDS s of access log lines to the agent's reader: every one counted, and its CPU per 1,000
# Prints p50/p99 scrape latency, CPU per scrape and RSS of each, and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
ONLY=${ONLY:-host mariadb bench memory rules sitelog}   # e.g. ONLY=host make bench
only() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
BENCH_CONTAINERS=${BENCH_CONTAINERS:-200}
export RULEBENCH_SERVERS=${RULEBENCH_SERVERS:-500}
work=$(mktemp -d)
pids=()
containers=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ ${#containers[@]} -gt 0 ]; then docker rm -f "${containers[@]}" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/hybrid-agent" ./cmd/hybrid-agent # as make build
go build -o "$work/scrapebench" ./test/scrapebench

wait_http() { # wait_http <url> [user:pass]
  for _ in $(seq 1 100); do
    if curl -sf ${2:+-u "$2"} -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "bench: $1 did not answer" >&2
  return 1
}

start_agent() { # start_agent <name> <port> <yaml body> [<api yaml>]; sets agent_pid
  local dir="$work/$1"
  mkdir -p "$dir/agent"
  cp "$work/mariadb.cnf" "$dir/agent/mariadb.cnf" 2>/dev/null || true
  # Exporters only unless told: the job API (its queue, nginx) is not what is compared.
  printf 'root: %s\nlog_level: warn\n%s\n%s\n' "$dir" "${4:-$'api:\n  enabled: false'}" "$3" >"$dir/agent.yml"
  "$work/hybrid-agent" --config "$dir/agent.yml" --web.listen-address "127.0.0.1:$2" 2>"$dir/agent.log" &
  agent_pid=$!
  pids+=("$agent_pid")
  for _ in $(seq 1 100); do [ -f "$dir/agent/metrics.password" ] && break; sleep 0.1; done
  wait_http "http://127.0.0.1:$2/metrics" "hybrid:$(cat "$dir/agent/metrics.password")"
}

if only host; then
echo "== host: hybrid-agent vs prometheus-node-exporter $(prometheus-node-exporter --version 2>&1 | head -1 | awk '{print $3}')"
start_agent host 19470 $'mariadb:\n  enabled: false\nbench:\n  enabled: false'
ours=$agent_pid
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 2>"$work/node.log" &
peer=$!; pids+=("$peer")
wait_http http://127.0.0.1:19100/metrics
"$work/scrapebench" -n "$N" -title "host" \
  -target "hybrid-agent host,http://127.0.0.1:19470/metrics,$ours,hybrid,$work/host/agent/metrics.password" \
  -target "node_exporter,http://127.0.0.1:19100/metrics,$peer"
kill "$ours" "$peer"
fi

if only mariadb; then
echo
echo "== mariadb: hybrid-agent vs prometheus-mysqld-exporter"
bash scripts/mariadb-up.sh "$work/mariadb.cnf" >/dev/null
start_agent mariadb 19471 $'host:\n  enabled: false\nbench:\n  enabled: false'
ours=$agent_pid
prometheus-mysqld-exporter --config.my-cnf="$work/mariadb.cnf" --web.listen-address=127.0.0.1:19104 2>"$work/mysqld.log" &
peer=$!; pids+=("$peer")
wait_http http://127.0.0.1:19104/metrics
"$work/scrapebench" -n "$N" -title "mariadb" \
  -target "hybrid-agent mariadb,http://127.0.0.1:19471/metrics,$ours,hybrid,$work/mariadb/agent/metrics.password" \
  -target "mysqld_exporter,http://127.0.0.1:19104/metrics,$peer"
kill "$ours" "$peer"
fi

if only bench; then
echo
echo "== bench: hybrid-agent with $BENCH_CONTAINERS bench containers (target: < 100 ms CPU per scrape)"
CGO_ENABLED=0 go build -o "$work/img/burner" ./test/burner
printf 'FROM scratch\nCOPY burner /burner\nENTRYPOINT ["/burner"]\n' >"$work/img/Dockerfile"
docker build -q -t hybrid-bench/burner:latest "$work/img" >/dev/null
run_id=$$
for i in $(seq 1 "$BENCH_CONTAINERS"); do
  name="hybrid-benchmark-$run_id-$i"
  docker run -d --name "$name" --label "io.hybrid.bench=bench-$i" --memory 64m hybrid-bench/burner:latest idle >/dev/null
  containers+=("$name")
  [ $((i % 50)) -eq 0 ] && echo "  started $i/$BENCH_CONTAINERS containers"
done
start_agent bench 19472 $'host:\n  enabled: false\nmariadb:\n  enabled: false'
ours=$agent_pid
sleep 2 # let the inventory settle
"$work/scrapebench" -n "$N" -title "bench ($BENCH_CONTAINERS containers)" \
  -target "hybrid-agent bench,http://127.0.0.1:19472/metrics,$ours,hybrid,$work/bench/agent/metrics.password"
fi

if only memory; then
echo
echo "== memory: RSS after $N scrapes, hybrid-agent beside the peers (VmRSS; anonymous + file-backed from /proc/<pid>/status)"
rss_row() { # rss_row <name> <pid>: the process's memory, in MiB
  awk -v name="$1" '/^VmRSS/{r=$2} /^VmHWM/{h=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2}
    END{printf "| %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB |\n", name, r/1024, a/1024, f/1024, h/1024}' "/proc/$2/status"
}
rss_of() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
[ -f "$work/mariadb.cnf" ] || bash scripts/mariadb-up.sh "$work/mariadb.cnf" >/dev/null
prometheus-node-exporter --web.listen-address=127.0.0.1:19110 2>"$work/node-mem.log" &
node=$!; pids+=("$node")
prometheus-mysqld-exporter --config.my-cnf="$work/mariadb.cnf" --web.listen-address=127.0.0.1:19114 2>"$work/mysqld-mem.log" &
mysqld=$!; pids+=("$mysqld")
wait_http http://127.0.0.1:19110/metrics
wait_http http://127.0.0.1:19114/metrics
start_agent mem-host 19480 $'mariadb:\n  enabled: false\nbench:\n  enabled: false'
mem_host=$agent_pid
start_agent mem-mariadb 19481 $'host:\n  enabled: false\nbench:\n  enabled: false'
mem_mariadb=$agent_pid
# The whole agent: every collector, the job API with its queue, its own nginx
# (on loopback ports here) and the sites' request metrics.
start_agent mem-all 19482 $'sites:\n  nginx:\n    listen: "127.0.0.1:19483"\n    probe_listen: "127.0.0.1:19484"' \
  $'api:\n  enabled: true\n  listen_address: 127.0.0.1:19485'
mem_all=$agent_pid
"$work/scrapebench" -n "$N" -title "memory: scrapes" \
  -target "node_exporter,http://127.0.0.1:19110/metrics,$node" \
  -target "mysqld_exporter,http://127.0.0.1:19114/metrics,$mysqld" \
  -target "hybrid-agent host,http://127.0.0.1:19480/metrics,$mem_host,hybrid,$work/mem-host/agent/metrics.password" \
  -target "hybrid-agent mariadb,http://127.0.0.1:19481/metrics,$mem_mariadb,hybrid,$work/mem-mariadb/agent/metrics.password" \
  -target "hybrid-agent whole,http://127.0.0.1:19482/metrics,$mem_all,hybrid,$work/mem-all/agent/metrics.password" >/dev/null
echo
echo "| process | RSS | anonymous | file-backed | peak RSS |"
echo "|---|---:|---:|---:|---:|"
rss_row node_exporter "$node"
rss_row mysqld_exporter "$mysqld"
rss_row "hybrid-agent host" "$mem_host"
rss_row "hybrid-agent mariadb" "$mem_mariadb"
rss_row "hybrid-agent whole" "$mem_all"
echo
awk -v h="$(rss_of "$mem_host")" -v m="$(rss_of "$mem_mariadb")" -v a="$(rss_of "$mem_all")" \
  -v n="$(rss_of "$node")" -v y="$(rss_of "$mysqld")" 'BEGIN{
  printf "host / node_exporter: %.2fx (target <= 1)\n", h/n
  printf "mariadb / mysqld_exporter: %.2fx (target <= 1)\n", m/y
  printf "whole / node_exporter: %.2fx (target <= 1.2)\n", a/n }'
kill "$node" "$mysqld" "$mem_host" "$mem_mariadb" "$mem_all"
fi

if only rules; then
echo
echo "== rules: hybrid monitor vs Debian's prometheus, the same rules over $RULEBENCH_SERVERS simulated servers"
bash scripts/rulebench.sh
fi

if only sitelog; then
echo
echo "== sitelog: nginx's access log lines to the agent, ${SITELOG_RATE:-10000} requests/s for ${SITELOG_SECONDS:-10} s (32 keep-alive connections), every one counted"
HYBRID_SITELOG_RATE=${SITELOG_RATE:-10000} HYBRID_SITELOG_SECONDS=${SITELOG_SECONDS:-10} \
  go test -count=1 -run 'TestRequestMetrics_Load_EveryRequestCounted$' -v ./agent/nginx/ | grep -E 'requests in|^(--- |ok|FAIL)|Error|expected|actual'
fi
