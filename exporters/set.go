package exporters

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector gathers one group of metrics. Update is called once per scrape; ctx
// carries the collector's deadline. Metrics sent after the deadline are dropped.
type Collector interface {
	Update(ctx context.Context, ch chan<- prometheus.Metric) error
}

// Set is a prometheus.Collector that runs named collectors concurrently.
type Set struct {
	logger     *slog.Logger
	timeout    time.Duration
	names      []string
	collectors map[string]Collector

	successDesc  *prometheus.Desc
	durationDesc *prometheus.Desc
	// node names the collectors also reported under node_exporter's
	// node_scrape_collector_* names.
	node                              map[string]bool
	nodeSuccessDesc, nodeDurationDesc *prometheus.Desc

	mu       sync.Mutex
	lastErrs map[string]string // last error logged per collector, so a lasting failure is logged once
}

var _ prometheus.Collector = (*Set)(nil)

// SetOption changes a Set at NewSet.
type SetOption func(*Set)

// AlsoAsNode reports the success and duration of the named collectors under
// node_exporter's names too (node_scrape_collector_success and
// node_scrape_collector_duration_seconds), which dashboards built for
// node_exporter ("Node Exporter Full") read.
func AlsoAsNode(names ...string) SetOption {
	return func(s *Set) {
		for _, n := range names {
			s.node[n] = true
		}
	}
}

// NewSet returns a Set running collectors, each with the given deadline.
func NewSet(logger *slog.Logger, timeout time.Duration, collectors map[string]Collector, opts ...SetOption) *Set {
	names := make([]string, 0, len(collectors))
	for n := range collectors {
		names = append(names, n)
	}
	sort.Strings(names)
	s := &Set{
		logger:     logger,
		timeout:    timeout,
		names:      names,
		collectors: collectors,
		successDesc: prometheus.NewDesc("hybrid_exporter_collector_success",
			"1 if the collector's last update succeeded within its deadline, 0 otherwise.", []string{"collector"}, nil),
		durationDesc: prometheus.NewDesc("hybrid_exporter_collector_duration_seconds",
			"Time the collector's last update took, capped at its deadline.", []string{"collector"}, nil),
		nodeSuccessDesc: prometheus.NewDesc("node_scrape_collector_success",
			"node_exporter: Whether a collector succeeded.", []string{"collector"}, nil),
		nodeDurationDesc: prometheus.NewDesc("node_scrape_collector_duration_seconds",
			"node_exporter: Duration of a collector scrape.", []string{"collector"}, nil),
		node:     map[string]bool{},
		lastErrs: map[string]string{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Names lists the collectors in the set, sorted.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Describe sends nothing: the set's metrics depend on what the host has, so it
// is an unchecked collector.
func (s *Set) Describe(chan<- *prometheus.Desc) {}

// Collect runs every collector concurrently and forwards their metrics.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for _, name := range s.names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(name, s.collectors[name], ch)
		}()
	}
	wg.Wait()
}

// run updates one collector under its deadline. The collector writes to a
// channel of its own; run forwards until the collector returns or the deadline
// passes, and then drains (and drops) whatever a late collector still sends.
func (s *Set) run(name string, c Collector, out chan<- prometheus.Metric) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()

	// Buffered, so a collector does not hand each metric over one at a time.
	inner := make(chan prometheus.Metric, 256)
	done := make(chan error, 1)
	go func() {
		done <- c.Update(ctx, inner)
		close(inner)
	}()

	var err error
forward:
	for {
		select {
		case m, ok := <-inner:
			if !ok {
				err = <-done
				break forward
			}
			out <- m
		case <-ctx.Done():
			err = ctx.Err()
			go func() {
				for range inner {
				}
			}()
			break forward
		}
	}
	elapsed := time.Since(start)
	if elapsed > s.timeout || errors.Is(err, context.DeadlineExceeded) {
		elapsed = s.timeout
	}

	success := 1.0
	if err != nil {
		success = 0
	}
	s.logResult(name, err, elapsed)
	out <- prometheus.MustNewConstMetric(s.successDesc, prometheus.GaugeValue, success, name)
	out <- prometheus.MustNewConstMetric(s.durationDesc, prometheus.GaugeValue, elapsed.Seconds(), name)
	if s.node[name] {
		out <- prometheus.MustNewConstMetric(s.nodeSuccessDesc, prometheus.GaugeValue, success, name)
		out <- prometheus.MustNewConstMetric(s.nodeDurationDesc, prometheus.GaugeValue, elapsed.Seconds(), name)
	}
}

// logResult logs a failure once when it starts (or its message changes) and
// once when the collector recovers, rather than on every scrape.
func (s *Set) logResult(name string, err error, elapsed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, failing := s.lastErrs[name]
	switch {
	case err != nil && (!failing || prev != err.Error()):
		s.lastErrs[name] = err.Error()
		s.logger.Warn("collector failed", "collector", name, "err", err, "duration", elapsed)
	case err == nil && failing:
		delete(s.lastErrs, name)
		s.logger.Info("collector recovered", "collector", name)
	}
}
