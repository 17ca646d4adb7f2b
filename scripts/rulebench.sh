#!/usr/bin/env bash
# Rule evaluation at scale: `hybrid monitor` beside Debian's prometheus, both
# scraping the same RULEBENCH_SERVERS simulated agents (test/rulebench, about
# 1250 series each) every 15s and evaluating the same rule files (rules/*.yml
# but *_test.yml) every 15s, side by side on this machine.
# After a warm-up of RULEBENCH_DURATION (so that rate() windows fill), samples
# each one's /metrics RULEBENCH_SAMPLES times, one evaluation interval apart,
# and prints a Markdown table: the whole rule set's evaluation time per
# iteration (sum over groups of prometheus_rule_group_last_duration_seconds,
# median of the samples), missed iterations, RSS, CPU over the sampling window,
# head series, scrape health, and the ratios ours / prometheus.
#   RULEBENCH_SERVERS=500 RULEBENCH_DURATION=5m RULEBENCH_SAMPLES=6 bash scripts/rulebench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SERVERS=${RULEBENCH_SERVERS:-500}
DURATION=${RULEBENCH_DURATION:-5m}
SAMPLES=${RULEBENCH_SAMPLES:-6}
PORT=${RULEBENCH_PORT:-19580} # ours, PORT+1 prometheus, PORT+2 simulator stats
INTERVAL=15
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}

seconds() { # 90, 90s, 5m, 1h -> seconds
  case "$1" in
    *h) echo $((${1%h} * 3600)) ;; *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;;
  esac
}
warmup=$(seconds "$DURATION")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${RULEBENCH_KEEP:-}" ]; then echo "rulebench: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

go build -o "$work/hybrid" ./cmd/hybrid
go build -o "$work/rulebench" ./test/rulebench

wait_for() { # wait_for <seconds> <command...>
  local n=$(($1 * 10)); shift
  for _ in $(seq 1 "$n"); do if "$@" >/dev/null 2>&1; then return 0; fi; sleep 0.1; done
  echo "rulebench: timed out waiting for: $*" >&2
  return 1
}

"$work/rulebench" -servers "$SERVERS" -targets "$work/targets.txt" -stats "127.0.0.1:$((PORT + 2))" 2>"$work/rulebench.log" &
sim=$!; pids+=("$sim")
wait_for 60 test -s "$work/targets.txt"

