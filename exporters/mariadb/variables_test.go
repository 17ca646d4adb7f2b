package mariadb

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// variablesCollector is a collector for the shared server that reads SHOW
// GLOBAL VARIABLES at most every interval.
func variablesCollector(t *testing.T, interval time.Duration) *Collector {
	t.Helper()
	srv := shared.Server(t)
	c, err := New(discardLogger(), Options{
		CredentialsFile:   srv.WriteCredentials(t, "hybrid_exporter", "exporter-pw"),
		QueryTimeout:      5 * time.Second,
		VariablesInterval: interval,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// setGlobalMaxConnectErrors sets max_connect_errors, which no other test
// reads, and puts the old value back when the test ends.
func setGlobalMaxConnectErrors(t *testing.T, v int) {
	t.Helper()
	srv := shared.Server(t)
	var old string
	require.NoError(t, srv.Root(t).QueryRowContext(context.Background(), "SELECT @@GLOBAL.max_connect_errors").Scan(&old))
	srv.Exec(t, "SET GLOBAL max_connect_errors = "+strconv.Itoa(v))
	t.Cleanup(func() { srv.Exec(t, "SET GLOBAL max_connect_errors = "+old) })
}

func TestVariables_SetGlobal_VisibleAfterIntervalNotBefore(t *testing.T) {
	cached := variablesCollector(t, time.Hour)
	fresh := variablesCollector(t, 50*time.Millisecond)
	for _, c := range []*Collector{cached, fresh} {
		f, err := scrape(t, c)
		require.NoError(t, err)
		require.NotEqual(t, 4321.0, f.value(t, "mysql_global_variables_max_connect_errors"))
	}

	setGlobalMaxConnectErrors(t, 4321)
	time.Sleep(60 * time.Millisecond)

	f, err := scrape(t, fresh)
	require.NoError(t, err)
	require.Equal(t, 4321.0, f.value(t, "mysql_global_variables_max_connect_errors"), "read again after the interval")
	f, err = scrape(t, cached)
	require.NoError(t, err)
	require.NotEqual(t, 4321.0, f.value(t, "mysql_global_variables_max_connect_errors"), "within the interval, the last read's value")
	require.Len(t, f.find("mysql_version_info"), 1, "version_info is sent from the last read too")
}

func TestVariables_WithinInterval_NoShowVariablesStatement(t *testing.T) {
	showVariables := func(f families) float64 {
		return f.value(t, "mysql_global_status_commands_total", "command", "show_variables")
	}
	for name, tc := range map[string]struct {
		interval time.Duration
		want     float64 // SHOW VARIABLES statements between two scrapes
	}{
		"cached":        {time.Hour, 0},
		"tiny interval": {time.Nanosecond, 1},
	} {
		t.Run(name, func(t *testing.T) {
			c := variablesCollector(t, tc.interval)
			// The status is read before the variables, so a scrape counts
			// the SHOW VARIABLES of the one before it.
			var counts []float64
			for range 3 {
				f, err := scrape(t, c)
				require.NoError(t, err)
				require.NotEmpty(t, f.find("mysql_global_variables_max_connections"))
				counts = append(counts, showVariables(f))
			}
			require.Equal(t, tc.want, counts[2]-counts[1])
		})
	}
}

func TestVariables_Statement_ReadsWhenDueRestartedOrInvalid(t *testing.T) {
	start := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	now, uptime := start, 1000.0
	g := newGlobalVariables(time.Minute, func() time.Time { return now }, func() float64 { return uptime })
	read := func() {
		t.Helper()
		require.NotEmpty(t, g.statement())
		g.metrics, g.readAt, g.uptimeAt = []prometheus.Metric{}, now, uptime // what read does, without rows
	}
	read()

	now, uptime = start.Add(59*time.Second), 1059
	require.Empty(t, g.statement(), "within the interval")

	now, uptime = start.Add(time.Minute), 1060
	require.Equal(t, "SHOW GLOBAL VARIABLES", g.statement(), "interval passed")
	read()

	uptime = 3 // restarted a moment ago
	require.NotEmpty(t, g.statement(), "the server restarted since the read")
	read()

	uptime = -1 // the status failed: no restart to tell
	require.Empty(t, g.statement())

	g.invalidate()
	require.NotEmpty(t, g.statement(), "after the server was unreachable")
	read()

	require.Error(t, g.failed(context.DeadlineExceeded))
	require.NotEmpty(t, g.statement(), "after a failed read")
}
