package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

// shared is the package's one MariaDB server: starting one takes a second or
// two, so tests share it and only the stop/start test restarts it.
var shared mariadbtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func bufferLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newCollector builds a collector for creds and closes it at the test's end.
func newCollector(t *testing.T, logger *slog.Logger, creds string) *Collector {
	t.Helper()
	c, err := New(logger, Options{CredentialsFile: creds, QueryTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// exporterCollector is a collector for the shared server's exporter user.
func exporterCollector(t *testing.T) (*Collector, *mariadbtest.Server) {
	t.Helper()
	srv := shared.Server(t)
	creds := srv.WriteCredentials(t, "hybrid_exporter", "exporter-pw")
	return newCollector(t, discardLogger(), creds), srv
}

// updateCollector adapts Update to a prometheus.Collector, so a test can
// gather through a pedantic registry, which checks what Update sends.
type updateCollector struct {
	c   *Collector
	err error
}

func (u *updateCollector) Describe(chan<- *prometheus.Desc) {}

func (u *updateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u.err = u.c.Update(ctx, ch)
}

// families is one scrape's result by metric name.
type families map[string]*dto.MetricFamily

// scrape runs one Update and returns what it sent and the error it returned.
func scrape(t *testing.T, c *Collector) (families, error) {
	t.Helper()
	f, updateErr, gatherErr := gather(c)
	require.NoError(t, gatherErr, "the registry rejected what Update sent")
	return f, updateErr
}

// gather is scrape for goroutines other than the test's, which must not
// call t.FailNow.
func gather(c *Collector) (f families, updateErr, gatherErr error) {
	reg := prometheus.NewPedanticRegistry()
	u := &updateCollector{c: c}
	reg.MustRegister(u)
	mfs, gatherErr := reg.Gather()
	f = families{}
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f, u.err, gatherErr
}

// value returns the sample of name whose labels include want.
func (f families) value(t *testing.T, name string, want ...string) float64 {
	t.Helper()
	ms := f.find(name, want...)
	require.Len(t, ms, 1, "series %s%v", name, want)
	m := ms[0]
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	default:
		return m.Untyped.GetValue()
	}
}

// find returns the samples of name whose labels include want (name, value pairs).
func (f families) find(name string, want ...string) []*dto.Metric {
	mf, ok := f[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

func (f families) kind(name string) dto.MetricType { return f[name].GetType() }

func TestUpdate_RunningServer_ReportsUpVersionStatusAndVariables(t *testing.T) {
	c, _ := exporterCollector(t)

	f, err := scrape(t, c)

	require.NoError(t, err)
	require.Equal(t, 1.0, f.value(t, "mysql_up"))
	version := f.find("mysql_version_info")
	require.Len(t, version, 1)
	labels := map[string]string{}
	for _, l := range version[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	require.Contains(t, labels["version"], "MariaDB")
	require.NotEmpty(t, labels["version_comment"])

	require.GreaterOrEqual(t, f.value(t, "mysql_global_status_uptime"), 0.0)
	require.Equal(t, dto.MetricType_GAUGE, f.kind("mysql_global_status_uptime"))
	require.Positive(t, f.value(t, "mysql_global_status_threads_connected"))
	require.Equal(t, dto.MetricType_GAUGE, f.kind("mysql_global_status_threads_connected"))
	require.Equal(t, dto.MetricType_COUNTER, f.kind("mysql_global_status_queries"))
	require.Equal(t, dto.MetricType_COUNTER, f.kind("mysql_global_status_threads_created"))
	require.Equal(t, dto.MetricType_COUNTER, f.kind("mysql_global_status_opened_tables"))
	require.Equal(t, dto.MetricType_GAUGE, f.kind("mysql_global_status_open_tables"))
	require.Positive(t, f.value(t, "mysql_global_status_commands_total", "command", "show_status"), "counts the scrape's own SHOW")
	require.Equal(t, dto.MetricType_COUNTER, f.kind("mysql_global_status_commands_total"))
	require.NotEmpty(t, f.find("mysql_global_status_handlers_total", "handler", "read_rnd_next"))
	require.NotEmpty(t, f.find("mysql_global_status_connection_errors_total", "error", "max_connections"))
	require.NotEmpty(t, f.find("mysql_global_status_buffer_pool_pages", "state", "free"))
	require.NotEmpty(t, f.find("mysql_global_status_buffer_pool_dirty_pages"))
	require.NotEmpty(t, f.find("mysql_global_status_performance_schema_lost_total"))
	require.Empty(t, f.find("mysql_global_status_innodb_buffer_pool_pages_total"), "mysqld_exporter drops it: the sum of the states")

	require.Equal(t, 50.0, f.value(t, "mysql_global_variables_max_connections"), "mariadbtest sets max_connections=50")
	require.Equal(t, 32.0*1024*1024, f.value(t, "mysql_global_variables_innodb_buffer_pool_size"))
	require.Equal(t, 0.0, f.value(t, "mysql_global_variables_performance_schema"), "OFF is 0")
	require.Equal(t, dto.MetricType_GAUGE, f.kind("mysql_global_variables_max_connections"))

	require.Empty(t, f.find("mysql_slave_status_slave_io_running"), "no replica configured, no series")
	require.Empty(t, f.find("hybrid_mariadb_database_size_bytes"), "Start was not called")
}

func TestUpdate_TwoScrapes_QueriesCounterIncreases(t *testing.T) {
	c, _ := exporterCollector(t)

	first, err := scrape(t, c)
	require.NoError(t, err)
	second, err := scrape(t, c)
	require.NoError(t, err)

	require.Greater(t, second.value(t, "mysql_global_status_queries"), first.value(t, "mysql_global_status_queries"))
	require.Greater(t, second.value(t, "mysql_global_status_questions"), first.value(t, "mysql_global_status_questions"))
}

func TestUpdate_ServerStoppedMidTest_ReportsDownThenRecoversWithSameCollector(t *testing.T) {
	srv := shared.Server(t)
	logger, logs := bufferLogger()
	c := newCollector(t, logger, srv.WriteCredentials(t, "hybrid_exporter", "exporter-pw"))
	f, err := scrape(t, c)
	require.NoError(t, err)
	require.Equal(t, 1.0, f.value(t, "mysql_up"))

	require.NoError(t, srv.Stop())
	t.Cleanup(func() { _ = srv.Start() }) // leave the shared server running even if this test fails
	for i := range 3 {
		f, err = scrape(t, c)
		require.Error(t, err)
		require.Contains(t, err.Error(), srv.Addr())
		require.Equal(t, 0.0, f.value(t, "mysql_up"))
		require.Equal(t, float64(i+1), f.value(t, "hybrid_mariadb_connect_errors_total", "reason", "unreachable"))
		require.Len(t, f, 2, "only mysql_up and the connect errors while the server is down")
	}
	require.Equal(t, 1, strings.Count(logs.String(), "mariadb is down"), "one line when it goes down, not one per scrape:\n%s", logs)

	require.NoError(t, srv.Start())
	f, err = scrape(t, c)
	require.NoError(t, err)
	require.Equal(t, 1.0, f.value(t, "mysql_up"))
	_, err = scrape(t, c)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), "mariadb is up again"), "one line when it recovers:\n%s", logs)
}

func TestUpdate_WrongPassword_ReportsAccessDeniedWithoutLeakingPassword(t *testing.T) {
	srv := shared.Server(t)
	srv.WriteCredentials(t, "hybrid_exporter_pw", "the-right-password")
	const wrong = "Wr0ng-Pa55word-xyzzy"
	creds := mariadbtest.WriteCredentialsFile(t, "hybrid_exporter_pw", wrong, "127.0.0.1", srv.Port())
	logger, logs := bufferLogger()
	c := newCollector(t, logger, creds)

	f, err := scrape(t, c)

	require.Error(t, err)
	require.Contains(t, err.Error(), "Access denied for user 'hybrid_exporter_pw'")
	require.Equal(t, 0.0, f.value(t, "mysql_up"))
	require.Contains(t, logs.String(), "Access denied")
	// The server is up and refuses the login: a reason the rules tell from
	// "down", so this warns instead of paging that every site fails.
	require.Equal(t, 1.0, f.value(t, "hybrid_mariadb_connect_errors_total", "reason", "access_denied"))
	require.Equal(t, 0.0, f.value(t, "hybrid_mariadb_connect_errors_total", "reason", "unreachable"))
	require.Contains(t, err.Error(), "(access_denied)")
	for _, secret := range []string{wrong, "the-right-password"} {
		require.NotContains(t, err.Error(), secret)
		require.NotContains(t, logs.String(), secret)
	}
}

func TestUpdate_NothingListening_ReportsDownAndNewStillSucceeds(t *testing.T) {
	// A port nobody listens on: New must not need the server.
	creds := mariadbtest.WriteCredentialsFile(t, "u", "p", "127.0.0.1", 1)
	c := newCollector(t, discardLogger(), creds)

	f, err := scrape(t, c)

	require.ErrorContains(t, err, "127.0.0.1:1")
	require.Equal(t, 0.0, f.value(t, "mysql_up"))
	require.Equal(t, 1.0, f.value(t, "hybrid_mariadb_connect_errors_total", "reason", "unreachable"))
	require.Equal(t, 0.0, f.value(t, "hybrid_mariadb_connect_errors_total", "reason", "access_denied"))
}

func TestUpdate_TenConcurrentCalls_ShareOneQuerySet(t *testing.T) {
	c, _ := exporterCollector(t)
	// Hold the first query set long enough for all ten callers to arrive.
	c.beforeScrape = func() { time.Sleep(300 * time.Millisecond) }

	var wg sync.WaitGroup
	results := make([]families, 10)
	errs := make([]error, 10)
	gatherErrs := make([]error, 10)
	for i := range 10 {
		wg.Go(func() { results[i], errs[i], gatherErrs[i] = gather(c) })
	}
	wg.Wait()

	for i := range 10 {
		require.NoError(t, errs[i])
		require.NoError(t, gatherErrs[i])
		require.Equal(t, 1.0, results[i].value(t, "mysql_up"))
		require.NotEmpty(t, results[i].find("mysql_global_status_queries"))
	}
	require.Equal(t, int64(1), c.querySets.Load(), "ten concurrent scrapes, one query set")
	require.Equal(t, int64(1), c.maxRunning.Load())

	// Later scrapes run their own query set.
	_, err := scrape(t, c)
	require.NoError(t, err)
	require.Equal(t, int64(2), c.querySets.Load())
}

func TestUpdate_WaiterDeadlinePasses_ReturnsContextError(t *testing.T) {
	c, _ := exporterCollector(t)
	release := make(chan struct{})
	c.beforeScrape = func() { <-release }
	leaderDone := make(chan error, 1)
	go func() { leaderDone <- c.Update(context.Background(), make(chan prometheus.Metric, 10000)) }()
	require.Eventually(t, func() bool { return c.querySets.Load() == 1 }, 5*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Update(ctx, make(chan prometheus.Metric, 10000))

	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	require.NoError(t, <-leaderDone)
}

func TestConnection_SessionHasLockWaitAndStatementTimeouts(t *testing.T) {
	srv := shared.Server(t)
	c, err := New(discardLogger(), Options{
		CredentialsFile: srv.WriteCredentials(t, "hybrid_exporter", "exporter-pw"),
		QueryTimeout:    1500 * time.Millisecond,
		LockWaitTimeout: 3 * time.Second,
	})
	require.NoError(t, err)
	defer c.Close()

	var lockWait int
	var statementTime float64
	require.NoError(t, c.db.QueryRowContext(context.Background(),
		"SELECT @@SESSION.lock_wait_timeout, @@SESSION.max_statement_time").Scan(&lockWait, &statementTime))

	require.Equal(t, 3, lockWait)
	require.InDelta(t, 1.5, statementTime, 0.001)
}

func TestClose_AfterStart_StopsRefreshLoop(t *testing.T) {
	c, _ := exporterCollector(t)
	c.Start(context.Background())

	done := make(chan error, 1)
	go func() { done <- c.Close() }()

	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	require.NoError(t, c.Close(), "a second Close is harmless")
}

// failingScraper's statement fails on the server.
type failingScraper struct{}

func (failingScraper) statement() string                             { return "SELECT * FROM mysql.no_such_table" }
func (failingScraper) read(*sql.Rows, func(prometheus.Metric)) error { return nil }
func (failingScraper) failed(err error) error                        { return fmt.Errorf("failing scraper: %w", err) }

func TestUpdate_FailingStatementInBatch_OthersStillReported(t *testing.T) {
	for name, at := range map[string]int{"first": 0, "middle": 2, "last": 4} {
		t.Run(name, func(t *testing.T) {
			c, _ := exporterCollector(t)
			c.scrapers = slices.Insert(slices.Clone(c.scrapers), at, scraper(failingScraper{}))

			for range 2 { // the second with the variables kept from the first
				f, err := scrape(t, c)

				require.ErrorContains(t, err, "failing scraper")
				require.ErrorContains(t, err, "no_such_table")
				require.Equal(t, 1.0, f.value(t, "mysql_up"), "the server answered, with an error")
				require.NotEmpty(t, f.find("mysql_global_status_uptime"))
				require.NotEmpty(t, f.find("mysql_global_variables_max_connections"))
				require.Len(t, f.find("mysql_version_info"), 1)
				require.NotEmpty(t, f.find("mysql_info_schema_processlist_threads"), "the root connection sleeps")
			}
		})
	}
}
