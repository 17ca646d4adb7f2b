package alerting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/promtooltest"
)

func TestNotifier_ReceiverDown_RetriesAndDeliversNewestState(t *testing.T) {
	back := make(chan struct{})
	rec := &recordingReceiver{fail: func(int, []Alert) error {
		select {
		case <-back:
			return nil
		default:
			return errUnreachable
		}
	}}
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"rec": rec}, MinBackoff: 20 * time.Millisecond})

	firing := testAlert("DiskFull", "a:9470", SeverityCritical)
	n.Send([]Alert{firing})
	require.Eventually(t, func() bool { return calls(rec) >= 2 }, 5*time.Second, time.Millisecond)
	// Resolved while the receiver is down: the newest state is what arrives.
	resolved := firing.clone()
	resolved.EndsAt = time.Now().Add(-time.Second)
	n.Send([]Alert{resolved})
	close(back)

	require.Eventually(t, func() bool { return len(rec.snapshot()) > 0 }, 5*time.Second, 5*time.Millisecond)
	require.Len(t, rec.snapshot(), 1, "one delivery of the newest state, not the stale firing one")
	require.Equal(t, StatusResolved, rec.snapshot()[0].Status(time.Now()))
	require.GreaterOrEqual(t, testutil.ToFloat64(n.metrics.errors.WithLabelValues("rec")), 2.0)
	require.Equal(t, 1.0, testutil.ToFloat64(n.metrics.notifications.WithLabelValues("rec")))
	require.Zero(t, testutil.ToFloat64(n.metrics.dropped.WithLabelValues("rec", dropQueueFull)))
}

func TestNotifier_ReceiverDownLong_KeepsEveryAlert(t *testing.T) {
	down := make(chan struct{})
	rec := &recordingReceiver{fail: func(int, []Alert) error {
		select {
		case <-down:
			return nil
		default:
			return errUnreachable
		}
	}}
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"rec": rec}, MaxBatchSize: 7})
	for i := range 50 {
		n.Send([]Alert{testAlert(fmt.Sprintf("A%d", i), "a:9470", SeverityWarning)})
	}
	require.Eventually(t, func() bool { return calls(rec) >= 5 }, 5*time.Second, time.Millisecond)

	close(down)

	require.Eventually(t, func() bool { return len(rec.snapshot()) == 50 }, 5*time.Second, 5*time.Millisecond)
	seen := map[string]bool{}
	for _, a := range rec.snapshot() {
		seen[a.Name()] = true
	}
	require.Len(t, seen, 50)
}

func TestNotifier_QueueFull_DropsOldestAndCounts(t *testing.T) {
	rec := &recordingReceiver{fail: func(int, []Alert) error { return errUnreachable }}
	n, err := NewNotifier(Options{Receivers: map[string]Receiver{"rec": rec}, QueueCapacity: 5, Logger: testLogger(t)})
	require.NoError(t, err)

	for i := range 8 {
		n.Send([]Alert{testAlert(fmt.Sprintf("A%d", i), "a:9470", SeverityWarning)})
	}

	require.Equal(t, 3.0, testutil.ToFloat64(n.metrics.dropped.WithLabelValues("rec", dropQueueFull)))
	require.Equal(t, 5, n.dests[0].queue.len())
	require.Equal(t, "A3", n.dests[0].queue.take(1)[0].Name())
}

