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

// statCollector is node_exporter's stat collector: interrupts, context
// switches, forks, boot time, running and blocked processes from /proc/stat
// (0 for a line the file lacks), and softirqs per vector with
// --collector.stat.softirq. node_exporter parses the whole file, every CPU
// and every interrupt; this collector keeps it open and parses only the lines
// it reports. TestStat_SameAsNodeExporter holds it to node_exporter's.
type statCollector struct {
	softirq bool
	descs   [statLines]*prometheus.Desc
	types   [statLines]prometheus.ValueType
	softDsc *prometheus.Desc

	mu   sync.Mutex
	file *keptFile
}

var _ exporters.Collector = (*statCollector)(nil)

// The lines of /proc/stat reported, by their first field.
var statKeys = [...]string{"intr", "ctxt", "processes", "btime", "procs_running", "procs_blocked"}

const statLines = len(statKeys)

// softirqVectors are the vectors of the softirq line, after its total.
var softirqVectors = [...]string{"hi", "timer", "net_tx", "net_rx", "block", "block_iopoll", "tasklet", "sched", "hrtimer", "rcu"}

func newStatCollector(procFS string, softirq bool) *statCollector {
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &statCollector{
		softirq: softirq,
		descs: [statLines]*prometheus.Desc{
			desc("node_intr_total", "Total number of interrupts serviced."),
			desc("node_context_switches_total", "Total number of context switches."),
			desc("node_forks_total", "Total number of forks."),
			desc("node_boot_time_seconds", "Node boot time, in unixtime."),
			desc("node_procs_running", "Number of processes in runnable state."),
			desc("node_procs_blocked", "Number of processes blocked waiting for I/O to complete."),
		},
		types: [statLines]prometheus.ValueType{
			prometheus.CounterValue, prometheus.CounterValue, prometheus.CounterValue,
			prometheus.GaugeValue, prometheus.GaugeValue, prometheus.GaugeValue,
		},
		softDsc: prometheus.NewDesc("node_softirqs_total", "Number of softirq calls.", []string{"vector"}, nil),
		file:    newKeptFile(filepath.Join(procFS, "stat"), false),
	}
}

func (c *statCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("read %s: %w", c.file.path, err)
	}
	var values [statLines]uint64
	var soft [len(softirqVectors)]uint64
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		key, rest := nextField(line)
		first, rest := nextField(rest)
		if len(first) == 0 {
			continue
		}
		if string(key) == "softirq" {
			if !c.softirq {
				continue
			}
			// The total, then one count per vector.
			for i := range soft {
				var f []byte
				f, rest = nextField(rest)
				if soft[i], err = parseStatUint(f); err != nil {
					return fmt.Errorf("parse %s: softirq: %w", c.file.path, err)
				}
			}
			continue
		}
		for i, k := range statKeys {
			if string(key) == k {
				if values[i], err = parseStatUint(first); err != nil {
					return fmt.Errorf("parse %s: %s: %w", c.file.path, k, err)
				}
				break
			}
		}
	}
	for i, v := range values {
		ch <- prometheus.MustNewConstMetric(c.descs[i], c.types[i], float64(v))
	}
	if c.softirq {
		for i, v := range soft {
			ch <- prometheus.MustNewConstMetric(c.softDsc, prometheus.CounterValue, float64(v), softirqVectors[i])
		}
	}
	return nil
}

// parseStatUint is strconv.ParseUint(b, 10, 64), without allocating.
func parseStatUint(b []byte) (uint64, error) {
	if v, ok := parseUint(b); ok && len(b) < 20 {
		return v, nil
	}
	return strconv.ParseUint(string(b), 10, 64)
}

func (c *statCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