mkdir -p "$work/rules"
for f in rules/*.yml; do case "$f" in *_test.yml) ;; *) cp "$f" "$work/rules/" ;; esac; done
rule_files=$(for f in "$work"/rules/*.yml; do printf '  - %s\n' "$f"; done)

# Ours: targets become one job each, job="hybrid-agent", server=<name>.
{
  printf 'data_dir: %s\nscrape_interval: %ss\nscrape_timeout: 10s\nevaluation_interval: %ss\n' "$work/ours" "$INTERVAL" "$INTERVAL"
  printf 'log_level: error\nexternal_url: http://127.0.0.1:%s\nweb:\n  listen_address: 127.0.0.1:%s\n' "$PORT" "$PORT"
  printf 'rule_files:\n%s\ntargets:\n' "$rule_files"
  while read -r name addr; do printf -- '  - name: %s\n    address: %s\n' "$name" "$addr"; done <"$work/targets.txt"
} >"$work/monitor.yml"

# Prometheus: the same jobs, labels and rules. ?scraper=prometheus only tells
# the simulator's stats who scraped; the parameter is not a label.
{
  printf 'global:\n  scrape_interval: %ss\n  scrape_timeout: 10s\n  evaluation_interval: %ss\n' "$INTERVAL" "$INTERVAL"
  printf 'rule_files:\n%s\nscrape_configs:\n' "$rule_files"
  while read -r name addr; do
    printf -- '- job_name: "hybrid-agent/%s"\n  params:\n    scraper: [prometheus]\n' "$name"
    printf '  static_configs:\n  - targets: ["%s"]\n    labels:\n      server: "%s"\n' "$addr" "$name"
    printf '  relabel_configs:\n  - target_label: job\n    replacement: hybrid-agent\n'
  done <"$work/targets.txt"
} >"$work/prometheus.yml"
promtool check config "$work/prometheus.yml" >"$work/promtool.log" 2>&1 || { cat "$work/promtool.log" >&2; exit 1; }

"$work/hybrid" monitor --config "$work/monitor.yml" 2>"$work/ours.log" &
ours=$!; pids+=("$ours")
"$PROMETHEUS" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$((PORT + 1))" --log.level=warn 2>"$work/prometheus.log" &
peer=$!; pids+=("$peer")
wait_for 60 test -s "$work/ours/metrics.password"
ours_url="http://127.0.0.1:$PORT/metrics"
ours_auth="hybrid:$(cat "$work/ours/metrics.password")"
peer_url="http://127.0.0.1:$((PORT + 1))/metrics"
wait_for 60 curl -sf -u "$ours_auth" -o /dev/null "$ours_url"
wait_for 60 curl -sf -o /dev/null "$peer_url"

echo "$(cat "$work/rulebench.log"); warming up for ${warmup}s" >&2
for _ in $(seq 1 $((warmup / 5))); do
  sleep 5
  kill -0 "$ours" 2>/dev/null || { echo "rulebench: hybrid monitor died:" >&2; tail "$work/ours.log" >&2; exit 1; }
  kill -0 "$peer" 2>/dev/null || { echo "rulebench: prometheus died:" >&2; tail "$work/prometheus.log" >&2; exit 1; }
done
sleep $((warmup % 5))

scrape_ours() { curl -sf -u "$ours_auth" "$ours_url"; }
scrape_peer() { curl -sf "$peer_url"; }
msum() { # msum <metric> < exposition: sum of its samples
  awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF; n++ } END { printf "%.6g", n ? s : 0 }'
}
cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; } # utime+stime, USER_HZ=100
status() { awk -v k="$2:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; } # MiB
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
recent() { curl -sf "http://127.0.0.1:$((PORT + 2))/stats?within=$((2 * INTERVAL))s" | awk -v s="$1" '$1 == s { print $2 }'; }

cpu0_ours=$(cpu "$ours"); cpu0_peer=$(cpu "$peer"); cpu0_sim=$(cpu "$sim")
missed0_ours=$(scrape_ours | msum prometheus_rule_group_iterations_missed_total)
missed0_peer=$(scrape_peer | msum prometheus_rule_group_iterations_missed_total)
t0=$(date +%s.%N)
: >"$work/eval_ours"; : >"$work/eval_peer"
for i in $(seq 1 "$SAMPLES"); do
  scrape_ours >"$work/ours.prom"; scrape_peer >"$work/peer.prom"
  msum prometheus_rule_group_last_duration_seconds <"$work/ours.prom" >>"$work/eval_ours"; echo >>"$work/eval_ours"
  msum prometheus_rule_group_last_duration_seconds <"$work/peer.prom" >>"$work/eval_peer"; echo >>"$work/eval_peer"
  [ "$i" -lt "$SAMPLES" ] && sleep "$INTERVAL"
done
t1=$(date +%s.%N)
window=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
cpu1_ours=$(cpu "$ours"); cpu1_peer=$(cpu "$peer"); cpu1_sim=$(cpu "$sim")
up_ours=$(recent hybrid); up_peer=$(recent prometheus)
# Scrape health from each one's own TSDB, read after both stopped (ours has
# no query API), at the end of the window.
rss_ours=$(status "$ours" VmRSS); rss_peer=$(status "$peer" VmRSS)
hwm_ours=$(status "$ours" VmHWM); hwm_peer=$(status "$peer" VmHWM)
kill "$ours" "$peer"; wait "$ours" "$peer" 2>/dev/null || true
health() { # health <tsdb dir>: agents up, then scrape_duration_seconds p50 and max
  "$work/rulebench" query -tsdb "$1" -at "$t1" 'count(up{job="hybrid-agent"} == 1)' \
    'quantile(0.5, scrape_duration_seconds{job="hybrid-agent"})' 'max(max_over_time(scrape_duration_seconds{job="hybrid-agent"}[5m]))' | paste -sd' '
}
read -r upq_ours sd_ours sdmax_ours <<<"$(health "$work/ours/tsdb")"
read -r upq_peer sd_peer sdmax_peer <<<"$(health "$work/prometheus")"

eval_ours=$(median <"$work/eval_ours"); eval_peer=$(median <"$work/eval_peer")
missed_ours=$(awk -v a="$missed0_ours" -v b="$(msum prometheus_rule_group_iterations_missed_total <"$work/ours.prom")" 'BEGIN { print b - a }')
missed_peer=$(awk -v a="$missed0_peer" -v b="$(msum prometheus_rule_group_iterations_missed_total <"$work/peer.prom")" 'BEGIN { print b - a }')

row() { # row <label> <ours> <prometheus> [unit]: with ours/prometheus
  awk -v l="$1" -v a="$2" -v b="$3" -v u="${4:-}" 'BEGIN {
    r = (b + 0 != 0) ? sprintf("%.2f", a / b) : "-"
    printf "| %s | %s%s | %s%s | %s |\n", l, a, u, b, u, r }'
}
ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v * 1000 }'; }
cpus() { awk -v a="$1" -v b="$2" -v w="$window" 'BEGIN { printf "%.2f s (%.0f%% of a core)", b - a, 100 * (b - a) / w }'; }
cpudelta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo
echo "### Rule evaluation: hybrid monitor vs prometheus $("$PROMETHEUS" --version 2>&1 | awk 'NR == 1 { print $3 }')"
echo
echo "$SERVERS simulated agents ($(sed -n 's/.*, \([0-9]*\) series.*/\1/p' "$work/rulebench.log") series each), scrape and evaluation every ${INTERVAL}s,"
echo "$(ls "$work/rules" | wc -l) rule files; warm-up ${warmup}s, then $SAMPLES samples over ${window}s; $(nproc) CPUs."
echo
echo "| | hybrid monitor | prometheus | ours / prometheus |"
echo "|---|---|---|---|"
row "rule set evaluation per iteration (median, ms)" "$(ms "$eval_ours")" "$(ms "$eval_peer")"
row "rule groups / rules" "$(msum prometheus_rule_group_rules <"$work/ours.prom" | awk '{print $1}')" "$(msum prometheus_rule_group_rules <"$work/peer.prom")" \
  | sed "s/| \([0-9]*\) | \([0-9]*\) |/| $(grep -c '^prometheus_rule_group_rules' "$work/ours.prom") \/ \1 | $(grep -c '^prometheus_rule_group_rules' "$work/peer.prom") \/ \2 |/"
