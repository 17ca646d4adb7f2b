package alerting

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// recordingReceiver records what it accepts; fail, when set, decides
// whether a call fails (and with what) before anything is recorded.
type recordingReceiver struct {
	mu       sync.Mutex
	calls    int
	accepted []Alert
	fail     func(call int, alerts []Alert) error
}

func (r *recordingReceiver) Notify(_ context.Context, alerts []Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(r.calls, alerts); err != nil {
			return err
		}
	}
	r.accepted = append(r.accepted, alerts...)
	return nil
}

func (r *recordingReceiver) snapshot() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Alert(nil), r.accepted...)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var errUnreachable = errors.New("connection refused")

func testAlert(name, instance, severity string) Alert {
	return Alert{
		Labels: map[string]string{"alertname": name, "instance": instance, "severity": severity},
		Annotations: map[string]string{
			"summary":     name + " on " + instance,
			"runbook_url": "https://runbooks.example.com/" + name,
		},
	}
}

// startNotifier runs a Notifier with fast retries until the test ends.
func startNotifier(t *testing.T, opts Options) *Notifier {
	t.Helper()
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 10 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	n, err := NewNotifier(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return n
}
