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

	"github.com/hybridsuite/hybrid/exporters"
)

// conntrackCollector is node_exporter's conntrack collector: the table's size
// and limit from /proc/sys/net/netfilter/nf_conntrack_{count,max}, and the
// per-CPU counters of /proc/net/stat/nf_conntrack added up, as gauges. A
// missing file (no conntrack module) ends the update with what was sent so far
// and no error, as node_exporter's ErrNoData does. The three files are kept
// open and parsed in place; TestReimplemented_SameAsNodeExporter holds it to
// node_exporter's.
type conntrackCollector struct {
	entries, limit *prometheus.Desc
	stats          [len(conntrackStatColumns)]*prometheus.Desc

	mu               sync.Mutex
	count, max, stat *keptFile
	fields           [][]byte // scratch
}

var _ exporters.Collector = (*conntrackCollector)(nil)

// conntrackStatColumns are the columns of /proc/net/stat/nf_conntrack
// reported, by position (search_restart, the 17th, is 0 when absent), with
// their metric names less "node_nf_conntrack_stat_" and help.
var conntrackStatColumns = [...]struct {
	column     int
	name, help string
}{
	{2, "found", "Number of searched entries which were successful."},
	{4, "invalid", "Number of packets seen which can not be tracked."},
	{5, "ignore", "Number of packets seen which are already connected to a conntrack entry."},
	{8, "insert", "Number of entries inserted into the list."},
	{9, "insert_failed", "Number of entries for which list insertion was attempted but failed."},
	{10, "drop", "Number of packets dropped due to conntrack failure."},
	{11, "early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached."},
	{16, "search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes."},
}

func newConntrackCollector(procFS string) *conntrackCollector {
	c := &conntrackCollector{
		entries: prometheus.NewDesc("node_nf_conntrack_entries",
			"Number of currently allocated flow entries for connection tracking.", nil, nil),
		limit: prometheus.NewDesc("node_nf_conntrack_entries_limit",
			"Maximum size of connection tracking table.", nil, nil),
		count: newKeptFile(filepath.Join(procFS, "sys/net/netfilter/nf_conntrack_count"), false),
		max:   newKeptFile(filepath.Join(procFS, "sys/net/netfilter/nf_conntrack_max"), false),
		stat:  newKeptFile(filepath.Join(procFS, "net/stat/nf_conntrack"), true),
	}
	for i, col := range conntrackStatColumns {
		c.stats[i] = prometheus.NewDesc("node_nf_conntrack_stat_"+col.name, col.help, nil, nil)
	}
	return c
}

func (c *conntrackCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []struct {
		file *keptFile
		desc *prometheus.Desc
	}{{c.count, c.entries}, {c.max, c.limit}} {
		data, err := m.file.read()
		if err != nil {
			return conntrackErr(m.file, err)
		}
		v, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
		if err != nil {
			return conntrackErr(m.file, err)
		}
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, float64(v))
	}
	data, err := c.stat.read()
	if err != nil {
		return conntrackErr(c.stat, err)
	}
	var sums [len(conntrackStatColumns)]uint64
	_, data = cutLine(data) // the header
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		c.fields = c.fields[:0]
		for {
			var f []byte
			if f, line = nextField(line); len(f) == 0 {
				break
			}
			c.fields = append(c.fields, f)
		}
		if len(c.fields) < 16 || len(c.fields) > 17 {
			return conntrackErr(c.stat, fmt.Errorf("invalid conntrackstat entry, invalid number of fields: %d", len(c.fields)))
		}
		var values [17]uint64
		for i, f := range c.fields {
			if values[i], err = parseHex(f); err != nil {
				return conntrackErr(c.stat, err)
			}
		}
		for i, col := range conntrackStatColumns {
			sums[i] += values[col.column]
		}
	}
	for i, v := range sums {
		ch <- prometheus.MustNewConstMetric(c.stats[i], prometheus.GaugeValue, float64(v))
	}
	return nil
}

func conntrackErr(f *keptFile, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil // conntrack not loaded
	}
	return fmt.Errorf("read %s: %w", f.path, err)
}

// parseHex is strconv.ParseUint(b, 16, 64) without its allocation.
func parseHex(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 16 {
		return strconv.ParseUint(string(b), 16, 64)
	}
	var v uint64
	for _, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			v = v<<4 | uint64(ch-'0')
		case ch >= 'a' && ch <= 'f':
			v = v<<4 | uint64(ch-'a'+10)
		case ch >= 'A' && ch <= 'F':
			v = v<<4 | uint64(ch-'A'+10)
		default:
			return strconv.ParseUint(string(b), 16, 64)
		}
	}
	return v, nil
}

func (c *conntrackCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count.close()
	c.max.close()
	c.stat.close()
}
