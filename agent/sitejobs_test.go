package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/agent/names"
	"github.com/hybridsuite/hybrid/internal/webauth"
)

// Helpers of the site-job tests (undo, secrets, unique names): an agent
// in-process over a siteEnv, and ways to look at what a job left behind in
// MariaDB, the folders, nginx and Docker.

// siteAgent is an agent serving its job API in-process until the test ends.
type siteAgent struct {
	api  apiClient
	logs *syncBuffer
	root string
	// metricsURL and password scrape the agent's /metrics.
	metricsURL, password string
}

// scrape returns the agent's metric families, as a scrape with its
// credentials gets them.
func (ag siteAgent) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ag.metricsURL, nil)
	require.NoError(t, err)
	req.SetBasicAuth(webauth.User, ag.password)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

func startSiteAgent(t *testing.T, cfg Config) siteAgent {
	t.Helper()
	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	metricsL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	apiL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, metricsL, apiL) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		if t.Failed() {
			t.Logf("agent log:\n%s", tailString(logs.String(), 20000))
		}
	})
	token, err := os.ReadFile(filepath.Join(cfg.Root, "agent", "api-token"))
	require.NoError(t, err)
	password, err := os.ReadFile(webauth.PasswordFile(cfg.WebConfigFile()))
	require.NoError(t, err)
	return siteAgent{
		api:  apiClient{t: t, base: "http://" + apiL.Addr().String(), token: strings.TrimSpace(string(token))},
		logs: logs, root: cfg.Root,
		metricsURL: "http://" + metricsL.Addr().String() + "/metrics", password: strings.TrimSpace(string(password)),
	}
}

// waitJob polls a job until it ends.
func (c apiClient) waitJob(id string) agentapi.Job {
	c.t.Helper()
	var job agentapi.Job
	require.Eventually(c.t, func() bool {
		code, data := c.do(http.MethodGet, "/jobs/"+id, nil, "")
		require.Equal(c.t, http.StatusOK, code, string(data))
		var list []agentapi.Job
		require.NoError(c.t, json.Unmarshal(data, &list))
		job = list[0]
		return job.Status.Ended()
	}, 3*time.Minute, 200*time.Millisecond, "job %s ends", id)
	return job
}

// failedStep is the name of the step a failed job failed at.
func failedStep(job agentapi.Job) string {
	for _, s := range job.Steps {
		if s.Status == agentapi.Failure {
			return s.Name
		}
	}
	return ""
}

func (e siteEnv) databaseExists(t *testing.T, site string) bool {
	t.Helper()
	var n int
	require.NoError(t, e.db.Root(t).QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
		names.DatabaseName(site)).Scan(&n))
	return n > 0
}

func (e siteEnv) userExists(t *testing.T, site string) bool {
	t.Helper()
	var n int
	require.NoError(t, e.db.Root(t).QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", names.DatabaseName(site)).Scan(&n))
	return n > 0
}

// killAdminConnections ends the agent's admin connections, so its next
// statement runs on a new connection with the admin's current privileges.
func (e siteEnv) killAdminConnections(t *testing.T) {
	t.Helper()
	rows, err := e.db.Root(t).Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'hybrid_admin'")
	require.NoError(t, err)
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Close())
	for _, id := range ids {
		e.db.Root(t).Exec("KILL " + id) // it may have gone by itself
	}
}

// nginxConfig is the configuration nginx serves: every bench snippet.
func nginxConfig(t *testing.T, root string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "agent", "nginx", "benches", "*.conf"))
	require.NoError(t, err)
	var all strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		all.Write(data)
	}
	return all.String()
}

// nginxRoutesSite says whether nginx serves the site (a server_name).
func nginxRoutesSite(t *testing.T, root, site string) bool {
	t.Helper()
	cfg := nginxConfig(t, root)
	return strings.Contains(cfg, " "+site+";") || strings.Contains(cfg, " "+site+" ")
}

// nginxRoutesBench says whether nginx has the bench's upstream.
func nginxRoutesBench(t *testing.T, root, bench string) bool {
	t.Helper()
	return strings.Contains(nginxConfig(t, root), "upstream hybrid-bench-"+bench+" {")
}

// breakNginx makes `nginx -t` fail until the returned func is called.
func breakNginx(t *testing.T, root string) func() {
	t.Helper()
	path := filepath.Join(root, "agent", "nginx", "nginx.conf")
	orig, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(append([]byte(nil), orig...), "\nthis_is_not_a_directive;\n"...), 0o644))
	restored := false
	restore := func() {
		if !restored {
			restored = true
			require.NoError(t, os.WriteFile(path, orig, 0o644))
		}
	}
	t.Cleanup(restore)
	return restore
}

func (e siteEnv) containerExists(t *testing.T, bench string) bool {
	t.Helper()
	_, err := e.cli.ContainerInspect(context.Background(), benches.ContainerName(bench), client.ContainerInspectOptions{})
	return err == nil
}

func jsonUnmarshal(data []byte, into any) error { return json.Unmarshal(data, into) }
