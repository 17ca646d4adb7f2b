package dashboards

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func parse(t *testing.T, expr string) parser.Expr {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	require.NoError(t, err, "parse %s", expr)
	return e
}

// promQL returns the query's PromQL with the variables substituted by value.
func promQL(t *testing.T, q Query, value func(string) string) string {
	t.Helper()
	expr, err := q.PromQL()
	require.NoError(t, err)
	return substitute(expr, value)
}

func TestQueries_ParseAsPromQL(t *testing.T) {
	for _, d := range all(t) {
		t.Run(d.Name, func(t *testing.T) {
			qs := Queries(d)
			require.NotEmpty(t, qs)
			var variables int
			for _, q := range qs {
				expr, err := q.PromQL()
				require.NoError(t, err)
				_, err = parser.NewParser(parser.Options{}).ParseExpr(SubstituteVariables(expr))
				require.NoError(t, err, "%s: %s", q.Where, q.Expr)
				if q.Variable {
					variables++
				}
			}
			want := 0
			for _, v := range d.Model.Templating.List {
				if v.Type == "query" {
					want++
				}
			}
			require.Equal(t, want, variables, "every query variable is listed")
		})
	}
}

// Queries use template variables only as the value of regex matchers
// (instance=~"$instance"), so that "All" (.+), a multi-value selection
// (a|b) and SubstituteVariables' stand-in all select what they should.
func TestQueries_UseVariablesOnlyInRegexMatchers(t *testing.T) {
	const mark = "VARIABLE_"
	for _, d := range all(t) {
		defined := map[string]bool{}
		for _, v := range d.Model.Templating.List {
			defined[v.Name] = true
		}
		for _, q := range Queries(d) {
			expr := promQL(t, q, func(name string) string {
				require.True(t, defined[name], "%s: $%s is not a variable of %s", q.Where, name, d.Name)
				return mark + name
			})
			inMatchers := 0
			parser.Inspect(parse(t, expr), func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				for _, m := range vs.LabelMatchers {
					if n := strings.Count(m.Value, mark); n > 0 {
						require.Equal(t, labels.MatchRegexp, m.Type, "%s: %s uses a variable, it should be a =~ matcher", q.Where, m)
						require.Equal(t, mark, m.Value[:len(mark)], "%s: %s: the variable should be the whole value", q.Where, m)
						inMatchers += n
					}
				}
				return nil
			})
			require.Equal(t, strings.Count(expr, mark), inMatchers, "%s: a variable outside a label matcher: %s", q.Where, q.Expr)
		}
	}
}

// Every metric a dashboard queries is one the suite exports (or Prometheus
// makes), so a typo or a renamed metric fails here rather than as an empty
// panel. A new metric goes into knownMetrics with where it comes from.
func TestQueries_UseKnownMetrics(t *testing.T) {
	for _, d := range all(t) {
		for _, q := range Queries(d) {
			parser.Inspect(parse(t, promQL(t, q, func(string) string { return allValue })), func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				require.NotEmpty(t, vs.Name, "%s: select series by metric name", q.Where)
				require.True(t, slices.Contains(knownMetrics, vs.Name), "%s: %s is not a metric the suite exports; a new one goes into knownMetrics", q.Where, vs.Name)
				return nil
			})
		}
	}
}

