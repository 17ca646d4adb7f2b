package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/internal/webauth"
	"github.com/hybridsuite/hybrid/test/burner/burnerimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
	"github.com/hybridsuite/hybrid/test/mariadbtest"
	"github.com/hybridsuite/hybrid/test/promtooltest"
)

// syncBuffer is a log sink safe for the agent's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type runningAgent struct {
	url, password string
	logs          *syncBuffer
}

// startAgent runs the agent in-process on a free loopback port until the test ends.
func startAgent(t *testing.T, cfg Config) runningAgent {
	t.Helper()
	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l, nil) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	password, err := os.ReadFile(filepath.Join(cfg.Root, "agent", "metrics.password"))
	require.NoError(t, err)
	return runningAgent{url: "http://" + l.Addr().String(), password: strings.TrimSpace(string(password)), logs: logs}
}

func (r runningAgent) get(t *testing.T, path, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url+path, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func (r runningAgent) scrape(t *testing.T) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	code, body := r.get(t, "/metrics", webauth.User, r.password)
	require.Equal(t, http.StatusOK, code, body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return body, families
}

// value returns the value of the first sample of name whose labels include want.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := families[name]
	if !ok {
		return 0, false
	}
samples:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue samples
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func collectorSuccess(families map[string]*dto.MetricFamily, name string) float64 {
	v, ok := value(families, "hybrid_exporter_collector_success", map[string]string{"collector": name})
	if !ok {
		return -1
	}
	return v
}

func TestAgent_AllCollectors_ServedBehindBasicAuth(t *testing.T) {
	ctx := context.Background()
	db := mariadbtest.Start(t)
	creds := db.WriteCredentials(t, "hybrid_exporter", "s3cret-for-agent-test")
	db.Exec(t, "CREATE DATABASE site_agent_test", "CREATE TABLE site_agent_test.kv (k VARCHAR(64) PRIMARY KEY, v TEXT)")

	cli := dockertest.Client(t)
	image := burnerimage.Build(ctx, t, cli)
	bench := fmt.Sprintf("agent-test-%d", time.Now().UnixNano())
	dockertest.Run(ctx, t, cli, bench, &container.Config{
		Image: image, Cmd: []string{"idle"},
		Labels: map[string]string{"io.hybrid.bench": bench},
	}, &container.HostConfig{})

	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.API.Enabled = false
	cfg.MariaDB.CredentialsFile = creds
	a := startAgent(t, cfg)

	t.Run("authentication", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/healthz", "/"} {
			code, _ := a.get(t, path, "", "")
			require.Equal(t, http.StatusUnauthorized, code, "%s without credentials", path)
			code, _ = a.get(t, path, webauth.User, "wrong")
			require.Equal(t, http.StatusUnauthorized, code, "%s with a wrong password", path)
		}
		code, body := a.get(t, "/healthz", webauth.User, a.password)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)
	})

	var body string
	var families map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		body, families = a.scrape(t)
		_, bench := value(families, "container_cpu_usage_seconds_total", map[string]string{"bench": bench, "name": bench})
		_, size := value(families, "hybrid_mariadb_database_size_bytes", map[string]string{"database": "site_agent_test"})
		return bench && size
	}, 30*time.Second, 250*time.Millisecond, "the bench container and the site database appear in a scrape")

	for _, c := range []string{"mariadb", "bench", "cpu", "meminfo", "filesystem", "directories", "processes"} {
		require.Equal(t, 1.0, collectorSuccess(families, c), "collector %s", c)
	}
	up, ok := value(families, "mysql_up", nil)
	require.True(t, ok)
	require.Equal(t, 1.0, up)
	for _, name := range []string{"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1",
		"mysql_global_status_uptime", "container_memory_usage_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		require.Contains(t, families, name)
	}
	require.NotContains(t, a.logs.String(), "s3cret-for-agent-test", "the database password is never logged")

	t.Run("promtool check metrics", func(t *testing.T) {
		problems := promtooltest.CheckMetrics(t, []byte(body))
		require.NotEmpty(t, problems, "promtool lints node_exporter's camelCase names too; none means it did not run")
		require.Empty(t, promtooltest.Unexplained(problems))
	})
}

func TestAgent_BrokenBackends_StaysUpAndReportsWhichFailed(t *testing.T) {
	db := mariadbtest.Start(t)
	db.WriteCredentials(t, "hybrid_exporter", "right-password")
	wrong := mariadbtest.WriteCredentialsFile(t, "hybrid_exporter", "wrong-password-xyz", "127.0.0.1", db.Port())

	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.API.Enabled = false
	cfg.MariaDB.CredentialsFile = wrong
	cfg.Bench.DockerHost = "unix:///nonexistent/docker.sock"
	a := startAgent(t, cfg)

	_, families := a.scrape(t)
	require.Equal(t, 0.0, collectorSuccess(families, "mariadb"))
	require.Equal(t, 0.0, collectorSuccess(families, "bench"))
	require.Equal(t, 1.0, collectorSuccess(families, "cpu"), "the host collectors are unaffected")
	up, ok := value(families, "mysql_up", nil)
	require.True(t, ok)
	require.Equal(t, 0.0, up)

	logs := a.logs.String()
	require.Contains(t, logs, "Access denied for user 'hybrid_exporter'")
	require.Contains(t, logs, "unix:///nonexistent/docker.sock")
	require.NotContains(t, logs, "wrong-password-xyz")
}

func TestNew_CredentialsFileReadableByOthers_Refused(t *testing.T) {
	creds := mariadbtest.WriteCredentialsFile(t, "u", "p", "127.0.0.1", 3306)
	require.NoError(t, os.Chmod(creds, 0o644))
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.API.Enabled = false
	cfg.MariaDB.CredentialsFile = creds
	cfg.Bench.Enabled = false
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, creds)
}
