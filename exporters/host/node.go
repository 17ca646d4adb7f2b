package host

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/node_exporter/collector"

	"github.com/hybridsuite/hybrid/exporters"
)

// nodeCollector runs one of node_exporter's collectors as one of ours, so its
// series are node_exporter's to the letter. It ignores ctx, as node_exporter's
// collectors do: the Set cuts it off at its deadline.
type nodeCollector struct {
	name   string
	c      collector.Collector
	logger *slog.Logger
}

var _ exporters.Collector = (*nodeCollector)(nil)

func (n *nodeCollector) Update(_ context.Context, ch chan<- prometheus.Metric) (err error) {
	// node_exporter's collectors expect a complete /proc and /sys; on a host
	// (or in a container) that lacks a file they expect, a panic must cost
	// this collector's series, not the agent.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node_exporter collector %s panicked: %v", n.name, r)
		}
	}()
	if err := n.c.Update(ch); err != nil {
		// No data means the host lacks the feature (no conntrack module,
		// no md arrays, no PSI): nothing to report, and nothing wrong.
		if collector.IsNoDataError(err) {
			n.logger.Debug("node_exporter collector has no data on this host", "err", err)
			return nil
		}
		return fmt.Errorf("node_exporter collector %s: %w", n.name, err)
	}
	return nil
}
