package mariadb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReplicaStatus_ConfiguredConnection_ReportsSlaveStatusSeries(t *testing.T) {
	c, srv := exporterCollector(t)
	// A replication connection to a port nobody listens on, never started:
	// SHOW ALL SLAVES STATUS lists it, with both threads stopped.
	srv.Exec(t, fmt.Sprintf("CHANGE MASTER 'site_a' TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl'", 1))
	t.Cleanup(func() { srv.Exec(t, "RESET SLAVE 'site_a' ALL") })

	f, err := scrape(t, c)
	require.NoError(t, err)

	labels := []string{"connection_name", "site_a", "channel_name", "site_a", "master_host", "127.0.0.1", "master_uuid", ""}
	require.Equal(t, 0.0, f.value(t, "mysql_slave_status_slave_io_running", labels...))
	require.Equal(t, 0.0, f.value(t, "mysql_slave_status_slave_sql_running", labels...))
	require.Equal(t, 1.0, f.value(t, "mysql_slave_status_master_port", labels...))
	require.Empty(t, f.find("mysql_slave_status_seconds_behind_master"), "NULL while stopped: no sample")
	require.Empty(t, f.find("mysql_slave_status_master_host"), "text columns are not metrics")
}

func TestReplicaStatus_UserWithoutSlaveMonitor_SkipsAndLogsOnce(t *testing.T) {
	srv := shared.Server(t)
	creds := srv.WriteCredentials(t, "exporter_no_monitor", "pw")
	srv.Exec(t, "REVOKE SLAVE MONITOR ON *.* FROM 'exporter_no_monitor'@'%'")
	logger, logs := bufferLogger()
	c := newCollector(t, logger, creds)

	for range 2 {
		f, err := scrape(t, c)
		require.NoError(t, err, "a missing privilege for replica status does not fail the scrape")
		require.Equal(t, 1.0, f.value(t, "mysql_up"))
		require.NotEmpty(t, f.find("mysql_global_status_queries"))
	}

	require.Equal(t, 1, strings.Count(logs.String(), "replica status skipped"), "logged once:\n%s", logs)
}