func TestNotifier_BatchRejected_DropsOnlyTheRejectedAlert(t *testing.T) {
	rec := &recordingReceiver{fail: func(_ int, alerts []Alert) error {
		for _, a := range alerts {
			if a.Name() == "Poison" {
				return &PermanentError{Err: errors.New("400 bad alert")}
			}
		}
		return nil
	}}
	n, err := NewNotifier(Options{Receivers: map[string]Receiver{"rec": rec}, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	n.Send([]Alert{testAlert("A", "x", SeverityWarning), testAlert("Poison", "x", SeverityWarning), testAlert("B", "x", SeverityWarning)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	require.Eventually(t, func() bool { return len(rec.snapshot()) == 2 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	require.Equal(t, []string{"A", "B"}, names(rec.snapshot()))
	require.Equal(t, 1.0, testutil.ToFloat64(n.metrics.dropped.WithLabelValues("rec", dropRejected)))
	require.Zero(t, n.dests[0].queue.len())
}

func TestNotifier_OneReceiverDown_OtherStillGetsAlerts(t *testing.T) {
	attempts := make(chan []string, 100)
	down := &recordingReceiver{fail: func(_ int, alerts []Alert) error {
		select {
		case attempts <- names(alerts):
		default:
		}
		return errUnreachable
	}}
	up := &recordingReceiver{}
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"am1": down, "am2": up}, DrainTimeout: -1})

	n.Send([]Alert{testAlert("DiskFull", "a:9470", SeverityCritical)})

	require.Eventually(t, func() bool { return len(up.snapshot()) == 1 }, 5*time.Second, 5*time.Millisecond)
	for range 3 {
		select {
		case got := <-attempts:
			require.Equal(t, []string{"DiskFull"}, got, "am1 keeps retrying the alert for when it is back")
		case <-time.After(5 * time.Second):
			t.Fatal("am1 not retried")
		}
	}
}

func TestNotifier_InvalidAlert_DroppedAndCounted(t *testing.T) {
	rec := &recordingReceiver{}
	var logs bytes.Buffer
	n, err := NewNotifier(Options{
		Receivers: map[string]Receiver{"rec": rec},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)

	n.Send([]Alert{{Labels: map[string]string{"bad-name": "x"}}})

	require.Equal(t, 1.0, testutil.ToFloat64(n.metrics.dropped.WithLabelValues("rec", dropInvalid)))
	require.Zero(t, n.dests[0].queue.len())
	require.Contains(t, logs.String(), `invalid label name \"bad-name\"`)
}

func TestNotifier_Stopped_DrainsQueuedAlerts(t *testing.T) {
	rec := &recordingReceiver{}
	n, err := NewNotifier(Options{Receivers: map[string]Receiver{"rec": rec}})
	require.NoError(t, err)
	n.Send([]Alert{testAlert("DiskFull", "a:9470", SeverityCritical)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	require.NoError(t, n.Run(ctx))

	require.Len(t, rec.snapshot(), 1)
}

func TestNotifier_RunTwice_Refused(t *testing.T) {
	n, err := NewNotifier(Options{Receivers: map[string]Receiver{"rec": &recordingReceiver{}}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	require.Eventually(t, n.running.Load, time.Second, time.Millisecond)

	require.Error(t, n.Run(ctx))

	cancel()
	require.NoError(t, <-done)
}

func TestNewNotifier_BadOptions_NamesEveryProblem(t *testing.T) {
	_, err := NewNotifier(Options{})
	require.ErrorContains(t, err, "no receivers")

	_, err = NewNotifier(Options{
		Receivers:     map[string]Receiver{"": &recordingReceiver{}},
		QueueCapacity: -1,
		MinBackoff:    time.Minute, MaxBackoff: time.Second,
	})
	require.ErrorContains(t, err, "queue capacity")
	require.ErrorContains(t, err, "backoff")
	require.ErrorContains(t, err, `receiver ""`)
}

func TestNotifier_Metrics_PassPromtoolLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	rec := &recordingReceiver{}
	n, err := NewNotifier(Options{Receivers: map[string]Receiver{"rec": rec}, Registerer: reg})
	require.NoError(t, err)
	n.Send([]Alert{testAlert("DiskFull", "a:9470", SeverityCritical)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, n.Run(ctx)) // drains: one delivery observed

	families, err := reg.Gather()
	require.NoError(t, err)
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	var got []string
	for _, f := range families {
		require.NoError(t, enc.Encode(f))
		got = append(got, f.GetName())
	}
	require.ElementsMatch(t, []string{
		"hybrid_alerting_notifications_total", "hybrid_alerting_errors_total", "hybrid_alerting_dropped_total",
		"hybrid_alerting_latency_seconds", "hybrid_alerting_queue_length", "hybrid_alerting_queue_capacity",
	}, got)
	require.Empty(t, promtooltest.Unexplained(promtooltest.CheckMetrics(t, text.Bytes())))
	require.Equal(t, 1.0, testutil.ToFloat64(n.metrics.notifications.WithLabelValues("rec")))
}

func calls(r *recordingReceiver) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func names(alerts []Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.Name())
	}
	return out
}
