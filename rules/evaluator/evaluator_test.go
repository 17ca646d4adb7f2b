package evaluator

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent"
	"github.com/hybridsuite/hybrid/alerting"
	"github.com/hybridsuite/hybrid/internal/webauth"
	"github.com/hybridsuite/hybrid/test/alertmanagertest"
	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

// startAgent runs a real agent in-process (host and MariaDB collectors, and
// with full also the bench collector and the job API with its job metrics)
// and returns the target the monitor scrapes it as.
func startAgent(t *testing.T, creds string, full bool) Target {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.MariaDB.CredentialsFile = creds
	cfg.Bench.Enabled = full
	// Only this package's containers: other test packages running at the
	// same time make, kill and OOM containers of their own.
	cfg.Bench.Label = benchLabel
	cfg.API.Enabled = full
	var apiL net.Listener
	if full {
		cfg.Sites.Nginx = agent.NginxConfig{Listen: freeAddr(t), ProbeListen: freeAddr(t), User: "root"}
		var err error
		apiL, err = net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
	}
	a, err := agent.New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l, apiL) }()
	t.Cleanup(func() { cancel(); <-done })
	return Target{
		Name: "server-1", Address: l.Addr().String(),
		Username: webauth.User, PasswordFile: webauth.PasswordFile(cfg.WebConfigFile()),
	}
}

// benchLabel marks the bench containers the agents of these tests watch.
const benchLabel = "io.hybrid.test.evaluator.bench"

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// testConfig is a monitor that scrapes and evaluates every second.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ScrapeInterval = time.Second
	cfg.ScrapeTimeout = time.Second
	cfg.EvaluationInterval = time.Second
	cfg.Probe.Interval = time.Second
	cfg.Web.ListenAddress = "127.0.0.1:0"
	return cfg
}

func startMonitor(t *testing.T, cfg Config) *Monitor {
	t.Helper()
	m, err := NewMonitor(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return m
}

// webhook records what Alertmanager (or the monitor itself) posts.
type webhook struct {
	*httptest.Server
	mu     sync.Mutex
	alerts []alerting.WebhookAlert
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var msg alerting.WebhookMessage
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.alerts = append(w.alerts, msg.Alerts...)
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

// find returns the last alert received named name with the given status.
func (w *webhook) find(name, status string) (alerting.WebhookAlert, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.alerts) - 1; i >= 0; i-- {
		if a := w.alerts[i]; a.Labels["alertname"] == name && a.Status == status {
			return a, true
		}
	}
	return alerting.WebhookAlert{}, false
}

func (w *webhook) names() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, a := range w.alerts {
		out = append(out, a.Labels["alertname"]+"/"+a.Status)
	}
	return out
}

