package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// netdevCollector is node_exporter's netdev collector with its default
// flags (node_network_<key>_total{device}, the legacy names), reading
// /proc/net/dev through a descriptor kept open where node_exporter opens a
// netlink socket and decodes a dump of every attribute of every link on
// each scrape.
//
// The kernel writes /proc/net/dev from the statistics netlink carries
// (dev_get_stats), added up as node_exporter adds them up for its legacy
// names; the one netlink counter /proc/net/dev lacks, rx_nohandler, is read
// from sysfs (statistics/rx_nohandler, the same statistics), through a
// descriptor kept open per device. With fromProcFS (node_exporter's
// --no-collector.netdev.netlink) there is no receive_nohandler, as in
// node_exporter's. TestReimplemented_SameAsNodeExporter (node_exporter
// reading the same file) and hostbench (node_exporter over netlink) hold it
// to node_exporter's.
type netdevCollector struct {
	sysFS            string
	withNoHandler    bool
	exclude, include *regexp.Regexp
	descs            [17]*prometheus.Desc // by netdevKeys

	mu      sync.Mutex
	file    *keptFile
	devices map[string]*netdevDevice // by name, as last seen; excluded ones too, with no file open
	seen    uint64                   // update number
}

type netdevDevice struct {
	name      string
	noHandler *keptFile
	seen      uint64
}

var _ exporters.Collector = (*netdevCollector)(nil)

// netdevKeys are the series of a device: the 16 columns of /proc/net/dev in
// their order, then the counter from sysfs.
var netdevKeys = [17]string{
	"receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo", "receive_frame",
	"receive_compressed", "receive_multicast",
	"transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo", "transmit_colls",
	"transmit_carrier", "transmit_compressed",
	"receive_nohandler",
}

// newNetdevCollector returns nil when node_exporter's flags ask for what it
// does not do (detailed names, ifAlias labels, addresses): node_exporter's
// own is used then.
func newNetdevCollector(procFS, sysFS string, fromProcFS bool) (*netdevCollector, error) {
	for _, flag := range []string{"collector.netdev.enable-detailed-metrics", "collector.netdev.label-ifalias", "collector.netdev.address-info"} {
		if nodeFlag(flag) == "true" {
			return nil, nil
		}
	}
	if nodeFlag("collector.netdev.device-whitelist") != "" || nodeFlag("collector.netdev.device-blacklist") != "" {
		return nil, nil
	}
	c := &netdevCollector{
		sysFS:         sysFS,
		withNoHandler: !fromProcFS,
		file:          newKeptFile(filepath.Join(procFS, "net/dev"), true),
		devices:       map[string]*netdevDevice{},
	}
	for i, key := range netdevKeys {
		c.descs[i] = prometheus.NewDesc("node_network_"+key+"_total", "Network device statistic "+key+".", []string{"device"}, nil)
	}
	var err error
	if p := nodeFlag("collector.netdev.device-exclude"); p != "" {
		if c.exclude, err = regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("netdev device-exclude pattern: %w", err)
		}
	}
	if p := nodeFlag("collector.netdev.device-include"); p != "" {
		if c.include, err = regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("netdev device-include pattern: %w", err)
		}
	}
	return c, nil
}

func (c *netdevCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("couldn't get netstats: read %s: %w", c.file.path, err)
	}
	c.seen++
	// Parsed whole before any series is sent, as node_exporter does.
	type row struct {
		name   string
		values [17]uint64
	}
	var rows []row
	_, data = cutLine(data)
	_, data = cutLine(data) // two lines of headers
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		colon := -1
		for i := len(line) - 1; i >= 0; i-- {
			if line[i] == ':' {
				colon = i
				break
			}
		}
		if colon < 0 {
			return fmt.Errorf("couldn't get netstats: invalid line %q in %s, missing colon", line, c.file.path)
		}
		name, _ := nextField(line[:colon])
		if len(name) == 0 {
			return fmt.Errorf("couldn't get netstats: invalid line %q in %s, empty interface name", line, c.file.path)
		}
		var r row
		rest := line[colon+1:]
		for i := range 16 {
			var field []byte
			field, rest = nextField(rest)
			v, ok := parseUint(field)
			if !ok {
				return fmt.Errorf("couldn't get netstats: column %d %q of %s in %s is not a number", i+1, field, name, c.file.path)
			}
			r.values[i] = v
		}
		dev := c.devices[string(name)]
		if dev == nil {
			dev = &netdevDevice{name: string(name),
				noHandler: newKeptFile(filepath.Join(c.sysFS, "class/net", string(name), "statistics/rx_nohandler"), false)}
			c.devices[dev.name] = dev
		}
		dev.seen = c.seen
		r.name = dev.name
		if (c.exclude != nil && c.exclude.MatchString(r.name)) || (c.include != nil && !c.include.MatchString(r.name)) {
			continue
		}
		if c.withNoHandler {
			r.values[16] = c.noHandler(dev)
		}
		rows = append(rows, r)
	}
	for name, dev := range c.devices {
		if dev.seen != c.seen {
			dev.noHandler.close()
			delete(c.devices, name)
		}
	}
	n := len(c.descs)
	if !c.withNoHandler {
		n--
	}
	for _, r := range rows {
		for i, desc := range c.descs[:n] {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(r.values[i]), r.name)
		}
	}
	return nil
}

// noHandler reads a device's rx_nohandler: 0 when it cannot be read, as
// netlink reports it for a kernel that does not count it. A device replaced
// by another of the same name fails its read (ENODEV) and is read again.
func (c *netdevCollector) noHandler(dev *netdevDevice) uint64 {
	for range 2 {
		v, err := readUintFile(dev.noHandler)
		if err == nil {
			return v
		}
		if errors.Is(err, os.ErrNotExist) {
			return 0
		}
	}
	return 0
}

func (c *netdevCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
	for _, dev := range c.devices {
		dev.noHandler.close()
	}
}
