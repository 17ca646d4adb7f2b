package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// entropyCollector is node_exporter's entropy collector
// (node_entropy_available_bits and node_entropy_pool_size_bits, from
// /proc/sys/kernel/random/entropy_avail and poolsize), reading the two files
// through descriptors kept open. node_exporter also reads, and drops, three
// other files of that folder on each scrape; those are not read.
// TestReimplemented_SameAsNodeExporter holds it to node_exporter's.
type entropyCollector struct {
	availDesc, poolDesc *prometheus.Desc

	mu          sync.Mutex
	avail, pool *keptFile
}

var _ exporters.Collector = (*entropyCollector)(nil)

func newEntropyCollector(procFS string) *entropyCollector {
	dir := filepath.Join(procFS, "sys/kernel/random")
	return &entropyCollector{
		availDesc: prometheus.NewDesc("node_entropy_available_bits", "Bits of available entropy.", nil, nil),
		poolDesc:  prometheus.NewDesc("node_entropy_pool_size_bits", "Bits of entropy pool.", nil, nil),
		avail:     newKeptFile(filepath.Join(dir, "entropy_avail"), false),
		pool:      newKeptFile(filepath.Join(dir, "poolsize"), false),
	}
}

func (c *entropyCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// As node_exporter: a file that cannot be read or parsed fails the
	// update before any series; a missing one ends it there.
	avail, availErr := readUintFile(c.avail)
	pool, poolErr := readUintFile(c.pool)
	for _, e := range []struct {
		f   *keptFile
		err error
	}{{c.avail, availErr}, {c.pool, poolErr}} {
		if e.err != nil && !errors.Is(e.err, os.ErrNotExist) {
			return fmt.Errorf("failed to get kernel random stats: %s: %w", e.f.path, e.err)
		}
	}
	if availErr != nil {
		return errors.New("couldn't get entropy_avail")
	}
	ch <- prometheus.MustNewConstMetric(c.availDesc, prometheus.GaugeValue, float64(avail))
	if poolErr != nil {
		return errors.New("couldn't get entropy poolsize")
	}
	ch <- prometheus.MustNewConstMetric(c.poolDesc, prometheus.GaugeValue, float64(pool))
	return nil
}

func (c *entropyCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.avail.close()
	c.pool.close()
}
