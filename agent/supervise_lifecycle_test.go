package agent

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/benches"
)

// docker kill, as an operator would: Docker's restart policy leaves the
// container stopped, and the agent brings the bench and its site back.
func TestLifecycle_BenchKilledByHand_SiteAnswersAgainAndCounted(t *testing.T) {
	env := newSiteEnv(t)
	cfg, nginxAddr := env.cfg, env.nginxAddr
	bench := fmt.Sprintf("sv%d", time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)

	ag := startSiteAgent(t, cfg)
	api := ag.api
	// metric returns the value of the sample of name for the bench, or of
	// the collector's success; -1 when there is none.
	metric := func(name string, labels map[string]string) float64 {
		mfs := ag.scrape(t)
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

	_, err := env.cli.ContainerKill(context.Background(), benches.ContainerName(bench), client.ContainerKillOptions{})
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
	require.Contains(t, ag.logs.String(), "started again a bench container that stopped without the agent")
}
