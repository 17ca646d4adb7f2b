package host

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// loadavgCollector is node_exporter's loadavg collector (node_load1, 5, 15
// from the first three fields of /proc/loadavg), reading the file through a
// descriptor kept open; TestLoadavg_SameAsNodeExporter holds it to
// node_exporter's.
type loadavgCollector struct {
	descs [3]*prometheus.Desc

	mu   sync.Mutex
	file *keptFile
}

var _ exporters.Collector = (*loadavgCollector)(nil)

func newLoadavgCollector(procFS string) *loadavgCollector {
	return &loadavgCollector{
		descs: [3]*prometheus.Desc{
			prometheus.NewDesc("node_load1", "1m load average.", nil, nil),
			prometheus.NewDesc("node_load5", "5m load average.", nil, nil),
			prometheus.NewDesc("node_load15", "15m load average.", nil, nil),
		},
		file: newKeptFile(filepath.Join(procFS, "loadavg"), false),
	}
}

func (c *loadavgCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("read %s: %w", c.file.path, err)
	}
	var loads [3]float64
	for i := range loads {
		var field []byte
		field, data = nextField(data)
		if len(field) == 0 {
			return fmt.Errorf("unexpected content in %s", c.file.path)
		}
		if loads[i], err = strconv.ParseFloat(string(field), 64); err != nil {
			return fmt.Errorf("could not parse load %q: %w", field, err)
		}
	}
	for i, load := range loads {
		ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.GaugeValue, load)
	}
	return nil
}

func (c *loadavgCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
