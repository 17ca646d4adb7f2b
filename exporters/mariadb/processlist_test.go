package mariadb

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSanitizeState(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "unknown",
		"Sleep":                           "sleep",
		"Waiting for table metadata lock": "waiting_for_table_metadata_lock",
		"User sleep":                      "user_sleep",
		"Binlog Dump":                     "binlog_dump",
		"Copying to tmp table on disk.":   "copying_to_tmp_table_on_disk",
		"Reading event from the relay-log (x, y): z; w": "reading_event_from_the_relay_log_x_y_z_w",
	} {
		require.Equal(t, want, sanitizeState(in), in)
	}
}

func TestProcesslist_SleepingQuery_CountedByCommandAndState(t *testing.T) {
	c, srv := exporterCollector(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = srv.Root(t).ExecContext(ctx, "SELECT SLEEP(3)")
	}()
	t.Cleanup(func() { cancel(); <-done })

	require.Eventually(t, func() bool {
		f, _, _ := gather(c)
		return len(f.find("mysql_info_schema_processlist_threads", "command", "query", "state", "user_sleep")) == 1
	}, 3*time.Second, 50*time.Millisecond)
	f, err := scrape(t, c)
	require.NoError(t, err)
	require.GreaterOrEqual(t, f.value(t, "mysql_info_schema_processlist_threads", "command", "query", "state", "user_sleep"), 1.0)
	require.NotEmpty(t, f.find("mysql_info_schema_processlist_seconds", "command", "query", "state", "user_sleep"))
}
