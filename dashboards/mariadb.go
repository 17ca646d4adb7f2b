package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// mariadb is the MariaDB server on each customer server, under
// mysqld_exporter's names, and its databases (one per site).
func mariadb() spec {
	return spec{
		name:        "mariadb",
		uid:         "hybrid-mariadb",
		title:       "Hybrid / MariaDB",
		description: "The MariaDB server of each customer server: availability, queries, connections, InnoDB, and the size of each site's database.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVariable(),
			instanceVariable(),
		},
		sections: []section{
			{title: "Overview", panels: []cog.Builder[dashboard.Panel]{
				statPanel("MariaDB", "Whether the agent's exporter could reach and ping the MariaDB server.", unitNone,
					series(`mysql_up{instance=~"$instance"}`, "{{instance}}")).
					Mappings(upDown()).
					Thresholds(thresholds("red", level{1, "green"})).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("Uptime", "Time since the MariaDB server started.", unitSeconds,
					series(`mysql_global_status_uptime{instance=~"$instance"}`, "{{instance}}")).
					Thresholds(thresholds("orange", level{3600, "green"})).
					GraphMode(common.BigValueGraphModeNone),
				gaugePanel("Connections used", "Connected threads against max_connections; at 100 % new connections (site workers) are refused.",
					series(`mysql_global_status_threads_connected{instance=~"$instance"} / mysql_global_variables_max_connections{instance=~"$instance"}`, "{{instance}}")),
				statPanel("Queries", "Statements executed per second, stored procedures' statements included.", unitOpsPS,
					series(`rate(mysql_global_status_queries{instance=~"$instance"}[$__rate_interval])`, "{{instance}}")).
					Thresholds(thresholds("blue")),
				statPanel("Slow queries", "Statements per second that took longer than long_query_time.", unitOpsPS,
					series(`rate(mysql_global_status_slow_queries{instance=~"$instance"}[$__rate_interval])`, "{{instance}}")).
					Thresholds(thresholds("green", level{0.1, "orange"}, level{1, "red"})),
				statPanel("Databases size", "Data and indexes of every database on the server, as of the agent's last background refresh.", unitBytes,
					series(`sum by (instance) (hybrid_mariadb_database_size_bytes{instance=~"$instance"})`, "{{instance}}")).
					Thresholds(thresholds("blue")),
			}},
			{title: "Queries", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Queries and questions", "Statements per second: questions are those sent by clients, queries include the statements run inside stored programs.", unitOpsPS,
					series(`rate(mysql_global_status_queries{instance=~"$instance"}[$__rate_interval])`, "{{instance}} queries"),
					series(`rate(mysql_global_status_questions{instance=~"$instance"}[$__rate_interval])`, "{{instance}} questions")),
				timeSeries("Top commands", "The ten most frequent statement types (select, insert, update, ...) per second.", unitOpsPS,
					series(`topk(10, rate(mysql_global_status_commands_total{instance=~"$instance"}[$__rate_interval]))`, "{{instance}} {{command}}")),
				withLimits(timeSeries("Slow queries", "Statements per second that took longer than long_query_time; turn on the slow query log to see which.", unitOpsPS,
					series(`rate(mysql_global_status_slow_queries{instance=~"$instance"}[$__rate_interval])`, "{{instance}}")),
					thresholds("green", level{0.1, "orange"}, level{1, "red"})),
				timeSeries("Temporary tables and sorts", "Temporary tables created per second, those written to disk apart, and sort merge passes: high disk counts point at queries sorting or grouping without an index.", unitOpsPS,
					series(`rate(mysql_global_status_created_tmp_tables{instance=~"$instance"}[$__rate_interval])`, "{{instance}} tmp tables"),
					series(`rate(mysql_global_status_created_tmp_disk_tables{instance=~"$instance"}[$__rate_interval])`, "{{instance}} tmp disk tables"),
					series(`rate(mysql_global_status_sort_merge_passes{instance=~"$instance"}[$__rate_interval])`, "{{instance}} sort merge passes")),
			}},
			{title: "Connections", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Threads", "Connected clients, threads running a statement now, and the max_connections limit.", unitShort,
					series(`mysql_global_status_threads_connected{instance=~"$instance"}`, "{{instance}} connected"),
					series(`mysql_global_status_threads_running{instance=~"$instance"}`, "{{instance}} running"),
					series(`mysql_global_variables_max_connections{instance=~"$instance"}`, "{{instance}} max connections")),
				timeSeries("Aborted connections and errors", "Connection attempts that failed, clients that went away without closing, and connection errors by reason, per second.", unitOpsPS,
					series(`rate(mysql_global_status_aborted_connects{instance=~"$instance"}[$__rate_interval])`, "{{instance}} aborted connects"),
					series(`rate(mysql_global_status_aborted_clients{instance=~"$instance"}[$__rate_interval])`, "{{instance}} aborted clients"),
					series(`rate(mysql_global_status_connection_errors_total{instance=~"$instance"}[$__rate_interval])`, "{{instance}} {{error}}")),
				timeSeries("Network traffic", "Bytes per second received from and sent to clients.", unitBytesPS,
					series(`rate(mysql_global_status_bytes_received{instance=~"$instance"}[$__rate_interval])`, "{{instance}} received"),
					series(`rate(mysql_global_status_bytes_sent{instance=~"$instance"}[$__rate_interval])`, "{{instance}} sent")),
				timeSeries("Replication lag", "Seconds the replica's SQL thread is behind its primary; no data on a server that is not a replica.", unitSeconds,
					series(`mysql_slave_status_seconds_behind_master{instance=~"$instance"}`, "{{instance}} {{channel_name}}")),
			}},
			{title: "InnoDB", panels: []cog.Builder[dashboard.Panel]{
				withLimits(timeSeries("Buffer pool hit ratio", "Share of page reads served from the buffer pool rather than disk; below about 99 % the buffer pool is likely too small for the sites' working set.", unitPercent,
					series(`1 - rate(mysql_global_status_innodb_buffer_pool_reads{instance=~"$instance"}[$__rate_interval]) / rate(mysql_global_status_innodb_buffer_pool_read_requests{instance=~"$instance"}[$__rate_interval])`, "{{instance}}")),
					thresholds("red", level{0.95, "orange"}, level{0.99, "green"})).
					Min(0.9).
					Max(1),
				stacked(timeSeries("Buffer pool pages", "Pages of the buffer pool by state: data (clean or dirty), free, and misc (locks, adaptive hash index).", unitShort,
					series(`mysql_global_status_buffer_pool_pages{state=~"data|free|misc", instance=~"$instance"}`, "{{instance}} {{state}}"))),
				timeSeries("Row operations", "Rows read, inserted, updated and deleted per second, from the storage engine handler counters (MariaDB 10.11 no longer reports Innodb_rows_*).", unitOpsPS,
					series(`sum by (instance, handler) (rate(mysql_global_status_handlers_total{handler=~"read_.*|write|update|delete", instance=~"$instance"}[$__rate_interval]))`, "{{instance}} {{handler}}")),
				timeSeries("Row lock waits", "Row lock waits per second, and transactions waiting for a row lock now.", unitShort,
					series(`rate(mysql_global_status_innodb_row_lock_waits{instance=~"$instance"}[$__rate_interval])`, "{{instance}} waits/s"),
					series(`mysql_global_status_innodb_row_lock_current_waits{instance=~"$instance"}`, "{{instance}} waiting now")),
				timeSeries("InnoDB data read and written", "Bytes per second InnoDB read from and wrote to its data files.", unitBytesPS,
					series(`rate(mysql_global_status_innodb_data_read{instance=~"$instance"}[$__rate_interval])`, "{{instance}} read"),
					series(`rate(mysql_global_status_innodb_data_written{instance=~"$instance"}[$__rate_interval])`, "{{instance}} written")).
					Span(24),
			}},
			{title: "Databases", panels: []cog.Builder[dashboard.Panel]{
				barGauge("Largest databases", "The twenty largest databases (one per site), data and indexes, as of the agent's last background refresh.", unitBytes,
					instant(`topk(20, hybrid_mariadb_database_size_bytes{instance=~"$instance"})`, "{{database}}")).
					Thresholds(thresholds("blue")),
				timeSeries("Database size", "Growth of the ten largest databases.", unitBytes,
					series(`topk(10, hybrid_mariadb_database_size_bytes{instance=~"$instance"})`, "{{instance}} {{database}}")),
				barGauge("Tables per database", "Tables in each database (views not counted); a site's count changes with its installed apps.", unitShort,
					instant(`topk(20, hybrid_mariadb_database_tables{instance=~"$instance"})`, "{{database}}")).
					Thresholds(thresholds("blue")).
					Span(24),
			}},
		},
	}
}
