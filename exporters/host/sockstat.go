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

// sockstatCollector is node_exporter's sockstat collector:
// node_sockstat_sockets_used from /proc/net/sockstat, and
// node_sockstat_<PROTO>_<key> for the inuse (0 when absent), orphan, tw, alloc,
// mem and memory of each protocol of /proc/net/sockstat and sockstat6, plus
// mem_bytes (mem in pages, times the page size); gauges, with node_exporter's
// help. A missing file (IPv6 disabled) is skipped. The two files are kept open
// and parsed in place, and descriptors built once per series;
// TestReimplemented_SameAsNodeExporter holds it to node_exporter's.
type sockstatCollector struct {
	used     *prometheus.Desc
	pageSize float64

	mu    sync.Mutex
	files [2]*keptFile // sockstat, sockstat6
	descs map[string]*prometheus.Desc
	name  []byte // scratch
}

var _ exporters.Collector = (*sockstatCollector)(nil)

// sockstatKeys are the keys of a protocol's line node_exporter reports.
var sockstatKeys = [...]string{"inuse", "orphan", "tw", "alloc", "mem", "memory"}

func newSockstatCollector(procFS string) *sockstatCollector {
	return &sockstatCollector{
		used:     prometheus.NewDesc("node_sockstat_sockets_used", "Number of IPv4 sockets in use.", nil, nil),
		pageSize: float64(os.Getpagesize()),
		files: [2]*keptFile{
			newKeptFile(filepath.Join(procFS, "net/sockstat"), false),
			newKeptFile(filepath.Join(procFS, "net/sockstat6"), false),
		},
		descs: map[string]*prometheus.Desc{},
	}
}

func (c *sockstatCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var data [2][]byte
	for i, f := range c.files {
		d, err := f.read()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", f.path, err)
		}
		data[i] = d
	}
	// Both files are parsed before anything is sent, as node_exporter does.
	var values [2][]sockstatValue
	for i := range data {
		var err error
		if values[i], err = c.parse(data[i], i == 1); err != nil {
			return fmt.Errorf("parse %s: %w", c.files[i].path, err)
		}
	}
	for _, vs := range values {
		for _, v := range vs {
			ch <- prometheus.MustNewConstMetric(v.desc, prometheus.GaugeValue, v.value)
		}
	}
	return nil
}

type sockstatValue struct {
	desc  *prometheus.Desc
	value float64
}

// parse parses "sockets: used 52" and "TCP: inuse 15 orphan 0 tw 12 alloc 15
// mem 170" lines, fields separated by single spaces.
func (c *sockstatCollector) parse(data []byte, v6 bool) ([]sockstatValue, error) {
	var out []sockstatValue
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		if bytes.Count(line, []byte(" ")) < 2 {
			return nil, fmt.Errorf("malformed sockstat line: %q", line)
		}
		proto, kvs, _ := bytes.Cut(line, []byte(" "))
		proto = bytes.TrimSuffix(proto, []byte(":"))
		if bytes.Count(kvs, []byte(" "))%2 == 0 {
			return nil, fmt.Errorf("odd number of fields in key/value pairs %q", line)
		}
		var vals [len(sockstatKeys)]int64
		var set [len(sockstatKeys)]bool
		var used int64
		for len(kvs) > 0 {
			var key, value []byte
			key, kvs, _ = bytes.Cut(kvs, []byte(" "))
			value, kvs, _ = bytes.Cut(kvs, []byte(" "))
			v, err := parseSockstatInt(value)
			if err != nil {
				return nil, fmt.Errorf("sockstat key/value pairs from %q: %w", line, err)
			}
			if string(key) == "used" {
				used = v
			}
			for i, k := range sockstatKeys {
				if string(key) == k {
					vals[i], set[i] = v, true
				}
			}
		}
		if string(proto) == "sockets" {
			if !v6 {
				out = append(out, sockstatValue{c.used, float64(used)})
			}
			continue
		}
		set[0] = true // inuse, 0 when the line lacks it
		for i, k := range sockstatKeys {
			if set[i] {
				out = append(out, sockstatValue{c.desc(proto, k), float64(vals[i])})
			}
		}
		if set[4] { // mem, in pages
			out = append(out, sockstatValue{c.desc(proto, "mem_bytes"), float64(vals[4]) * c.pageSize})
		}
	}
	return out, nil
}

func (c *sockstatCollector) desc(proto []byte, key string) *prometheus.Desc {
	c.name = append(append(append(c.name[:0], proto...), '_'), key...)
	d := c.descs[string(c.name)]
	if d == nil {
		d = prometheus.NewDesc("node_sockstat_"+string(c.name),
			"Number of "+string(proto)+" sockets in state "+key+".", nil, nil)
		c.descs[string(c.name)] = d
	}
	return d
}

// parseSockstatInt is strconv.ParseInt(b, 0, 64), as node_exporter parses the
// values, without allocating for plain decimals.
func parseSockstatInt(b []byte) (int64, error) {
	if v, ok := parseUint(b); ok && (len(b) == 1 || b[0] != '0') && v <= 1<<62 {
		return int64(v), nil
	}
	return strconv.ParseInt(string(b), 0, 64)
}

func (c *sockstatCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.files {
		f.close()
	}
}
