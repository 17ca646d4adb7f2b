package exporters

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MinInterval wraps a collector so that it runs at most once per interval: a
// scrape sooner than that after the last successful run gets the same
// metrics again. For collectors whose cost grows with the host (one file per
// process) and whose values need no finer resolution than a scrape interval:
// with interval shorter than the scrape interval every scrape runs it, and
// several Prometheus servers scraping one agent do not multiply the cost.
// Failures are not cached: the next scrape runs the collector again.
func MinInterval(c Collector, interval time.Duration, now func() time.Time) Collector {
	if now == nil {
		now = time.Now
	}
	return &minInterval{c: c, interval: interval, now: now}
}

type minInterval struct {
	c        Collector
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

func (m *minInterval) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.at.IsZero() && m.now().Sub(m.at) < m.interval {
		for _, metric := range m.metrics {
			ch <- metric
		}
		return nil
	}
	inner := make(chan prometheus.Metric, 256)
	var collected []prometheus.Metric
	done := make(chan struct{})
	go func() {
		defer close(done)
		for metric := range inner {
			collected = append(collected, metric)
			ch <- metric
		}
	}()
	err := m.c.Update(ctx, inner)
	close(inner)
	<-done
	if err != nil {
		m.at, m.metrics = time.Time{}, nil
		return err
	}
	m.at, m.metrics = m.now(), collected
	return nil
}
