package main

import (
	"fmt"
	"strconv"
)

// The families the template lacks, shaped like the agent's collectors export
// them: bench containers, agent jobs, sites and a MariaDB replica.

var benches = []string{"alpha", "beta", "gamma", "delta", "epsilon"}

var jobTypes = []string{
	"Backup Site", "New Site", "Archive Site", "Restore Site", "Migrate Site",
	"Update Site Pull", "Update Site Migrate", "Install App on Site", "Rename Site", "Add Domain",
}

// mysqlCommands are some of the com_* counters mysqld_exporter exports as
// mysql_global_status_commands_total{command}; the rest are numbered to reach
// its usual count.
var mysqlCommands = []string{
	"admin_commands", "alter_db", "alter_table", "analyze", "begin", "call_procedure", "change_db",
	"check", "commit", "create_db", "create_index", "create_table", "create_user", "delete",
	"delete_multi", "drop_db", "drop_index", "drop_table", "flush", "grant", "insert",
	"insert_select", "kill", "lock_tables", "optimize", "purge", "rename_table", "replace",
	"revoke", "rollback", "savepoint", "select", "set_option", "show_binlogs", "show_create_table",
	"show_databases", "show_fields", "show_grants", "show_keys", "show_processlist", "show_status",
	"show_tables", "show_variables", "show_warnings", "stmt_close", "stmt_execute", "stmt_prepare",
	"truncate", "unlock_tables", "update", "update_multi", "xa_commit", "xa_start",
}

const (
	mysqlCommandCount  = 150
	mysqlStatusCount   = 150 // other counters and gauges of SHOW GLOBAL STATUS
	mysqlVariableCount = 200 // SHOW GLOBAL VARIABLES
	sitesPerServer     = 10
)

func labels(kv ...string) string {
	b := []byte{'{'}
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, kv[i]...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, kv[i+1])
	}
	return string(append(b, '}'))
}

// histogram adds a histogram whose _count steps at rate per second with the
// given mean; fracs are the shares of the count at or below each bucket.
func (e *exposition) histogram(name, lbls string, les, fracs []float64, rate, mean float64) {
	inner := lbls[1 : len(lbls)-1]
	start := len(e.samples)
	countAt := start + len(les) + 2 // buckets, +Inf, _sum
	for i, le := range append(les, 0) {
		l, f := "+Inf", 1.0
		if i < len(les) {
			l, f = strconv.FormatFloat(le, 'g', -1, 64), fracs[i]
		}
		e.add(name+"_bucket{"+inner+`,le="`+l+`"}`, bucket, 0, 0)
		e.samples[len(e.samples)-1].frac = f
		e.samples[len(e.samples)-1].countAt = countAt
	}
	e.add(name+"_sum"+lbls, counter, 50*mean, rate*mean)
	e.add(name+"_count"+lbls, steps, 50, rate)
}

