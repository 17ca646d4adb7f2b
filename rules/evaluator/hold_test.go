package evaluator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeAgent serves /metrics behind basic auth, as the agent does, with one
// gauge the test sets, and stops answering (connections closed unanswered,
// as when the agent dies) while down is set.
type fakeAgent struct {
	*httptest.Server
	value atomic.Int64
	down  atomic.Bool
}

func startFakeAgent(t *testing.T) (*fakeAgent, Target) {
	t.Helper()
	const user, password = "hybrid", "hold-test-password"
	passwordFile := filepath.Join(t.TempDir(), "metrics.password")
	require.NoError(t, os.WriteFile(passwordFile, []byte(password), 0o600))
	a := &fakeAgent{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.down.Load() {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "# TYPE hold_test_value gauge\nhold_test_value %d\n", a.value.Load())
	}))
	t.Cleanup(a.Close)
	return a, Target{
		Name: "server-1", Address: strings.TrimPrefix(a.URL, "http://"),
		Username: user, PasswordFile: passwordFile,
	}
}

// holdTestRules are an alert on the fake agent's gauge and meta.yml's
// HybridAgentDown with a `for` of seconds.
const holdTestRules = `groups:
- name: hold-test
  rules:
  - alert: HoldTestValueHigh
    expr: hold_test_value > 5
    labels: {severity: warning}
    annotations: {summary: "the value is {{ $value }}"}
  - alert: HybridAgentDown
    expr: up{job="hybrid-agent"} == 0
    for: 8s
    labels: {severity: critical}
`

// index is the position of the first alert received after from that
// matches, or -1.
func (w *webhook) index(from int, match func(name, status string, annotations map[string]string) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := from; i < len(w.alerts); i++ {
		if a := w.alerts[i]; match(a.Labels["alertname"], a.Status, a.Annotations) {
			return i
		}
	}
	return -1
}

func (w *webhook) count(name, status string) int {
	n := 0
	for _, s := range w.names() {
		if s == name+"/"+status {
			n++
		}
	}
	return n
}

func TestMonitor_TargetStopsAnswering_AlertHeldFiringUntilDownAlert_ResolvedWhenBackWithoutCondition(t *testing.T) {
	agent, target := startFakeAgent(t)
	agent.value.Store(10)
	rulesFile := filepath.Join(t.TempDir(), "hold.yml")
	require.NoError(t, os.WriteFile(rulesFile, []byte(holdTestRules), 0o600))
	hook := newWebhook(t)
	cfg := testConfig(t)
	cfg.Targets = []Target{target}
	cfg.RuleFiles = []string{rulesFile}
	cfg.Alerting.WebhookURL = hook.URL
	startMonitor(t, cfg)

	const alert = "HoldTestValueHigh"
	noResolve := func(when string) {
		t.Helper()
		require.Zero(t, hook.count(alert, "resolved"), "%s: %s sent resolved: %v", when, alert, hook.names())
	}
	require.Eventually(t, func() bool { return hook.count(alert, "firing") == 1 },
		15*time.Second, 100*time.Millisecond, "the alert fires: %v", hook.names())

	// A blip shorter than HybridAgentDown's `for`: the series vanish and come
	// back with the condition still true. The receiver hears nothing: no
	// resolve, and no second firing notice (the alert keeps its start).
	t.Log("target stops answering for 2s")
	agent.down.Store(true)
	time.Sleep(2 * time.Second)
	agent.down.Store(false)
	time.Sleep(4 * time.Second)
	noResolve("after a 2s blip")
	require.Equal(t, 1, hook.count(alert, "firing"), "one firing notice across the blip: %v", hook.names())
	require.Zero(t, hook.count("HybridAgentDown", "firing"), "a 2s blip is under HybridAgentDown's for")

	// An outage: held firing until HybridAgentDown fires, then marked.
	t.Log("target stops answering")
	agent.down.Store(true)
	stopped := time.Now()
	require.Eventually(t, func() bool { return hook.count("HybridAgentDown", "firing") == 1 },
		20*time.Second, 100*time.Millisecond, "HybridAgentDown fires: %v", hook.names())
	t.Logf("HybridAgentDown reached the webhook %s after the target stopped", time.Since(stopped).Round(100*time.Millisecond))
	noResolve("before HybridAgentDown fired")
	down := hook.index(0, func(name, status string, _ map[string]string) bool {
		return name == "HybridAgentDown" && status == "firing"
	})
	var marked int
	require.Eventually(t, func() bool {
		marked = hook.index(down, func(name, status string, ann map[string]string) bool {
			return name == alert && status == "firing" && ann[annotationTargetDown] != ""
		})
		return marked > down
	}, 5*time.Second, 100*time.Millisecond, "the held alert is marked after HybridAgentDown: %v", hook.names())
	got, _ := hook.find(alert, "firing")
	require.Contains(t, got.Annotations[annotationTargetDown], "HybridAgentDown fires for "+target.Address)
	require.Equal(t, "the value is 10", got.Annotations["summary"], "its own annotations kept")
	// Kept firing while the target stays down.
	time.Sleep(3 * time.Second)
	noResolve("while the target stays down")
	require.Equal(t, 2, hook.count(alert, "firing"), "the first notice and the marked one: %v", hook.names())

	// Back without the condition: the rules decide, and the resolve follows.
	t.Log("target answers again, value 1")
	agent.value.Store(1)
	agent.down.Store(false)
	back := time.Now()
	require.Eventually(t, func() bool { return hook.count(alert, "resolved") == 1 },
		15*time.Second, 100*time.Millisecond, "resolved once the target is back: %v", hook.names())
	t.Logf("resolved %s after the target came back", time.Since(back).Round(100*time.Millisecond))
	resolved, _ := hook.find(alert, "resolved")
	require.NotContains(t, resolved.Annotations, annotationTargetDown, "the resolve is a real one")
	require.True(t, resolved.StartsAt.Equal(got.StartsAt), "the same alert resolves: %s, %s", resolved.StartsAt, got.StartsAt)
	require.False(t, resolved.EndsAt.Before(back), "resolved at %s, after the target came back at %s", resolved.EndsAt, back)
	require.Eventually(t, func() bool { return hook.count("HybridAgentDown", "resolved") == 1 },
		10*time.Second, 100*time.Millisecond, "HybridAgentDown resolves: %v", hook.names())
}
