package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/internal/webauth"
)

// docker kill, as an operator would: Docker's restart policy leaves the
// container stopped, and the agent brings the bench and its site back.
func TestLifecycle_BenchKilledByHand_SiteAnswersAgainAndCounted(t *testing.T) {
	env := newSiteEnv(t)
	cfg, nginxAddr, root := env.cfg, env.nginxAddr, env.cfg.Root
	bench := fmt.Sprintf("sv%d", time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)

	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	metricsL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	apiL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(runCtx, metricsL, apiL) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	token, err := os.ReadFile(filepath.Join(root, "agent", "api-token"))
	require.NoError(t, err)
	api := apiClient{t: t, base: "http://" + apiL.Addr().String(), token: strings.TrimSpace(string(token))}
	password, err := os.ReadFile(webauth.PasswordFile(cfg.WebConfigFile()))
	require.NoError(t, err)
	// metric returns the value of the sample of name for the bench, or of
	// the collector's success; -1 when there is none.
	metric := func(name string, labels map[string]string) float64 {
		req, _ := http.NewRequest(http.MethodGet, "http://"+metricsL.Addr().String()+"/metrics", nil)
		req.SetBasicAuth(webauth.User, strings.TrimSpace(string(password)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(resp.Body)
		require.NoError(t, err)
		v, ok := value(mfs, name, labels)
		if !ok {
			return -1
		}
		return v
	}
	starts := map[string]string{"bench": bench}

	api.run("/benches", agentapi.NewBench{Name: bench, Image: env.image, Limits: agentapi.Limits{MemoryBytes: 256 << 20}})
	site := "sv1.example.com"
	api.run("/benches/"+bench+"/sites", agentapi.NewSite{Name: site})
	code, body := siteGet(t, nginxAddr, site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 1.0, metric("hybrid_exporter_collector_success", map[string]string{"collector": "benchsupervisor"}))
	require.Equal(t, 0.0, metric("hybrid_bench_container_agent_starts_total", starts), "a bench is counted from 0")
	require.Equal(t, 0.0, metric("hybrid_bench_container_agent_start_failures_total", starts))

	_, err = env.cli.ContainerKill(context.Background(), benches.ContainerName(bench), client.ContainerKillOptions{})
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = siteGet(t, nginxAddr, site, http.MethodGet, "/api/method/ping", "")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site of the killed bench does not answer again: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, 1.0, metric("hybrid_bench_container_agent_starts_total", starts))
	require.Equal(t, 0.0, metric("hybrid_bench_container_agent_start_failures_total", starts))
	require.Contains(t, logs.String(), "started again a bench container that stopped without the agent")
}
