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

// arpCollector is node_exporter's arp collector (node_arp_entries{device}),
// reading /proc/net/arp through a descriptor kept open where node_exporter
// asks the kernel over netlink: a new netlink socket and a dump of every
// link, to name the devices, on each scrape.
//
// It counts what netlink reports. The kernel lists in /proc/net/arp the IPv4
// neighbour table without its NUD_NOARP entries, as node_exporter's netlink
// mode counts it, and adds the proxy entries (flag ATF_PUBLISH), which
// netlink does not dump and which are skipped here. One difference remains:
// an entry being created (NUD_NONE, before its first resolution starts) is
// not in /proc/net/arp, and is counted by netlink for that instant.
// TestReimplemented_SameAsNodeExporter (node_exporter reading the same
// file) and hostbench (node_exporter over netlink) hold it to
// node_exporter's.
type arpCollector struct {
	desc             *prometheus.Desc
	exclude, include *regexp.Regexp // node_exporter's --collector.arp.device-*; nil when unset

	mu   sync.Mutex
	file *keptFile
	// counts is by device, kept from one update to the next so that a
	// device's name is not allocated again; a device without entries is
	// dropped.
	counts map[string]int
}

var _ exporters.Collector = (*arpCollector)(nil)

// atfPublish marks a proxy entry in /proc/net/arp (include/uapi/linux/if_arp.h).
const atfPublish = 0x08

func newArpCollector(procFS, exclude, include string) (*arpCollector, error) {
	c := &arpCollector{
		desc:   prometheus.NewDesc("node_arp_entries", "ARP entries by device", []string{"device"}, nil),
		file:   newKeptFile(filepath.Join(procFS, "net/arp"), true),
		counts: map[string]int{},
	}
	var err error
	if exclude != "" {
		if c.exclude, err = regexp.Compile(exclude); err != nil {
			return nil, fmt.Errorf("arp device-exclude pattern: %w", err)
		}
	}
	if include != "" {
		if c.include, err = regexp.Compile(include); err != nil {
			return nil, fmt.Errorf("arp device-include pattern: %w", err)
		}
	}
	return c, nil
}

func (c *arpCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.file.read()
	if err != nil {
		return fmt.Errorf("could not get ARP entries: read %s: %w", c.file.path, err)
	}
	for dev := range c.counts {
		c.counts[dev] = 0
	}
	_, data = cutLine(data) // the header
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		// IP address, HW type, Flags, HW address (empty for a device
		// without one), Mask, Device.
		var fields [6][]byte
		n := 0
		for rest := line; n < len(fields); n++ {
			if fields[n], rest = nextField(rest); len(fields[n]) == 0 {
				break
			}
		}
		if n == 0 {
			continue
		}
		if n < 5 {
			return fmt.Errorf("could not get ARP entries: unexpected line %q in %s", line, c.file.path)
		}
		flags, err := parseHex(trimHexPrefix(fields[2]))
		if err != nil {
			return fmt.Errorf("could not get ARP entries: flags %q in %s: %w", fields[2], c.file.path, err)
		}
		if flags&atfPublish != 0 {
			continue
		}
		dev := fields[n-1]
		if count, ok := c.counts[string(dev)]; ok {
			c.counts[string(dev)] = count + 1
		} else {
			c.counts[string(dev)] = 1
		}
	}
	for dev, count := range c.counts {
		if count == 0 {
			delete(c.counts, dev)
			continue
		}
		if (c.exclude != nil && c.exclude.MatchString(dev)) || (c.include != nil && !c.include.MatchString(dev)) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(count), dev)
	}
	return nil
}

// trimHexPrefix drops the 0x the kernel writes before a hexadecimal.
func trimHexPrefix(b []byte) []byte {
	if len(b) > 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') {
		return b[2:]
	}
	return b
}

func (c *arpCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.close()
}
