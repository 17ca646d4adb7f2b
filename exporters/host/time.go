package host

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// timeCollector is node_exporter's time collector: the time, the zone
// offset, and the available and current clocksource of each
// <SysFS>/devices/system/clocksource/clocksource<N>, whose device label is its
// index in the sorted names (clocksource10 is "1" when there is a
// clocksource0), not N. node_exporter globs the directory and opens two files
// per clocksource on every scrape; this collector keeps the directory and the
// files open. TestReimplemented_SameAsNodeExporter holds it to node_exporter's.
type timeCollector struct {
	now, zone, available, current *prometheus.Desc
	dir                           string

	mu      sync.Mutex
	listed  *keptDir // the clocksource folder, listed on each scrape
	names   []string
	sources map[string]*clocksourceFiles
}

var _ exporters.Collector = (*timeCollector)(nil)

type clocksourceFiles struct {
	available, current *keptFile
	seen               bool // listed by this update
}

func newTimeCollector(sysFS string) *timeCollector {
	return &timeCollector{
		now: prometheus.NewDesc("node_time_seconds", "System time in seconds since epoch (1970).", nil, nil),
		zone: prometheus.NewDesc("node_time_zone_offset_seconds", "System time zone offset in seconds.",
			[]string{"time_zone"}, nil),
		available: prometheus.NewDesc("node_time_clocksource_available_info",
			"Available clocksources read from '/sys/devices/system/clocksource'.", []string{"device", "clocksource"}, nil),
		current: prometheus.NewDesc("node_time_clocksource_current_info",
			"Current clocksource read from '/sys/devices/system/clocksource'.", []string{"device", "clocksource"}, nil),
		dir:     filepath.Join(sysFS, "devices/system/clocksource"),
		listed:  newKeptDir(filepath.Join(sysFS, "devices/system/clocksource")),
		sources: map[string]*clocksourceFiles{},
	}
}

func (c *timeCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	now := time.Now()
	zone, offset := now.Zone()
	ch <- prometheus.MustNewConstMetric(c.now, prometheus.GaugeValue, float64(now.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(c.zone, prometheus.GaugeValue, float64(offset), zone)

	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.list(); err != nil {
		return fmt.Errorf("list %s: %w", c.dir, err)
	}
	// Read all before sending, as node_exporter fails before sending any.
	type source struct {
		available [][]byte
		current   string
	}
	sources := make([]source, len(c.names))
	for i, name := range c.names {
		cs := c.sources[name]
		available, err := readClocksourceFile(cs.available)
		if err != nil {
			return err
		}
		current, err := readClocksourceFile(cs.current)
		if err != nil {
			return err
		}
		sources[i].current = string(current)
		for len(available) > 0 {
			var f []byte
			if f, available = nextField(available); len(f) > 0 {
				sources[i].available = append(sources[i].available, f)
			}
		}
	}
	for i, s := range sources {
		device := strconv.Itoa(i)
		for _, a := range s.available {
			ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue, 1, device, string(a))
		}
		ch <- prometheus.MustNewConstMetric(c.current, prometheus.GaugeValue, 1, device, s.current)
	}
	return nil
}

// list sets names to the clocksource<digit>... entries of the directory, in
// the order filepath.Glob returns them, and keeps their files.
func (c *timeCollector) list() error {
	var err error
	c.names, err = c.listed.list(c.names[:0], func(name []byte) bool {
		n, ok := bytes.CutPrefix(name, []byte("clocksource"))
		return ok && len(n) > 0 && n[0] >= '0' && n[0] <= '9'
	})
	if err != nil {
		return err
	}
	for _, cs := range c.sources {
		cs.seen = false
	}
	for _, name := range c.names {
		cs := c.sources[name]
		if cs == nil {
			cs = &clocksourceFiles{
				available: newKeptFile(filepath.Join(c.dir, name, "available_clocksource"), false),
				current:   newKeptFile(filepath.Join(c.dir, name, "current_clocksource"), false),
			}
			c.sources[name] = cs
		}
		cs.seen = true
	}
	for name, cs := range c.sources {
		if !cs.seen { // gone
			cs.available.close()
			cs.current.close()
			delete(c.sources, name)
		}
	}
	return nil
}

// readClocksourceFile reads a file as node_exporter does: its first 128
// bytes, without leading and trailing white space.
func readClocksourceFile(f *keptFile) ([]byte, error) {
	data, err := f.read()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.path, err)
	}
	return bytes.TrimSpace(data[:min(len(data), 128)]), nil
}

func (c *timeCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listed.close()
	for _, cs := range c.sources {
		cs.available.close()
		cs.current.close()
	}
}
