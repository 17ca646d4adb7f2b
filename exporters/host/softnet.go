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

// softnetCollector is node_exporter's softnet collector (node_softnet_*{cpu},
// one line of /proc/net/softnet_stat per CPU), reading the file through a
// descriptor kept open and parsing it in place. As node_exporter's, it
// reports every series on every kernel, 0 for the columns an older kernel
// lacks, and numbers the CPUs by line when the kernel does not write them
// (before Linux 5.14). TestReimplemented_SameAsNodeExporter holds it to
// node_exporter's.
type softnetCollector struct {
	descs [7]*prometheus.Desc // in the order of softnetColumn

	mu   sync.Mutex
	file *keptFile
	cpus []string // label values by CPU number, made once
}

var _ exporters.Collector = (*softnetCollector)(nil)

// softnetColumn is the column of /proc/net/softnet_stat each series reads
// (net/core/net-procfs.c), by the index of its descriptor; the CPU number is
// column 12. Columns 3 to 7 are unused, but must be numbers all the same.
var softnetColumn = [7]int{0, 1, 2, 8, 9, 10, 11}

func newSoftnetCollector(procFS string) *softnetCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("node_softnet_"+name, help, []string{"cpu"}, nil)
	}
	return &softnetCollector{
		descs: [7]*prometheus.Desc{
			desc("processed_total", "Number of processed packets"),
			desc("dropped_total", "Number of dropped packets"),
			desc("times_squeezed_total", "Number of times processing packets ran out of quota"),
			desc("cpu_collision_total", "Number of collision occur while obtaining device lock while transmitting"),
			desc("received_rps_total", "Number of times cpu woken up received_rps"),
			desc("flow_limit_count_total", "Number of times flow limit has been reached"),
			desc("backlog_len", "Softnet backlog status"),
		},
		file: newKeptFile(filepath.Join(procFS, "net/softnet_stat"), true),
	}
}

func (c *softnetCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("could not get softnet statistics: read %s: %w", c.file.path, err)
	}
	// Parsed whole before any series is sent, as node_exporter does.
	type row struct {
		values [13]uint64
		width  int
	}
	var rows []row
	for line := 0; len(data) > 0; line++ {
		var l []byte
		l, data = cutLine(data)
		var r row
		for rest := l; ; r.width++ {
			var f []byte
			if f, rest = nextField(rest); len(f) == 0 {
				break
			}
			if r.width >= len(r.values) {
				continue // columns of a later kernel
			}
			if r.values[r.width], err = parseHex(f); err != nil || r.values[r.width] > 1<<32-1 {
				return fmt.Errorf("could not get softnet statistics: column %d %q of line %d of %s is not a 32-bit hexadecimal",
					r.width+1, f, line+1, c.file.path)
			}
		}
		if r.width < 9 {
			return fmt.Errorf("could not get softnet statistics: %d columns on line %d of %s, expected at least 9",
				r.width, line+1, c.file.path)
		}
		if r.width < 13 {
			r.values[12] = uint64(line)
		}
		rows = append(rows, r)
	}
	for _, r := range rows {
		cpu := c.cpuLabel(r.values[12])
		for i, desc := range c.descs {
			v := float64(0)
			// node_exporter reads columns 11 and 12 only together.
			if col := softnetColumn[i]; col < r.width && (col < 11 || r.width >= 13) {
				v = float64(r.values[col])
			}
			typ := prometheus.CounterValue
			if i == len(c.descs)-1 {
				typ = prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(desc, typ, v, cpu)
		}
	}
	return nil
}

func (c *softnetCollector) cpuLabel(n uint64) string {
	if n >= 4096 {
		return strconv.FormatUint(n, 10)
	}
	for uint64(len(c.cpus)) <= n {
		c.cpus = append(c.cpus, strconv.Itoa(len(c.cpus)))
	}
	return c.cpus[n]
}

func (c *softnetCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
