package mariadb

import (
	"database/sql"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// globalStatus exports SHOW GLOBAL STATUS as mysql_global_status_*, named as
// mysqld_exporter names them: one metric per variable, lower-cased, except
// the groups it folds into labelled metrics (Com_* into commands_total,
// Handler_* into handlers_total, ...).
//
// mysqld_exporter types the ungrouped ones untyped; here they are typed by
// one rule: a variable is a gauge when statusKind says so (a level such as
// Threads_connected, Open_tables, Memory_used, Uptime), otherwise a counter,
// since almost every status variable counts events since the server started.
// Names stay mysqld_exporter's for its dashboards and the mysqld-mixin, so
// these counters do not end in _total.
//
// Each variable's series (descriptor, type, labels) is worked out the first
// time its name is seen and kept, so a scrape only parses the values.
type globalStatus struct {
	prefix                string
	help                  string
	commands              *prometheus.Desc
	handlers              *prometheus.Desc
	connectionErrors      *prometheus.Desc
	bufferPoolPages       *prometheus.Desc
	bufferPoolDirty       *prometheus.Desc
	bufferPoolChanges     *prometheus.Desc
	innodbRowOps          *prometheus.Desc
	performanceSchemaLost *prometheus.Desc

	// Used by one scrape at a time (Update is single-flight). The server's
	// variable names bound byName.
	byName      map[string]*series // by the name as the server returns it; nil: dropped
	lastSamples int                // how many the last scrape had, to size the next
	uptime      float64            // Uptime as of the last scrape, -1 if unknown
}

func newGlobalStatus() *globalStatus {
	const ns = "mysql_global_status_"
	return &globalStatus{
		prefix:   ns,
		help:     "Generic metric from SHOW GLOBAL STATUS.",
		commands: prometheus.NewDesc(ns+"commands_total", "Total number of executed MySQL commands.", []string{"command"}, nil),
		handlers: prometheus.NewDesc(ns+"handlers_total", "Total number of executed MySQL handlers.", []string{"handler"}, nil),
		connectionErrors: prometheus.NewDesc(ns+"connection_errors_total",
			"Total number of MySQL connection errors.", []string{"error"}, nil),
		bufferPoolPages: prometheus.NewDesc(ns+"buffer_pool_pages", "Innodb buffer pool pages by state.", []string{"state"}, nil),
		bufferPoolDirty: prometheus.NewDesc(ns+"buffer_pool_dirty_pages", "Innodb buffer pool dirty pages.", nil, nil),
		bufferPoolChanges: prometheus.NewDesc(ns+"buffer_pool_page_changes_total",
			"Innodb buffer pool page state changes.", []string{"operation"}, nil),
		innodbRowOps: prometheus.NewDesc(ns+"innodb_row_ops_total",
			"Total number of MySQL InnoDB row operations.", []string{"operation"}, nil),
		performanceSchemaLost: prometheus.NewDesc(ns+"performance_schema_lost_total",
			"Total number of MySQL instrumentations that could not be loaded or created due to memory constraints.",
			[]string{"instrumentation"}, nil),
		byName: map[string]*series{},
		uptime: -1,
	}
}

func (s *globalStatus) statement() string { return "SHOW GLOBAL STATUS" }

func (s *globalStatus) failed(err error) error {
	s.uptime = -1
	return fmt.Errorf("show global status: %w", err)
}

func (s *globalStatus) read(rows *sql.Rows, emit func(prometheus.Metric)) error {
	s.uptime = -1
	var name, raw sql.RawBytes // valid until the next row: nothing copied
	samples := make([]sample, 0, s.lastSamples)
	for rows.Next() {
		if err := rows.Scan(&name, &raw); err != nil {
			return err
		}
		ser, known := s.byName[string(name)]
		if !known {
			ser = s.series(metricName(string(name)))
			s.byName[string(name)] = ser
		}
		if ser == nil {
			continue
		}
		v, ok := parseValue(raw)
		if !ok {
			continue // text values (Ssl_cipher, Innodb_buffer_pool_load_status, ...)
		}
		if string(name) == "Uptime" {
			s.uptime = v
		}
		samples = append(samples, sample{series: ser, value: v})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.lastSamples = len(samples)
	for i := range samples {
		emit(&samples[i])
	}
	return nil
}

// series maps one lower-cased status variable to its series, or nil for the
// ones mysqld_exporter drops.
func (s *globalStatus) series(name string) *series {
	counter := func(d *prometheus.Desc, label string) *series {
		return newSeries(d, prometheus.CounterValue, label)
	}
	if rest, ok := strings.CutPrefix(name, "com_"); ok {
		return counter(s.commands, rest)
	}
	if rest, ok := strings.CutPrefix(name, "handler_"); ok {
		return counter(s.handlers, rest)
	}
	if rest, ok := strings.CutPrefix(name, "connection_errors_"); ok {
		return counter(s.connectionErrors, rest)
	}
	if rest, ok := strings.CutPrefix(name, "innodb_rows_"); ok {
		return counter(s.innodbRowOps, rest)
	}
	if rest, ok := strings.CutPrefix(name, "performance_schema_"); ok {
		return counter(s.performanceSchemaLost, rest)
	}
	if rest, ok := strings.CutPrefix(name, "innodb_buffer_pool_pages_"); ok {
		switch rest {
		case "data", "free", "misc", "old":
			return newSeries(s.bufferPoolPages, prometheus.GaugeValue, rest)
		case "dirty":
			return newSeries(s.bufferPoolDirty, prometheus.GaugeValue)
		case "total":
			return nil // the sum of the states above
		default: // flushed, made_young, lru_flushed, ...
			return counter(s.bufferPoolChanges, rest)
		}
	}
	return newSeries(prometheus.NewDesc(s.prefix+name, s.help, nil, nil), statusKind(name))
}

// statusKind is the rule that types an ungrouped status variable: a known
// level is a gauge, Galera's wsrep_* (a mix the suite does not run) stay
// untyped as in mysqld_exporter, and everything else counts events.
func statusKind(name string) prometheus.ValueType {
	switch {
	case name == "threads_created":
		return prometheus.CounterValue
	case isStatusLevel(name):
		return prometheus.GaugeValue
	case name == "wsrep" || strings.HasPrefix(name, "wsrep_"):
		return prometheus.UntypedValue
	default:
		return prometheus.CounterValue
	}
}

// isStatusLevel lists the status variables that are levels, not event
// counts. "open_" is not "opened_": Open_tables is a level, Opened_tables a
// count.
func isStatusLevel(name string) bool {
	for _, prefix := range [...]string{
		"threads_", "threadpool_", "open_", "acl_", "key_blocks_", "aria_pagecache_blocks_",
		"innodb_buffer_pool_bytes_", "innodb_data_pending_", "innodb_os_log_pending_",
		"innodb_have_", "innodb_mem_", "innodb_onlineddl_pct_",
	} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	switch name {
	case "uptime", "uptime_since_flush_status",
		"max_used_connections", "max_used_connections_time", "max_memory_used",
		"memory_used", "memory_used_initial",
		"delayed_insert_threads", "not_flushed_delayed_rows", "prepared_stmt_count",
		"compression", "last_query_cost", "stack_usage", "binlog_snapshot_position",
		"table_open_cache_active_instances", "tc_log_page_size", "tc_log_max_pages_used",
		"slave_running", "slaves_connected", "slaves_running", "slave_open_temp_tables", "slave_heartbeat_period",
		"qcache_free_blocks", "qcache_free_memory", "qcache_queries_in_cache", "qcache_total_blocks",
		"rpl_semi_sync_master_clients", "rpl_semi_sync_master_status", "rpl_semi_sync_slave_status",
		"rpl_semi_sync_master_net_avg_wait_time", "rpl_semi_sync_master_tx_avg_wait_time",
		"rpl_semi_sync_master_wait_sessions",
		"ssl_ctx_verify_depth", "ssl_ctx_verify_mode", "ssl_default_timeout", "ssl_server_not_after",
		"ssl_server_not_before", "ssl_session_cache_size", "ssl_used_session_cache_entries",
		"ssl_verify_depth", "ssl_verify_mode",
		"innodb_page_size", "innodb_history_list_length", "innodb_checkpoint_age", "innodb_checkpoint_max_age",
		"innodb_num_open_files", "innodb_available_undo_logs",
		"innodb_row_lock_current_waits", "innodb_row_lock_time_avg", "innodb_row_lock_time_max",
		"innodb_ibuf_free_list", "innodb_ibuf_segment_size", "innodb_ibuf_size",
		"innodb_buffer_pool_load_incomplete", "innodb_onlineddl_rowlog_rows", "innodb_onlineddl_rowlog_pct_used",
		"innodb_encryption_rotation_estimated_iops":
		return true
	}
	return false
}
