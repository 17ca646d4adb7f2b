package sitelog

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// promCollector adapts a Collector to a registry, as exporters.Set does.
type promCollector struct{ c *Collector }

func collectorFunc(c *Collector) prometheus.Collector { return promCollector{c} }

func (p promCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(p, ch) }

func (p promCollector) Collect(ch chan<- prometheus.Metric) { _ = p.c.Update(context.Background(), ch) }
