package host

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// vmstatCollector is node_exporter's vmstat collector: node_vmstat_<field>,
// untyped, for each field of /proc/vmstat that matches
// --collector.vmstat.fields, with node_exporter's help; a value that is not a
// number fails the update, matched or not. The file is kept open, parsed in
// place, and each field name matched once; TestVmstat_SameAsNodeExporter
// holds it to node_exporter's.
type vmstatCollector struct {
	fields *regexp.Regexp

	mu    sync.Mutex
	file  *keptFile
	descs map[string]*prometheus.Desc // by field; nil when the pattern does not match
}

var _ exporters.Collector = (*vmstatCollector)(nil)

func newVmstatCollector(procFS, fieldPattern string) (*vmstatCollector, error) {
	re, err := regexp.Compile(fieldPattern)
	if err != nil {
		return nil, fmt.Errorf("vmstat fields pattern: %w", err)
	}
	return &vmstatCollector{
		fields: re,
		file:   newKeptFile(filepath.Join(procFS, "vmstat"), true),
		descs:  map[string]*prometheus.Desc{},
	}, nil
}

func (c *vmstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("read %s: %w", c.file.path, err)
	}
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		name, rest := nextField(line)
		value, _ := nextField(rest)
		v, err := parseNetstatValue(value)
		if err != nil {
			return fmt.Errorf("parse %s: %w", c.file.path, err)
		}
		desc, ok := c.descs[string(name)]
		if !ok {
			if c.fields.Match(name) {
				desc = prometheus.NewDesc("node_vmstat_"+string(name), "/proc/vmstat information field "+string(name)+".", nil, nil)
			}
			c.descs[string(name)] = desc
		}
		if desc != nil {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.UntypedValue, v)
		}
	}
	return nil
}

func (c *vmstatCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