// knownMetrics are the metrics the dashboards may query, by source.
var knownMetrics = []string{
	// Prometheus itself: scrape health, and the rules evaluator's alerts.
	"up", "ALERTS", "ALERTS_FOR_STATE",

	// exporters/host: node_exporter's names (see a scrape of the agent).
	"node_boot_time_seconds",
	"node_context_switches_total",
	"node_cpu_seconds_total",
	"node_disk_io_time_seconds_total",
	"node_disk_read_bytes_total",
	"node_disk_written_bytes_total",
	"node_filefd_allocated",
	"node_filesystem_avail_bytes",
	"node_filesystem_size_bytes",
	"node_forks_total",
	"node_load1", "node_load5", "node_load15",
	"node_memory_Buffers_bytes",
	"node_memory_Cached_bytes",
	"node_memory_MemAvailable_bytes",
	"node_memory_MemFree_bytes",
	"node_memory_MemTotal_bytes",
	"node_memory_SwapFree_bytes",
	"node_memory_SwapTotal_bytes",
	"node_netstat_TcpExt_ListenDrops",
	"node_netstat_Tcp_CurrEstab",
	"node_netstat_Tcp_RetransSegs",
	"node_network_receive_bytes_total",
	"node_network_receive_drop_total",
	"node_network_receive_errs_total",
	"node_network_transmit_bytes_total",
	"node_network_transmit_drop_total",
	"node_network_transmit_errs_total",
	"node_pressure_cpu_waiting_seconds_total",
	"node_pressure_io_waiting_seconds_total",
	"node_pressure_memory_waiting_seconds_total",
	"node_sockstat_TCP_tw",
	"node_vmstat_oom_kill",
	"node_vmstat_pgmajfault",
	// exporters/host: the agent's own.
	"hybrid_exporter_collector_duration_seconds",
	"hybrid_exporter_collector_success",
	"hybrid_host_directory_used_bytes",
	"hybrid_host_process_cpu_seconds_total",
	"hybrid_host_process_resident_memory_bytes",
	"hybrid_host_processes",

	// exporters/mariadb: mysqld_exporter's names (SHOW GLOBAL STATUS and
	// VARIABLES, lower-cased), and the per-database hybrid_mariadb_*.
	"mysql_up",
	"mysql_global_status_aborted_clients",
	"mysql_global_status_aborted_connects",
	"mysql_global_status_buffer_pool_pages",
	"mysql_global_status_bytes_received",
	"mysql_global_status_bytes_sent",
	"mysql_global_status_commands_total",
	"mysql_global_status_connection_errors_total",
	"mysql_global_status_created_tmp_disk_tables",
	"mysql_global_status_created_tmp_tables",
	"mysql_global_status_innodb_buffer_pool_read_requests",
	"mysql_global_status_innodb_buffer_pool_reads",
	"mysql_global_status_innodb_data_read",
	"mysql_global_status_innodb_data_written",
	"mysql_global_status_innodb_row_lock_current_waits",
	"mysql_global_status_innodb_row_lock_waits",
	"mysql_global_status_handlers_total",
	"mysql_global_status_queries",
	"mysql_global_status_questions",
	"mysql_global_status_slow_queries",
	"mysql_global_status_sort_merge_passes",
	"mysql_global_status_threads_connected",
	"mysql_global_status_threads_running",
	"mysql_global_status_uptime",
	"mysql_global_variables_max_connections",
	"mysql_slave_status_seconds_behind_master",
	"hybrid_mariadb_database_size_bytes",
	"hybrid_mariadb_database_tables",

	// exporters/bench: cAdvisor's names, and the inventory's hybrid_bench_*.
	"container_cpu_cfs_throttled_seconds_total",
	"container_cpu_usage_seconds_total",
	"container_fs_reads_bytes_total",
	"container_fs_writes_bytes_total",
	"container_memory_working_set_bytes",
	"container_network_receive_bytes_total",
	"container_network_transmit_bytes_total",
	"container_oom_events_total",
	"container_spec_memory_limit_bytes",
	"hybrid_bench_container_healthy",
	"hybrid_bench_container_last_exit_code",
	"hybrid_bench_container_restarts_total",
	"hybrid_bench_container_running",

	// The agent's jobs and backups.
	"hybrid_agent_job_duration_seconds_bucket",
	"hybrid_agent_job_step_failures_total",
	"hybrid_agent_jobs_pending",
	"hybrid_agent_jobs_total",
	"hybrid_agent_oldest_pending_job_age_seconds",
	"hybrid_site_backup_size_bytes",
	"hybrid_site_last_backup_timestamp_seconds",

	// Sites: blackbox_exporter's probe names, and requests served.
	"probe_duration_seconds",
	"probe_http_status_code",
	"probe_success",
	"hybrid_site_http_requests_total",
}

func TestSubstituteVariables(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`rate(x{instance=~"$instance"}[$__rate_interval])`, `rate(x{instance=~".+"}[1m])`},
		{`rate(x{bench=~"${bench}"}[${__interval}])`, `rate(x{bench=~".+"}[1m])`},
		{`x{site=~"${site:regex}"}`, `x{site=~".+"}`},
		{`x{site=~"[[site]]"}`, `x{site=~".+"}`},
		{`increase(x[$__range]) / $__range_s`, `increase(x[1h]) / 3600`},
		{`x offset $__interval_ms`, `x offset 60000`},
		{`x[$__unknown]`, `x[$__unknown]`},
		{`up{job="hybrid-agent"}`, `up{job="hybrid-agent"}`},
	} {
		require.Equal(t, tc.want, SubstituteVariables(tc.in), tc.in)
	}
}

func TestQuery_PromQL(t *testing.T) {
	for _, tc := range []struct {
		q    Query
		want string
	}{
		{Query{Expr: `sum(rate(x[5m]))`}, `sum(rate(x[5m]))`},
		{Query{Expr: `label_values(up{job="hybrid-agent"}, instance)`, Variable: true}, `up{job="hybrid-agent"}`},
		{Query{Expr: ` label_values( x{a=",)", b=~"$b"} , c ) `, Variable: true}, `x{a=",)", b=~"$b"}`},
		{Query{Expr: `label_values(sum by (a, b) (x), a)`, Variable: true}, `sum by (a, b) (x)`},
		{Query{Expr: `query_result(topk(5, x))`, Variable: true}, `topk(5, x)`},
	} {
		got, err := tc.q.PromQL()
		require.NoError(t, err, tc.q.Expr)
		require.Equal(t, tc.want, got, tc.q.Expr)
	}
	for _, expr := range []string{`label_values(instance)`, `label_names()`, `metrics(node_.*)`, `up`} {
		_, err := Query{Expr: expr, Variable: true}.PromQL()
		require.Error(t, err, expr)
	}
}
