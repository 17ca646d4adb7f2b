package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// host is the server overview: node_exporter's metrics as the agent exports
// them, plus the agent's own directories, processes and collectors.
func host() spec {
	return spec{
		name:        "host",
		uid:         "hybrid-host",
		title:       "Hybrid / Server overview",
		description: "A customer server as the hybrid agent sees it: CPU, memory, disks, network, processes, and the agent's collectors.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVariable(),
			instanceVariable(),
		},
		sections: []section{
			{title: "Overview", panels: []cog.Builder[dashboard.Panel]{
				statPanel("Agent", "Whether the control core's last scrape of the agent succeeded.", unitNone,
					series(`up{job="hybrid-agent", instance=~"$instance"}`, "{{instance}}")).
					Mappings(upDown()).
					Thresholds(thresholds("red", level{1, "green"})).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("Uptime", "Time since the server booted.", unitSeconds,
					series(`time() - node_boot_time_seconds{instance=~"$instance"}`, "{{instance}}")).
					Thresholds(thresholds("orange", level{3600, "green"})).
					GraphMode(common.BigValueGraphModeNone),
				gaugePanel("CPU busy", "Share of CPU time not idle, over all cores.",
					series(`1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle", instance=~"$instance"}[$__rate_interval]))`, "{{instance}}")),
				gaugePanel("Memory used", "Share of memory not available to new processes (MemAvailable), cache that can be dropped excluded.",
					series(`1 - node_memory_MemAvailable_bytes{instance=~"$instance"} / node_memory_MemTotal_bytes{instance=~"$instance"}`, "{{instance}}")),
				gaugePanel("Root disk used", "Share of the root filesystem's space not available to unprivileged users.",
					series(`1 - node_filesystem_avail_bytes{mountpoint="/", instance=~"$instance"} / node_filesystem_size_bytes{mountpoint="/", instance=~"$instance"}`, "{{instance}}")),
				statPanel("Failing collectors", "Collectors of the agent whose last run failed; their metrics are missing or stale. See the Agent row.", unitNone,
					series(`sum by (instance) (1 - hybrid_exporter_collector_success{instance=~"$instance"})`, "{{instance}}")).
					Thresholds(thresholds("green", level{1, "red"})),
			}},
			{title: "CPU", panels: []cog.Builder[dashboard.Panel]{
				stacked(timeSeries("CPU usage by mode", "Share of all cores' time spent in each mode but idle; iowait is time idle while waiting for disk, steal time taken by the hypervisor.", unitPercent,
					series(`avg by (instance, mode) (rate(node_cpu_seconds_total{mode!="idle", instance=~"$instance"}[$__rate_interval]))`, "{{instance}} {{mode}}"))).
					Max(1),
				timeSeries("Load average", "Runnable and uninterruptible tasks averaged over 1, 5 and 15 minutes, beside the number of cores: a load above it means waiting.", unitShort,
					series(`node_load1{instance=~"$instance"}`, "{{instance}} 1m"),
					series(`node_load5{instance=~"$instance"}`, "{{instance}} 5m"),
					series(`node_load15{instance=~"$instance"}`, "{{instance}} 15m"),
					series(`count by (instance) (node_cpu_seconds_total{mode="idle", instance=~"$instance"})`, "{{instance}} cores")),
				withLimits(timeSeries("Pressure stall", "Share of time at least one task waited for CPU, memory or IO (Linux PSI); sustained values above 10 % mean the server is short of that resource.", unitPercent,
					series(`rate(node_pressure_cpu_waiting_seconds_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} cpu"),
					series(`rate(node_pressure_memory_waiting_seconds_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} memory"),
					series(`rate(node_pressure_io_waiting_seconds_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} io")),
					thresholds("green", level{0.1, "orange"}, level{0.25, "red"})),
				timeSeries("Context switches and forks", "Context switches and new processes per second.", unitOpsPS,
					series(`rate(node_context_switches_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} context switches"),
					series(`rate(node_forks_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} forks")),
			}},
			{title: "Memory", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Memory", "Memory in use (total minus what new processes could get, MemAvailable), page cache and buffers (mostly reclaimable), and unused memory, against the total.", unitBytes,
					series(`node_memory_MemTotal_bytes{instance=~"$instance"} - node_memory_MemAvailable_bytes{instance=~"$instance"}`, "{{instance}} used"),
					series(`node_memory_Cached_bytes{instance=~"$instance"} + node_memory_Buffers_bytes{instance=~"$instance"}`, "{{instance}} cache and buffers"),
					series(`node_memory_MemFree_bytes{instance=~"$instance"}`, "{{instance}} free"),
					series(`node_memory_MemTotal_bytes{instance=~"$instance"}`, "{{instance}} total")),
				timeSeries("Swap and major page faults", "Swap in use, and pages read from disk because they were not in memory; both rising together means memory is short.", unitBytes,
					series(`node_memory_SwapTotal_bytes{instance=~"$instance"} - node_memory_SwapFree_bytes{instance=~"$instance"}`, "{{instance}} swap used"),
					series(`rate(node_vmstat_pgmajfault{instance=~"$instance"}[$__rate_interval])`, "{{instance}} major faults/s")).
					OverrideByRegexp(".*major faults/s", []dashboard.DynamicConfigValue{
						{Id: "unit", Value: unitOpsPS},
						{Id: "custom.axisPlacement", Value: "right"},
					}),
				bars(timeSeries("OOM kills", "Processes the kernel killed for lack of memory, bench containers' included.", unitShort,
					series(`increase(node_vmstat_oom_kill{instance=~"$instance"}[$__rate_interval])`, "{{instance}}"))).
					Decimals(0),
				timeSeries("Open file descriptors", "File handles allocated on the whole server.", unitShort,
					series(`node_filefd_allocated{instance=~"$instance"}`, "{{instance}} allocated")),
			}},
			{title: "Disks", panels: []cog.Builder[dashboard.Panel]{
				withLimits(timeSeries("Filesystem space used", "Share of each filesystem's space not available to unprivileged users (pseudo filesystems left out).", unitPercent,
					series(`1 - node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs", instance=~"$instance"} / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs", instance=~"$instance"}`, "{{instance}} {{mountpoint}}")),
					usage()).
					Max(1),
				timeSeries("Directory sizes", "Space used by the folders the agent watches (benches, backups, the MariaDB data folder), scanned in the background.", unitBytes,
					series(`hybrid_host_directory_used_bytes{instance=~"$instance"}`, "{{instance}} {{kind}} {{path}}")),
				timeSeries("Disk throughput", "Bytes read and written per second, per block device.", unitBytesPS,
					series(`rate(node_disk_read_bytes_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{device}} read"),
					series(`rate(node_disk_written_bytes_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{device}} written")),
				withLimits(timeSeries("Disk busy", "Share of time each block device had IO in flight; near 100 % the device is saturated.", unitPercent,
					series(`rate(node_disk_io_time_seconds_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{device}}")),
					usage()).
					Max(1),
			}},
			{title: "Network", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Network traffic", "Bytes received and sent per second per interface, loopback and container interfaces left out.", unitBytesPS,
					series(`rate(node_network_receive_bytes_total{device!~"lo|veth.*|docker.*|br-.*", instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{device}} received"),
					series(`rate(node_network_transmit_bytes_total{device!~"lo|veth.*|docker.*|br-.*", instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{device}} sent")),
				timeSeries("Network errors and drops", "Packets per second received or sent with errors, or dropped.", unitPktsPS,
					series(`rate(node_network_receive_errs_total{instance=~"$instance"}[$__rate_interval]) + rate(node_network_receive_drop_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{device}} receive"),
					series(`rate(node_network_transmit_errs_total{instance=~"$instance"}[$__rate_interval]) + rate(node_network_transmit_drop_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{device}} transmit")),
				timeSeries("TCP connections", "Established TCP connections and sockets in TIME_WAIT.", unitShort,
					series(`node_netstat_Tcp_CurrEstab{instance=~"$instance"}`, "{{instance}} established"),
					series(`node_sockstat_TCP_tw{instance=~"$instance"}`, "{{instance}} time wait")),
				timeSeries("TCP retransmits and listen drops", "Segments sent again per second, and connections dropped because a listen queue was full (nginx or a bench not accepting fast enough).", unitOpsPS,
					series(`rate(node_netstat_Tcp_RetransSegs{instance=~"$instance"}[$__rate_interval])`, "{{instance}} retransmits"),
					series(`rate(node_netstat_TcpExt_ListenDrops{instance=~"$instance"}[$__rate_interval])`, "{{instance}} listen drops")),
			}},
			{title: "Processes", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Processes by user", "Processes running as each user (frappe's benches, mysql, root, ...).", unitShort,
					series(`hybrid_host_processes{instance=~"$instance"}`, "{{instance}} {{user}}")).
					Span(8),
				timeSeries("CPU by user", "CPU used by each user's processes, in cores.", unitShort,
					series(`rate(hybrid_host_process_cpu_seconds_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{user}}")).
					AxisLabel("cores").
					Span(8),
				timeSeries("Resident memory by user", "Memory resident in RAM for each user's processes.", unitBytes,
					series(`hybrid_host_process_resident_memory_bytes{instance=~"$instance"}`, "{{instance}} {{user}}")).
					Span(8),
			}},
			{title: "Agent", panels: []cog.Builder[dashboard.Panel]{
				stateTimeline("Collector status", "Whether each of the agent's collectors succeeded at each scrape; a failing collector does not fail the scrape, its metrics are just missing.",
					series(`hybrid_exporter_collector_success{instance=~"$instance"}`, "{{instance}} {{collector}}")).
					Mappings(mappings(valueText{"0", "failing", "red"}, valueText{"1", "ok", "green"})).
					Thresholds(thresholds("red", level{1, "green"})),
				timeSeries("Collector duration", "Time each collector took at the last scrape.", unitSeconds,
					series(`hybrid_exporter_collector_duration_seconds{instance=~"$instance"}`, "{{instance}} {{collector}}")).
					Span(24),
			}},
		},
	}
}
