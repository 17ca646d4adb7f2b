package evaluator

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/alerting"
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

// fakeScrapeState is what the holder sees of the scrapes and rules, set by
// hand.
type fakeScrapeState struct {
	up     map[targetID]bool
	active map[string]bool
	wait   time.Duration
	upThen map[targetID]float64 // up at the evaluation, when known
}

func (f *fakeScrapeState) targetsUp() map[targetID]bool  { return maps.Clone(f.up) }
func (f *fakeScrapeState) activeAlerts() map[string]bool { return maps.Clone(f.active) }
func (f *fakeScrapeState) releaseAfter() time.Duration   { return f.wait }
func (f *fakeScrapeState) upAt(t targetID, _ time.Time) (float64, bool) {
	if v, ok := f.upThen[t]; ok {
		return v, true
	}
	return 0, false
}

type recordingSink struct{ got []alerting.Alert }

func (s *recordingSink) Send(alerts []alerting.Alert) { s.got = append(s.got, alerts...) }

// take returns "alertname/status" of what was sent since the last take.
func (s *recordingSink) take(now time.Time) []string {
	var out []string
	for _, a := range s.got {
		out = append(out, a.Name()+"/"+a.Status(now))
	}
	s.got = nil
	return out
}

// holderAt is a holder on a fake clock and state, agent "a:9470" up.
func holderAt(t *testing.T) (*holder, *recordingSink, *fakeScrapeState, *time.Time) {
	sink := &recordingSink{}
	state := &fakeScrapeState{up: map[targetID]bool{{"hybrid-agent", "a:9470"}: true}, active: map[string]bool{}, wait: 2 * time.Second}
	h := newHolder(sink, time.Minute, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	h.state = state
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	return h, sink, state, &now
}

func agentAlert(name string, startsAt, endsAt time.Time) alerting.Alert {
	return alerting.Alert{
		Labels:      map[string]string{"alertname": name, "job": "hybrid-agent", "instance": "a:9470", "severity": "warning"},
		Annotations: map[string]string{"summary": name},
		StartsAt:    startsAt, EndsAt: endsAt,
	}
}

func TestHolder_PendingAgainAfterTargetBack_HeldUntilRulesDecide(t *testing.T) {
	h, sink, state, now := holderAt(t)
	start := *now
	a := agentAlert("MariaDBDown", start, start.Add(4*time.Minute))
	h.Send([]alerting.Alert{a})
	require.Equal(t, []string{"MariaDBDown/firing"}, sink.take(*now))

	// The agent dies: the alert resolves by absence, and is held.
	*now = now.Add(15 * time.Second)
	state.up[targetID{"hybrid-agent", "a:9470"}] = false
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, *now)})
	require.Equal(t, []string{"MariaDBDown/firing"}, sink.take(*now), "held: sent on firing")
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, *now)})
	require.Empty(t, sink.take(*now), "the rules manager's re-sent resolve is swallowed")
	for range 5 { // a minute: one re-send, so that Alertmanager keeps it
		*now = now.Add(15 * time.Second)
		h.tick()
	}
	require.Equal(t, []string{"MariaDBDown/firing"}, sink.take(*now))

	// Back, and the rule is pending again (its `for` starts over): held.
	state.up[targetID{"hybrid-agent", "a:9470"}] = true
	state.active[alertKey(a)] = true
	for range 4 {
		*now = now.Add(15 * time.Second)
		h.tick()
	}
	require.Equal(t, []string{"MariaDBDown/firing"}, sink.take(*now), "pending again: still held, re-sent once a minute")
	// The condition went away while pending: the target has been up longer
	// than releaseAfter, so the rules have decided; resolved.
	delete(state.active, alertKey(a))
	*now = now.Add(15 * time.Second)
	h.tick()
	resolved := sink.got
	require.Equal(t, []string{"MariaDBDown/resolved"}, sink.take(*now))
	require.True(t, resolved[0].StartsAt.Equal(start))
}

func TestHolder_FiresAgainAfterTargetBack_KeepsItsFirstStart(t *testing.T) {
	h, sink, state, now := holderAt(t)
	start := *now
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, start.Add(4*time.Minute))})
	*now = now.Add(15 * time.Second)
	state.up[targetID{"hybrid-agent", "a:9470"}] = false
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, *now)})
	sink.take(*now)

	*now = now.Add(15 * time.Second)
	state.up[targetID{"hybrid-agent", "a:9470"}] = true
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", *now, now.Add(4*time.Minute))})
	require.Len(t, sink.got, 1)
	require.True(t, sink.got[0].StartsAt.Equal(start), "one alert, not a new one: %s", sink.got[0].StartsAt)
	refired := sink.got[0].StartsAt
	sink.take(*now)
	*now = now.Add(time.Minute)
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", refired.Add(30*time.Second), *now)})
	require.Equal(t, []string{"MariaDBDown/resolved"}, sink.take(*now), "target up: a real resolve, passed on")
}

