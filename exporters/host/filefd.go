package host

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// filefdCollector is node_exporter's filefd collector (node_filefd_allocated
// and node_filefd_maximum, the first and third tab-separated fields of
// /proc/sys/fs/file-nr), reading the file through a descriptor kept open;
// TestFilefd_SameAsNodeExporter holds it to node_exporter's.
type filefdCollector struct {
	allocated, maximum *prometheus.Desc

	mu   sync.Mutex
	file *keptFile
}

var _ exporters.Collector = (*filefdCollector)(nil)

func newFilefdCollector(procFS string) *filefdCollector {
	return &filefdCollector{
		allocated: prometheus.NewDesc("node_filefd_allocated", "File descriptor statistics: allocated.", nil, nil),
		maximum:   prometheus.NewDesc("node_filefd_maximum", "File descriptor statistics: maximum.", nil, nil),
		file:      newKeptFile(filepath.Join(procFS, "sys/fs/file-nr"), false),
	}
}

func (c *filefdCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("read %s: %w", c.file.path, err)
	}
	allocated, rest, _ := bytes.Cut(bytes.TrimSpace(data), []byte("\t"))
	_, maximum, ok := bytes.Cut(rest, []byte("\t"))
	if !ok {
		return fmt.Errorf("unexpected number of file stats in %q", c.file.path)
	}
	maximum, _, _ = bytes.Cut(maximum, []byte("\t"))
	for _, m := range []struct {
		desc  *prometheus.Desc
		value []byte
	}{{c.allocated, allocated}, {c.maximum, maximum}} {
		v, err := strconv.ParseFloat(string(m.value), 64)
		if err != nil {
			return fmt.Errorf("invalid value %s in file-nr: %w", m.value, err)
		}
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, v)
	}
	return nil
}

func (c *filefdCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
