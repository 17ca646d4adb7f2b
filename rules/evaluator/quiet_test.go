package evaluator

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

// TestQuietRun_NormalOperation_OnlyWatchdogFires runs a real agent, MariaDB
// and a site under the monitor and checks that nothing but the Watchdog
// fires: an alert that pages for no reason is a bug. HYBRID_QUIET_RUN sets
// how long (`make quiet-run`: 10m); CI runs a short one.
// HYBRID_QUIET_IGNORE lists alerts the machine running the test legitimately
// raises (a VM without NTP raises HostClockNotSynchronising).
func TestQuietRun_NormalOperation_OnlyWatchdogFires(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	duration := 40 * time.Second
	if v := os.Getenv("HYBRID_QUIET_RUN"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "HYBRID_QUIET_RUN")
		duration = d
	}
	ignore := map[string]bool{"Watchdog": true}
	for _, name := range strings.Fields(strings.ReplaceAll(os.Getenv("HYBRID_QUIET_IGNORE"), ",", " ")) {
		ignore[name] = true
	}

	db := mariadbtest.Start(t)
	creds := db.WriteCredentials(t, "hybrid_exporter", "quiet-password")
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"message":"pong"}`)
	}))
	t.Cleanup(site.Close)

	cfg := testConfig(t)
	cfg.Targets = []Target{startAgent(t, creds, true)}
	cfg.Sites = []Site{{Name: "quiet.example.com", URL: site.URL}}
	hook := newWebhook(t)
	cfg.Alerting.WebhookURL = hook.URL
	m := startMonitor(t, cfg)

	ctx := context.Background()
	deadline := time.Now().Add(duration)
	watchdog := false
	pending := map[string]bool{}
	for time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		v, err := m.Evaluator.Query(ctx, `ALERTS`, time.Now())
		require.NoError(t, err)
		for _, s := range v {
			name, state := s.Metric.Get("alertname"), s.Metric.Get("alertstate")
			switch {
			case name == "Watchdog" && state == "firing":
				watchdog = true
			case ignore[name]:
			case state == "firing":
				t.Fatalf("%s fires during normal operation: %s", name, s.Metric)
			default:
				pending[name+" "+s.Metric.String()] = true
			}
		}
	}
	require.True(t, watchdog, "the Watchdog fires all the time")
	_, ok := hook.find("Watchdog", "firing")
	require.True(t, ok, "the Watchdog reached the receiver")
	for _, a := range hook.names() {
		name := strings.TrimSuffix(a, "/firing")
		require.True(t, ignore[name] || strings.HasSuffix(a, "/resolved"), "%s was delivered", a)
	}
	var names []string
	for p := range pending {
		names = append(names, p)
	}
	sort.Strings(names)
	t.Logf("quiet for %s; alerts pending at some point (never firing): %v", duration, names)
}
