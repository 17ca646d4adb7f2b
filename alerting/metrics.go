package alerting

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons an alert is dropped, the reason label of hybrid_alerting_dropped_total.
const (
	dropQueueFull = "queue_full" // the receiver's queue was full; the oldest went
	dropRejected  = "rejected"   // the receiver refused it (PermanentError)
	dropInvalid   = "invalid"    // Send refused it: no labels, bad names
)

type metrics struct {
	notifications *prometheus.CounterVec
	errors        *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	queues        *queueCollector
}

func newMetrics(reg prometheus.Registerer, dests []*destination) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hybrid_alerting_notifications_total",
			Help: "Alerts a receiver has accepted.",
		}, []string{"receiver"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hybrid_alerting_errors_total",
			Help: "Alerts in delivery attempts that failed; an alert retried three times counts three.",
		}, []string{"receiver"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hybrid_alerting_dropped_total",
			Help: "Alerts a receiver will never get: queue_full (the oldest went), rejected by the receiver, invalid.",
		}, []string{"receiver", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hybrid_alerting_latency_seconds",
			Help:    "Duration of one delivery attempt to a receiver, successful or not.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"receiver"}),
		queues: &queueCollector{dests: dests,
			length: prometheus.NewDesc("hybrid_alerting_queue_length",
				"Alerts waiting for a receiver to accept them.", []string{"receiver"}, nil),
			capacity: prometheus.NewDesc("hybrid_alerting_queue_capacity",
				"Alerts a receiver's queue holds before it drops the oldest.", []string{"receiver"}, nil),
		},
	}
	for _, d := range dests {
		m.notifications.WithLabelValues(d.name)
		m.errors.WithLabelValues(d.name)
		for _, r := range []string{dropQueueFull, dropRejected, dropInvalid} {
			m.dropped.WithLabelValues(d.name, r)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.notifications, m.errors, m.dropped, m.latency, m.queues} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register alerting metrics: %w", err)
		}
	}
	return m, nil
}

// queueCollector reads each queue's length when scraped, so the gauge is
// never behind.
type queueCollector struct {
	dests            []*destination
	length, capacity *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.length
	ch <- c.capacity
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.dests {
		ch <- prometheus.MustNewConstMetric(c.length, prometheus.GaugeValue, float64(d.queue.len()), d.name)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(d.queue.capacity), d.name)
	}
}
