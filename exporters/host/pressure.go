package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/exporters"
)

// pressureCollector is node_exporter's pressure collector: the "total" stall
// times of /proc/pressure/{cpu,io,memory,irq}, in seconds. A missing file is
// skipped; PSI disabled (EOPNOTSUPP), or a file without the "some" or "full"
// line it should have, ends the update with what was sent so far and no error,
// as node_exporter's ErrNoData does. The four files are kept open;
// TestPressure_SameAsNodeExporter holds it to node_exporter's.
type pressureCollector struct {
	mu        sync.Mutex
	resources [4]pressureResource
}

var _ exporters.Collector = (*pressureCollector)(nil)

type pressureResource struct {
	file       *keptFile
	some, full *prometheus.Desc // nil for the line not reported
}

func newPressureCollector(procFS string) *pressureCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("node_pressure_"+name, help, nil, nil)
	}
	file := func(name string) *keptFile { return newKeptFile(filepath.Join(procFS, "pressure", name), false) }
	return &pressureCollector{resources: [4]pressureResource{
		{file: file("cpu"),
			some: desc("cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time")},
		{file: file("io"),
			some: desc("io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion"),
			full: desc("io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion")},
		{file: file("memory"),
			some: desc("memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory"),
			full: desc("memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion")},
		{file: file("irq"),
			full: desc("irq_stalled_seconds_total", "Total time in seconds no process could make progress due to IRQ congestion")},
	}}
}

func (c *pressureCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.resources {
		r := &c.resources[i]
		data, err := r.file.read()
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil // PSI disabled
		case err != nil:
			return fmt.Errorf("read %s: %w", r.file.path, err)
		}
		some, full, err := parsePressure(data)
		if err != nil {
			return fmt.Errorf("parse %s: %w", r.file.path, err)
		}
		// cpu has "full" since Linux 5.13, irq never "some"; node_exporter
		// gives up on the collector when a line it reports is missing.
		if (r.some != nil && some < 0) || (r.full != nil && full < 0) {
			return nil
		}
		if r.some != nil {
			ch <- prometheus.MustNewConstMetric(r.some, prometheus.CounterValue, some/1000.0/1000.0)
		}
		if r.full != nil {
			ch <- prometheus.MustNewConstMetric(r.full, prometheus.CounterValue, full/1000.0/1000.0)
		}
	}
	return nil
}

// parsePressure returns the totals of the "some" and "full" lines of a PSI
// file, in microseconds, -1 for a line it lacks:
// "some avg10=0.00 avg60=0.00 avg300=0.00 total=123".
func parsePressure(data []byte) (some, full float64, err error) {
	some, full = -1, -1
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		kind, rest, _ := bytes.Cut(line, []byte(" "))
		var dst *float64
		switch string(kind) {
		case "some":
			dst = &some
		case "full":
			dst = &full
		default:
			continue
		}
		_, total, ok := bytes.Cut(rest, []byte(" total="))
		if !ok || !bytes.HasPrefix(rest, []byte("avg10=")) {
			return 0, 0, fmt.Errorf("malformed line %q", line)
		}
		v, ok := parseUint(total)
		if !ok {
			u, err := strconv.ParseUint(string(total), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("malformed line %q: %w", line, err)
			}
			v = u
		}
		*dst = float64(v)
	}
	return some, full, nil
}

func (c *pressureCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.resources {
		c.resources[i].file.close()
	}
}
