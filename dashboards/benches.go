package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// benches is the bench containers, one per bench, under cAdvisor's names
// plus the agent's hybrid_bench_* inventory.
func benches() spec {
	return spec{
		name:        "benches",
		uid:         "hybrid-benches",
		title:       "Hybrid / Benches",
		description: "The bench containers of each customer server: state, restarts, CPU, memory against the limit, network and disk IO.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVariable(),
			instanceVariable(),
			queryVariable("bench", "Bench", `label_values(hybrid_bench_container_running{instance=~"$instance"}, bench)`),
		},
		sections: []section{
			{title: "Overview", panels: []cog.Builder[dashboard.Panel]{
				statPanel("Running", "Bench containers running.", unitNone,
					series(`sum(hybrid_bench_container_running{instance=~"$instance", bench=~"$bench"})`, "running")).
					Thresholds(thresholds("blue")),
				statPanel("Stopped", "Bench containers that exist but do not run: their sites are down.", unitNone,
					series(`count(hybrid_bench_container_running{instance=~"$instance", bench=~"$bench"} == 0) or vector(0)`, "stopped")).
					Thresholds(thresholds("green", level{1, "red"})),
				statPanel("Unhealthy", "Running bench containers whose healthcheck reports starting or unhealthy (containers without a healthcheck are not counted).", unitNone,
					series(`count(hybrid_bench_container_healthy{instance=~"$instance", bench=~"$bench"} == 0) or vector(0)`, "unhealthy")).
					Thresholds(thresholds("green", level{1, "orange"})),
				statPanel("Restarts", "Container restarts over the dashboard's time range.", unitNone,
					instant(`sum(increase(hybrid_bench_container_restarts_total{instance=~"$instance", bench=~"$bench"}[$__range]))`, "restarts")).
					Thresholds(thresholds("green", level{1, "orange"}, level{5, "red"})).
					Decimals(0).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("OOM kills", "Out of memory kills in bench containers over the dashboard's time range.", unitNone,
					instant(`sum(increase(container_oom_events_total{instance=~"$instance", bench=~"$bench"}[$__range]))`, "oom kills")).
					Thresholds(thresholds("green", level{1, "red"})).
					Decimals(0).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("CPU", "CPU used by the selected bench containers together, in cores.", unitShort,
					series(`sum(rate(container_cpu_usage_seconds_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval]))`, "cores")).
					Thresholds(thresholds("blue")),
			}},
			{title: "State", panels: []cog.Builder[dashboard.Panel]{
				stateTimeline("Running", "Whether each bench container ran at each scrape.",
					series(`hybrid_bench_container_running{instance=~"$instance", bench=~"$bench"}`, "{{name}}")).
					Mappings(mappings(valueText{"0", "stopped", "red"}, valueText{"1", "running", "green"})).
					Thresholds(thresholds("red", level{1, "green"})),
				stateTimeline("Health", "Each bench container's healthcheck: healthy, or starting/unhealthy; containers without a healthcheck have no band.",
					series(`hybrid_bench_container_healthy{instance=~"$instance", bench=~"$bench"}`, "{{name}}")).
					Mappings(mappings(valueText{"0", "unhealthy", "orange"}, valueText{"1", "healthy", "green"})).
					Thresholds(thresholds("orange", level{1, "green"})),
				bars(timeSeries("Restarts", "Restarts of each bench container (a manual start included).", unitShort,
					series(`increase(hybrid_bench_container_restarts_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}}"))).
					Decimals(0),
				statPanel("Last exit code", "Exit code of each container's last exit, 0 when it never exited: 137 is a kill (often out of memory), 143 a stop.", unitNone,
					series(`hybrid_bench_container_last_exit_code{instance=~"$instance", bench=~"$bench"}`, "{{name}}")).
					Mappings(mappings(
						valueText{"0", "0 ok", "green"},
						valueText{"137", "137 killed", "red"},
						valueText{"143", "143 stopped", "orange"},
					)).
					Thresholds(thresholds("green", level{1, "red"})).
					GraphMode(common.BigValueGraphModeNone).
					TextMode(common.BigValueTextModeValueAndName).
					Span(12).
					Height(8),
			}},
			{title: "CPU and memory", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("CPU usage", "CPU used by each bench container, in cores.", unitShort,
					series(`rate(container_cpu_usage_seconds_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}}")).
					AxisLabel("cores"),
				timeSeries("CPU throttling", "Seconds per second each container was held back by its CPU quota; any sustained value means the quota is too small for its load.", unitSeconds,
					series(`rate(container_cpu_cfs_throttled_seconds_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}}")),
				timeSeries("Memory working set", "Memory each container uses that the kernel cannot reclaim (usage minus inactive file cache); what the OOM killer weighs.", unitBytes,
					series(`container_memory_working_set_bytes{instance=~"$instance", bench=~"$bench"}`, "{{name}}")),
				withLimits(timeSeries("Memory against limit", "Working set as a share of the container's memory limit; containers without a limit have no line. Near 100 % the kernel kills processes in the container.", unitPercent,
					series(`container_memory_working_set_bytes{instance=~"$instance", bench=~"$bench"} / (container_spec_memory_limit_bytes{instance=~"$instance", bench=~"$bench"} > 0)`, "{{name}}")),
					usage()).
					Max(1),
				bars(timeSeries("OOM kills", "Out of memory kills in each container.", unitShort,
					series(`increase(container_oom_events_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}}"))).
					Decimals(0).
					Span(24),
			}},
			{title: "Network and disk", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Network traffic", "Bytes received and sent per second by each container, over its interfaces but loopback.", unitBytesPS,
					series(`rate(container_network_receive_bytes_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}} received"),
					series(`rate(container_network_transmit_bytes_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}} sent")),
				timeSeries("Disk IO", "Bytes read and written per second by each container, over all block devices.", unitBytesPS,
					series(`rate(container_fs_reads_bytes_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}} read"),
					series(`rate(container_fs_writes_bytes_total{instance=~"$instance", bench=~"$bench"}[$__rate_interval])`, "{{name}} written")),
			}},
		},
	}
}