func TestHolder_DownAlertAlreadyFiring_HeldAlertMarkedAtOnce(t *testing.T) {
	h, sink, state, now := holderAt(t)
	start := *now
	state.up[targetID{"hybrid-agent", "a:9470"}] = false
	down := agentAlert("HybridAgentDown", start, start.Add(4*time.Minute))
	h.Send([]alerting.Alert{down})
	*now = now.Add(15 * time.Second)
	h.Send([]alerting.Alert{agentAlert("HostOutOfMemory", start.Add(-time.Hour), *now)})
	got := sink.got
	require.Equal(t, []string{"HybridAgentDown/firing", "HostOutOfMemory/firing"}, sink.take(*now))
	require.Contains(t, got[1].Annotations[annotationTargetDown], "HybridAgentDown fires for a:9470")
	require.Equal(t, "HostOutOfMemory", got[1].Annotations["summary"])
}

func TestHolder_AlertOfNoScrapeTarget_ResolvesAsUsual(t *testing.T) {
	h, sink, _, now := holderAt(t)
	probe := alerting.Alert{
		Labels:   map[string]string{"alertname": "SiteDown", "job": "site-probe", "instance": "a.example.com"},
		StartsAt: now.Add(-time.Hour), EndsAt: now.Add(-time.Second),
	}
	h.Send([]alerting.Alert{probe})
	require.Equal(t, []string{"SiteDown/resolved"}, sink.take(*now))
}

func TestHolder_TargetBack_ResolvedOnlyAfterReleaseAfter(t *testing.T) {
	h, sink, state, now := holderAt(t)
	start := *now
	state.wait = 30 * time.Second
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, start.Add(4*time.Minute))})
	*now = now.Add(15 * time.Second)
	state.up[targetID{"hybrid-agent", "a:9470"}] = false
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, *now)})
	sink.take(*now)

	state.up[targetID{"hybrid-agent", "a:9470"}] = true
	for i := range 3 { // up seen at the first tick; 20 s later, still held
		*now = now.Add(10 * time.Second)
		h.tick()
		require.Empty(t, sink.take(*now), "tick %d", i)
	}
	*now = now.Add(10 * time.Second)
	h.tick()
	require.Equal(t, []string{"MariaDBDown/resolved"}, sink.take(*now), "30 s after the target was seen up")
}

func TestHolder_TargetDownAlerts_AreBuiltInRulesOnUp(t *testing.T) {
	e, err := New(testConfig(t), slog.New(slog.DiscardHandler), discardSink{})
	require.NoError(t, err)
	t.Cleanup(func() { e.db.Close() })
	found := 0
	for _, r := range e.rules.AlertingRules() {
		if isTargetDownAlert(r.Name()) {
			found++
			require.Contains(t, r.Query().String(), "up{", "%s is about failed scrapes", r.Name())
		}
	}
	require.Equal(t, 2, found, "HybridAgentDown and ScrapeTargetDown are in rules/meta.yml")
}

func TestHolder_ScrapedAgainBetweenEvaluationAndSend_StillHeld(t *testing.T) {
	h, sink, state, now := holderAt(t)
	start := *now
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, start.Add(4*time.Minute))})
	sink.take(*now)
	// The evaluation saw up == 0 and the series gone; a scrape succeeded
	// before its resolve reached the holder.
	*now = now.Add(15 * time.Second)
	state.upThen = map[targetID]float64{{"hybrid-agent", "a:9470"}: 0}
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, *now)})
	require.Equal(t, []string{"MariaDBDown/firing"}, sink.take(*now))
}

// An alert resolved while its target was up stays resolved: the rules
// manager re-sends that resolve for 15 minutes, and a re-send after the
// target went down is not held (it would page again for what was fixed).
func TestHolder_ResolvedWhileUp_ReSentAfterTargetDown_PassesResolved(t *testing.T) {
	h, sink, state, now := holderAt(t)
	start := *now
	h.Send([]alerting.Alert{agentAlert("MariaDBDown", start, start.Add(4*time.Minute))})
	*now = now.Add(time.Minute)
	resolve := agentAlert("MariaDBDown", start, *now)
	h.Send([]alerting.Alert{resolve})
	require.Equal(t, []string{"MariaDBDown/firing", "MariaDBDown/resolved"}, sink.take(*now))

	*now = now.Add(5 * time.Minute)
	state.up[targetID{"hybrid-agent", "a:9470"}] = false
	h.Send([]alerting.Alert{resolve}) // the rules manager's re-send
	require.Equal(t, []string{"MariaDBDown/resolved"}, sink.take(*now))
	h.tick()
	require.Empty(t, sink.take(*now), "nothing held")
}