row "iterations missed in the window" "$missed_ours" "$missed_peer"
row "iterations missed since start" "$(msum prometheus_rule_group_iterations_missed_total <"$work/ours.prom")" "$(msum prometheus_rule_group_iterations_missed_total <"$work/peer.prom")"
row "RSS at the end (VmRSS, MiB)" "$rss_ours" "$rss_peer"
row "peak RSS (VmHWM, MiB)" "$hwm_ours" "$hwm_peer"
row "CPU over the window (s)" "$(cpudelta "$cpu0_ours" "$cpu1_ours")" "$(cpudelta "$cpu0_peer" "$cpu1_peer")"
row "head series" "$(msum prometheus_tsdb_head_series <"$work/ours.prom")" "$(msum prometheus_tsdb_head_series <"$work/peer.prom")"
row "agents scraped in the last $((2 * INTERVAL))s (simulator)" "$up_ours" "$up_peer"
row "targets up (up == 1, own TSDB)" "$upq_ours" "$upq_peer"
row "scrape_duration_seconds p50 (ms)" "$(ms "$sd_ours")" "$(ms "$sd_peer")"
row "scrape_duration_seconds max over 5m (ms)" "$(ms "$sdmax_ours")" "$(ms "$sdmax_peer")"
echo
echo "CPU over the window: hybrid monitor $(cpus "$cpu0_ours" "$cpu1_ours"), prometheus $(cpus "$cpu0_peer" "$cpu1_peer"), simulator $(cpus "$cpu0_sim" "$cpu1_sim")."
echo "Rule set evaluation per sample (ms): ours $(awk '{ printf "%.0f ", $1 * 1000 }' "$work/eval_ours"), prometheus $(awk '{ printf "%.0f ", $1 * 1000 }' "$work/eval_peer")"
if grep -iE 'level=(error|warn)' "$work/prometheus.log" | grep -qv SIGTERM; then
  echo; echo "prometheus warnings/errors (first 5):"; grep -iE 'level=(error|warn)' "$work/prometheus.log" | grep -v SIGTERM | head -5
fi
if [ -s "$work/ours.log" ]; then echo; echo "hybrid monitor errors (first 5):"; head -5 "$work/ours.log"; fi