func (e *exposition) addGenerated(startUnix float64) {
	e.family("container_cpu_usage_seconds_total", "counter", "CPU time used by the bench container.")
	for _, b := range benches {
		e.add("container_cpu_usage_seconds_total"+labels("name", "bench-"+b, "bench", b), counter, 5e4, 0.3)
	}
	e.family("container_cpu_cfs_throttled_seconds_total", "counter", "Time the bench container was throttled.")
	for _, b := range benches {
		e.add("container_cpu_cfs_throttled_seconds_total"+labels("name", "bench-"+b, "bench", b), counter, 300, 0.005)
	}
	for _, f := range []struct {
		name, typ string
		k         kind
		base      float64
		rate      float64
	}{
		{"container_memory_working_set_bytes", "gauge", gauge, 6e8, 0},
		{"container_memory_usage_bytes", "gauge", gauge, 9e8, 0},
		{"container_spec_memory_limit_bytes", "gauge", static, 4 << 30, 0},
		{"container_oom_events_total", "counter", static, 0, 0},
		{"container_network_receive_bytes_total", "counter", counter, 5e10, 2e5},
		{"container_network_transmit_bytes_total", "counter", counter, 8e10, 4e5},
		{"container_fs_reads_bytes_total", "counter", counter, 2e10, 1e5},
		{"container_fs_writes_bytes_total", "counter", counter, 6e10, 3e5},
		{"hybrid_bench_container_running", "gauge", static, 1, 0},
		{"hybrid_bench_container_healthy", "gauge", static, 1, 0},
		{"hybrid_bench_container_restarts_total", "counter", static, 0, 0},
	} {
		e.family(f.name, f.typ, "Bench container metric.")
		for _, b := range benches {
			e.add(f.name+labels("name", "bench-"+b, "bench", b), f.k, f.base, f.rate)
		}
	}

	e.family("hybrid_agent_jobs_total", "counter", "Agent jobs finished, by type and status.")
	for _, t := range jobTypes {
		e.add("hybrid_agent_jobs_total"+labels("type", t, "status", "Success"), steps, 200, 1.0/600)
		e.add("hybrid_agent_jobs_total"+labels("type", t, "status", "Failure"), steps, 3, 1.0/20000)
	}
	e.family("hybrid_agent_job_duration_seconds", "histogram", "Duration of finished agent jobs.")
	les := []float64{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	fracs := []float64{0.02, 0.1, 0.2, 0.45, 0.65, 0.8, 0.92, 0.97, 0.99, 0.999}
	for _, t := range jobTypes {
		e.histogram("hybrid_agent_job_duration_seconds", labels("type", t), les, fracs, 1.0/600, 90)
	}
	e.family("hybrid_agent_jobs_pending", "gauge", "Agent jobs waiting to run.")
	e.add("hybrid_agent_jobs_pending", gauge, 3, 0)
	e.family("hybrid_agent_oldest_pending_job_age_seconds", "gauge", "Age of the oldest pending job.")
	e.add("hybrid_agent_oldest_pending_job_age_seconds", gauge, 40, 0)
	e.family("hybrid_site_last_backup_timestamp_seconds", "gauge", "End of the last successful backup of each site.")
	for i := range sitesPerServer {
		e.add("hybrid_site_last_backup_timestamp_seconds"+labels("site", fmt.Sprintf("site%d.example.com", i)), static, startUnix-float64(3600*(1+i)), 0)
	}
	e.family("hybrid_site_http_requests_total", "counter", "HTTP requests served per site and status code.")
	for i := range sitesPerServer {
		site := fmt.Sprintf("site%d.example.com", i)
		for _, c := range []struct {
			code string
			rate float64
		}{{"200", 5}, {"301", 0.5}, {"404", 0.3}, {"500", 0.02}} {
			e.add("hybrid_site_http_requests_total"+labels("site", site, "code", c.code), steps, 1e6*c.rate, c.rate)
		}
	}

	e.family("mysql_up", "gauge", "Whether the MariaDB server is up.")
	e.add("mysql_up", static, 1, 0)
	e.family("mysql_global_status_uptime", "untyped", "Generic metric from SHOW GLOBAL STATUS.")
	e.add("mysql_global_status_uptime", counter, 2e6, 1)
	e.family("mysql_global_status_queries", "untyped", "Generic metric from SHOW GLOBAL STATUS.")
	e.add("mysql_global_status_queries", counter, 5e8, 200)
	e.family("mysql_global_status_threads_connected", "untyped", "Generic metric from SHOW GLOBAL STATUS.")
	e.add("mysql_global_status_threads_connected", gauge, 25, 0)
	e.family("mysql_global_status_threads_running", "untyped", "Generic metric from SHOW GLOBAL STATUS.")
	e.add("mysql_global_status_threads_running", gauge, 3, 0)
	e.family("mysql_global_variables_max_connections", "gauge", "Generic gauge metric from SHOW GLOBAL VARIABLES.")
	e.add("mysql_global_variables_max_connections", static, 200, 0)
	repl := labels("channel_name", "", "connection_name", "", "master_host", "10.0.0.2", "master_uuid", "")
	for _, f := range []struct {
		name string
		v    float64
	}{{"seconds_behind_master", 0}, {"slave_io_running", 1}, {"slave_sql_running", 1}, {"sql_delay", 0}} {
		e.family("mysql_slave_status_"+f.name, "gauge", "Generic metric from SHOW SLAVE STATUS.")
		e.add("mysql_slave_status_"+f.name+repl, static, f.v, 0)
	}
	e.family("mysql_global_status_commands_total", "counter", "Total number of executed MySQL commands.")
	for i := range mysqlCommandCount {
		cmd := fmt.Sprintf("cmd_%03d", i)
		if i < len(mysqlCommands) {
			cmd = mysqlCommands[i]
		}
		rate := 0.0
		if i%3 == 0 {
			rate = 2
		}
		e.add("mysql_global_status_commands_total"+labels("command", cmd), counter, 1e5*rate, rate)
	}
	for i := range mysqlStatusCount {
		name := fmt.Sprintf("mysql_global_status_status_%03d", i)
		e.family(name, "untyped", "Generic metric from SHOW GLOBAL STATUS.")
		if i%2 == 0 {
			e.add(name, counter, 1e6, 10)
		} else {
			e.add(name, gauge, 1e3, 0)
		}
	}
	for i := range mysqlVariableCount {
		name := fmt.Sprintf("mysql_global_variables_variable_%03d", i)
		e.family(name, "gauge", "Generic gauge metric from SHOW GLOBAL VARIABLES.")
		e.add(name, static, float64(1024*(i+1)), 0)
	}
}
