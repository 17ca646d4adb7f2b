package evaluator

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/dashboards"
	"github.com/hybridsuite/hybrid/test/burner/burnerimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

// expectedEmpty are the dashboard queries that return nothing on a healthy
// new server, each with the reason. Every other query must return data
// after real scrapes of a real agent.
var expectedEmpty = map[string]string{
	// Not a replica.
	`mariadb: panel "Replication lag" target A`: "the test server is not a replica",
	// Nothing has failed or is pending.
	`alerts: panel "Pending" target A`:               "no alert is pending",
	`alerts: panel "Pending by alert name" target A`: "no alert is pending",
	`sites: panel "Sites down" target A`:             "no site is down",
	`jobs: panel "Failed steps" target A`:            "no step has failed (step counters start at their first failure: steps depend on the request)",
}

// notYetServed are metrics no agent serves in this test: backups appear after
// a site's first backup (the agent's lifecycle test covers them), and the
// sites' request counters will come from the agent's nginx logs.
var notYetServed = []string{"hybrid_site_last_backup", "hybrid_site_backup", "hybrid_site_http_requests"}

func TestDashboards_EveryQueryReturnsDataAfterRealScrapes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: real agent, MariaDB and Docker")
	}
	ctx := context.Background()
	db := mariadbtest.Start(t)
	creds := db.WriteCredentials(t, "hybrid_exporter", "dashboards-password")
	db.Exec(t, "CREATE DATABASE site_dash", "CREATE TABLE site_dash.kv (k INT PRIMARY KEY)")

	cli := dockertest.Client(t)
	image := burnerimage.Build(ctx, t, cli)
	bench := fmt.Sprintf("dash-%d", time.Now().UnixNano())
	dockertest.Run(ctx, t, cli, bench, &container.Config{
		Image: image, Cmd: []string{"idle"},
		Labels:      map[string]string{benchLabel: bench, "io.hybrid.test": "dashboards"},
		Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/burner", "exit", "0"}, Interval: time.Second},
	}, &container.HostConfig{Resources: container.Resources{Memory: 64 << 20}})

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"message":"pong"}`)
	}))
	t.Cleanup(site.Close)

	cfg := testConfig(t)
	cfg.Targets = []Target{startAgent(t, creds, true)}
	cfg.Sites = []Site{{Name: "site1.example.com", URL: site.URL}}
	m := startMonitor(t, cfg)

	// Enough scrapes for rate() over a minute's window, and the container seen.
	require.Eventually(t, func() bool {
		v, err := m.Evaluator.Query(ctx, fmt.Sprintf(`count_over_time(container_cpu_usage_seconds_total{bench=%q}[1m])`, bench), time.Now())
		return err == nil && len(v) == 1 && v[0].F >= 8
	}, 60*time.Second, time.Second, "the bench container is scraped several times")

	all, err := dashboards.All()
	require.NoError(t, err)
	var empty, failed []string
	checked := 0
	for _, d := range all {
		for _, q := range dashboards.Queries(d) {
			expr, err := q.PromQL()
			require.NoError(t, err, "%s: %s", d.Name, q.Where)
			expr = dashboards.SubstituteVariables(expr)
			where := d.Name + ": " + q.Where
			if readsAgentJobs(expr) {
				continue
			}
			checked++
			v, err := m.Evaluator.Query(ctx, expr, time.Now())
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("%s: %s: %v", where, expr, err))
			case len(v) == 0:
				if _, ok := expectedEmpty[where]; !ok {
					empty = append(empty, where+": "+expr)
				}
			}
		}
	}
	sort.Strings(empty)
	require.Empty(t, failed, "queries that fail")
	require.Empty(t, empty, "queries that return no data (add to expectedEmpty only with a reason)")
	require.Greater(t, checked, 100, "the dashboards' queries were checked")
}

func readsAgentJobs(expr string) bool {
	for _, m := range notYetServed {
		if strings.Contains(expr, m) {
			return true
		}
	}
	return false
}
