package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Notifier. Zero values take the defaults named.
type Options struct {
	// Receivers are where alerts go, by name (the metrics' receiver label):
	// one per Alertmanager, or the control plane's intake when there is none.
	// Each has its own queue and retries, so a slow or unreachable one never
	// holds back the others.
	Receivers map[string]Receiver
	// EvaluationInterval of the rule groups; a firing alert sent without an
	// end ends 4 x max(EvaluationInterval, 1m) after it was sent.
	EvaluationInterval time.Duration
	// QueueCapacity is how many alerts (distinct label sets) each receiver's
	// queue holds before it drops the oldest. Default 10000.
	QueueCapacity int
	// MaxBatchSize is the most alerts one delivery carries. Default 256.
	MaxBatchSize int
	// Timeout of one delivery attempt. Default 10s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts, which
	// doubles from the one to the other. Default 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout is how long Run still tries to deliver what is queued
	// once its context is done. Default 5s; negative: not at all.
	DrainTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer gets the hybrid_alerting_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now defaults to time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultQueueCapacity = 10000
	DefaultMaxBatchSize  = 256
	DefaultTimeout       = 10 * time.Second
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = time.Minute
	DefaultDrainTimeout  = 5 * time.Second
)

// Notifier queues alerts for each of its receivers and delivers them in the
// background (Run), retrying until each receiver has accepted the newest
// state of every alert.
type Notifier struct {
	opts    Options
	logger  *slog.Logger
	dests   []*destination
	metrics *metrics
	running atomic.Bool
}

type destination struct {
	name     string
	receiver Receiver
	queue    *queue
	logger   *slog.Logger
}

// NewNotifier checks opts and registers the Notifier's metrics.
func NewNotifier(opts Options) (*Notifier, error) {
	if len(opts.Receivers) == 0 {
		return nil, errors.New("new notifier: no receivers")
	}
	if opts.QueueCapacity == 0 {
		opts.QueueCapacity = DefaultQueueCapacity
	}
	if opts.MaxBatchSize == 0 {
		opts.MaxBatchSize = DefaultMaxBatchSize
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var errs []error
	if opts.QueueCapacity < 0 {
		errs = append(errs, fmt.Errorf("queue capacity: must be positive, got %d", opts.QueueCapacity))
	}
	if opts.MaxBatchSize < 0 {
		errs = append(errs, fmt.Errorf("max batch size: must be positive, got %d", opts.MaxBatchSize))
	}
	if opts.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %s", opts.Timeout))
	}
	if opts.MinBackoff < 0 || opts.MaxBackoff < opts.MinBackoff {
		errs = append(errs, fmt.Errorf("backoff: want 0 < min <= max, got min %s, max %s", opts.MinBackoff, opts.MaxBackoff))
	}
	n := &Notifier{opts: opts, logger: opts.Logger}
	for _, name := range slices.Sorted(maps.Keys(opts.Receivers)) {
		r := opts.Receivers[name]
		if name == "" || r == nil {
			errs = append(errs, fmt.Errorf("receiver %q: needs a name and a receiver", name))
			continue
		}
		n.dests = append(n.dests, &destination{
			name:     name,
			receiver: r,
			queue:    newQueue(opts.QueueCapacity),
			logger:   opts.Logger.With("receiver", name),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new notifier: %w", err)
	}
	m, err := newMetrics(opts.Registerer, n.dests)
	if err != nil {
		return nil, fmt.Errorf("new notifier: %w", err)
	}
	n.metrics = m
	return n, nil
}

// Send queues alerts for every receiver and returns at once; it never
// blocks on delivery. A firing alert without EndsAt gets one (see the
// package documentation); an alert without StartsAt starts now. Alerts
// Alertmanager would refuse (no labels, invalid names) are logged and
// counted as dropped, reason invalid.
func (n *Notifier) Send(alerts []Alert) {
	now := n.opts.Now()
	ready := make([]Alert, 0, len(alerts))
	for _, a := range alerts {
		a = a.clone()
		if a.StartsAt.IsZero() {
			a.StartsAt = now
			if !a.EndsAt.IsZero() && a.EndsAt.Before(now) {
				a.StartsAt = a.EndsAt
			}
		}
		if a.EndsAt.IsZero() {
			a.EndsAt = firingEndsAt(now, n.opts.EvaluationInterval)
		}
		if err := a.validate(); err != nil {
			n.logger.Error("alert dropped: invalid", "alertname", a.Name(), "labels", a.Labels, "err", err)
			for _, d := range n.dests {
				n.metrics.dropped.WithLabelValues(d.name, dropInvalid).Inc()
			}
			continue
		}
		ready = append(ready, a)
	}
	if len(ready) == 0 {
		return
	}
	for _, d := range n.dests {
		if dropped := d.queue.push(ready); dropped > 0 {
			n.metrics.dropped.WithLabelValues(d.name, dropQueueFull).Add(float64(dropped))
			d.logger.Warn("alert queue full, oldest alerts dropped", "dropped", dropped, "capacity", d.queue.capacity)
		}
	}
}

// Run delivers queued alerts until ctx is done, then tries for
// DrainTimeout more to deliver what is left. It returns nil once stopped,
// and an error if the Notifier is already running.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("run notifier: already running")
	}
	defer n.running.Store(false)
	var wg sync.WaitGroup
	for _, d := range n.dests {
		wg.Go(func() { n.loop(ctx, d) })
	}
	wg.Wait()
	return nil
}

