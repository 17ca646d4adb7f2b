package mariadb

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestStatusKind(t *testing.T) {
	for name, want := range map[string]prometheus.ValueType{
		"queries":                       prometheus.CounterValue,
		"questions":                     prometheus.CounterValue,
		"bytes_received":                prometheus.CounterValue,
		"threads_created":               prometheus.CounterValue,
		"opened_tables":                 prometheus.CounterValue,
		"slow_queries":                  prometheus.CounterValue,
		"innodb_row_lock_time":          prometheus.CounterValue,
		"threads_connected":             prometheus.GaugeValue,
		"threads_running":               prometheus.GaugeValue,
		"open_tables":                   prometheus.GaugeValue,
		"uptime":                        prometheus.GaugeValue,
		"max_used_connections":          prometheus.GaugeValue,
		"innodb_buffer_pool_bytes_data": prometheus.GaugeValue,
		"innodb_row_lock_current_waits": prometheus.GaugeValue,
		"key_blocks_unused":             prometheus.GaugeValue,
		"wsrep_cluster_size":            prometheus.UntypedValue,
	} {
		require.Equal(t, want, statusKind(name), name)
	}
}

func TestParseValue(t *testing.T) {
	for in, want := range map[string]float64{
		"42": 42, "0.500000": 0.5, "18446744073709551615": 18446744073709551615,
		"ON": 1, "on": 1, "YES": 1, "OFF": 0, "No": 0, "DISABLED": 0, "Connecting": 0,
		"Primary": 1, "Disconnected": 0, "oN": 1, "Non-Primary": 0,
		"-1": -1, "+2": 2, ".5": 0.5, "1e3": 1000, "0x1p4": 16,
		"2024-01-02 03:04:05":      1704164645,
		"Jan 02 03:04:05 2024 GMT": 1704164645,
	} {
		got, ok := parseValue([]byte(in))
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "10.11.6-MariaDB", "/var/lib/mysql/", "utf8mb4", "NULL", "ON ", "onn", "-", "1,2", "\u212aon"} {
		_, ok := parseValue([]byte(in))
		require.False(t, ok, in)
	}
	_, ok := parseValue(nil)
	require.False(t, ok, "SQL NULL")
}

func TestMetricName(t *testing.T) {
	require.Equal(t, "innodb_buffer_pool_pages_data", metricName("Innodb_buffer_pool_pages_data"))
	require.Equal(t, "key_cache_block_size", metricName("key-cache.block_size"))
	require.Equal(t, "slave_sql_running", metricName("Slave_SQL_Running"))
}