func TestMonitor_MariaDBStops_AlertReachesOnCallThroughAlertmanager_AndResolves(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: over a minute")
	}
	db := mariadbtest.Start(t)
	target := startAgent(t, db.WriteCredentials(t, "hybrid_exporter", "e2e-password"), false)

	hook := newWebhook(t)
	amYAML, err := alerting.GenerateConfig(alerting.Config{
		ControlPlane: &alerting.ControlPlaneConfig{URL: hook.URL + "/intake"},
		Route:        alerting.RouteConfig{GroupWait: 500 * time.Millisecond, GroupInterval: time.Second, RepeatInterval: time.Hour},
	})
	require.NoError(t, err)
	am := alertmanagertest.Start(t, amYAML)

	cfg := testConfig(t)
	cfg.Targets = []Target{target}
	cfg.Alerting.Alertmanagers = []string{am.URL()}
	m := startMonitor(t, cfg)

	// The agent is scraped and MariaDB is up; the Watchdog reaches on-call.
	require.Eventually(t, func() bool {
		v, err := m.Evaluator.Query(context.Background(), `mysql_up{job="hybrid-agent",server="server-1"}`, time.Now())
		return err == nil && len(v) == 1 && v[0].F == 1
	}, 20*time.Second, 200*time.Millisecond, "mysql_up 1 is scraped")
	require.Eventually(t, func() bool { _, ok := hook.find("Watchdog", "firing"); return ok },
		20*time.Second, 200*time.Millisecond, "the Watchdog arrives: %v", hook.names())

	// MariaDB stops, and Alertmanager is down too for part of the fault.
	t.Log("MariaDB is scraped and the Watchdog arrived; stopping MariaDB and Alertmanager")
	require.NoError(t, db.Stop())
	am.Stop()
	stopped := time.Now()
	require.Eventually(t, func() bool {
		v, err := m.Evaluator.Query(context.Background(), `ALERTS{alertname="MariaDBDown",alertstate="firing"}`, time.Now())
		return err == nil && len(v) == 1
	}, cfg.ScrapeInterval+time.Minute+30*time.Second, time.Second, "MariaDBDown fires in the evaluator")
	t.Logf("MariaDBDown fires after %s; starting Alertmanager again", time.Since(stopped).Round(time.Second))
	am.Start()

	// scrape interval + for (1m) + 30 s, plus the notifier's backoff after the outage.
	require.Eventually(t, func() bool { _, ok := hook.find("MariaDBDown", "firing"); return ok },
		cfg.ScrapeInterval+time.Minute+30*time.Second+time.Minute-time.Since(stopped), 500*time.Millisecond,
		"MariaDBDown reaches the webhook after Alertmanager is back: %v", hook.names())
	got, _ := hook.find("MariaDBDown", "firing")
	require.Equal(t, "critical", got.Labels["severity"])
	require.Equal(t, "server-1", got.Labels["server"])
	require.Equal(t, "hybrid-agent", got.Labels["job"])
	require.Equal(t, target.Address, got.Labels["instance"])
	require.True(t, strings.HasSuffix(got.Annotations["runbook_url"], "/runbooks/MariaDBDown"), got.Annotations["runbook_url"])
	require.NotEmpty(t, got.Annotations["summary"])

	t.Logf("MariaDBDown reached the webhook %s after MariaDB stopped", time.Since(stopped).Round(time.Second))
	// MariaDB is back: the resolved notification follows.
	require.NoError(t, db.Start())
	require.Eventually(t, func() bool { _, ok := hook.find("MariaDBDown", "resolved"); return ok },
		90*time.Second, 500*time.Millisecond, "MariaDBDown resolves: %v", hook.names())
}

func TestEvaluator_BadRuleFile_RefusedWithFileLineAndReason_PreviousRulesKeepRunning(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	require.NoError(t, os.WriteFile(good, []byte(`groups:
- name: good
  rules:
  - alert: AlwaysOn
    expr: vector(1)
    labels: {severity: info}
`), 0o600))
	syntax := filepath.Join(dir, "syntax.yml")
	require.NoError(t, os.WriteFile(syntax, []byte(`groups:
- name: broken
  rules:
  - alert: Broken
    expr: sum(rate(x[5m]) by (instance)
`), 0o600))
	unknown := filepath.Join(dir, "unknown.yml")
	require.NoError(t, os.WriteFile(unknown, []byte(`groups:
- name: unknown
  rules:
  - record: job:x:nosuch
    expr: nosuch_function(up)
`), 0o600))

	cfg := testConfig(t)
	cfg.RuleFiles = []string{good}
	e, err := New(cfg, slog.New(slog.DiscardHandler), discardSink{})
	require.NoError(t, err)
	t.Cleanup(func() { e.db.Close() })
	require.Equal(t, []string{"good"}, e.RuleGroups())

	err = e.LoadRules(good, syntax)
	require.ErrorContains(t, err, "syntax.yml:5")
	require.ErrorContains(t, err, "previous rules keep running")
	require.Equal(t, []string{"good"}, e.RuleGroups())

	err = e.LoadRules(unknown)
	require.ErrorContains(t, err, "unknown.yml:5")
	require.ErrorContains(t, err, "nosuch_function")
	require.Equal(t, []string{"good"}, e.RuleGroups())
}

func TestEvaluator_BuiltinRules_AllGroupsLoaded(t *testing.T) {
	cfg := testConfig(t)
	e, err := New(cfg, slog.New(slog.DiscardHandler), discardSink{})
	require.NoError(t, err)
	t.Cleanup(func() { e.db.Close() })
	require.Equal(t, []string{"agent-jobs", "benches", "host", "mariadb", "meta", "sites"}, e.RuleGroups())
}

type discardSink struct{}

func (discardSink) Send([]alerting.Alert) {}