func (n *Notifier) loop(ctx context.Context, d *destination) {
	var wait time.Duration
	failures := 0
	for {
		select {
		case <-ctx.Done():
			n.drain(ctx, d)
			return
		case <-d.queue.ready:
		}
		for ctx.Err() == nil {
			batch := d.queue.take(n.opts.MaxBatchSize)
			if len(batch) == 0 {
				break
			}
			undelivered, err := n.deliver(ctx, d, batch)
			if err == nil {
				if failures > 0 {
					d.logger.Info("alert delivery recovered", "failed_attempts", failures)
				}
				failures, wait = 0, 0
				continue
			}
			n.requeue(d, undelivered)
			if ctx.Err() != nil {
				break
			}
			failures++
			wait = nextBackoff(wait, n.opts.MinBackoff, n.opts.MaxBackoff)
			// One line when delivery starts failing and one when it recovers,
			// not one per retry.
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			d.logger.Log(ctx, level, "alert delivery failed, will retry",
				"alerts", len(undelivered), "attempt", failures, "retry_in", wait, "err", err)
			if !sleep(ctx, wait) {
				break
			}
		}
	}
}

// deliver sends batch and returns what is still to be sent. When the
// receiver rejects a batch as a whole, the alerts are sent one by one, so
// that only the ones it rejects are dropped.
func (n *Notifier) deliver(ctx context.Context, d *destination, batch []Alert) (undelivered []Alert, err error) {
	err = n.attempt(ctx, d, batch)
	var perm *PermanentError
	if err == nil || !errors.As(err, &perm) {
		if err != nil {
			return batch, err
		}
		return nil, nil
	}
	if len(batch) == 1 {
		n.reject(d, batch[0], err)
		return nil, nil
	}
	for i, a := range batch {
		err := n.attempt(ctx, d, []Alert{a})
		switch {
		case err == nil:
		case errors.As(err, &perm):
			n.reject(d, a, err)
		default:
			return batch[i:], err
		}
	}
	return nil, nil
}

func (n *Notifier) attempt(ctx context.Context, d *destination, alerts []Alert) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	start := time.Now()
	err := d.receiver.Notify(ctx, alerts)
	n.metrics.latency.WithLabelValues(d.name).Observe(time.Since(start).Seconds())
	if err != nil {
		n.metrics.errors.WithLabelValues(d.name).Add(float64(len(alerts)))
		return fmt.Errorf("notify %s: %w", d.name, err)
	}
	n.metrics.notifications.WithLabelValues(d.name).Add(float64(len(alerts)))
	return nil
}

func (n *Notifier) reject(d *destination, a Alert, err error) {
	n.metrics.dropped.WithLabelValues(d.name, dropRejected).Inc()
	d.logger.Error("alert dropped: rejected by receiver", "alertname", a.Name(), "labels", a.Labels, "err", err)
}

func (n *Notifier) requeue(d *destination, alerts []Alert) {
	if dropped := d.queue.requeue(alerts); dropped > 0 {
		n.metrics.dropped.WithLabelValues(d.name, dropQueueFull).Add(float64(dropped))
		d.logger.Warn("alert queue full, oldest alerts dropped", "dropped", dropped, "capacity", d.queue.capacity)
	}
}

// drain makes a last attempt at what is queued when Run stops, so that a
// restart of the control core loses as little as possible.
func (n *Notifier) drain(ctx context.Context, d *destination) {
	if n.opts.DrainTimeout < 0 || d.queue.len() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.opts.DrainTimeout)
	defer cancel()
	for {
		batch := d.queue.take(n.opts.MaxBatchSize)
		if len(batch) == 0 {
			return
		}
		undelivered, err := n.deliver(ctx, d, batch)
		if err != nil {
			n.requeue(d, undelivered)
			d.logger.Warn("alerts left undelivered at shutdown", "alerts", d.queue.len(), "err", err)
			return
		}
	}
}

// sleep waits for d or until ctx is done, and says whether it waited it out.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
