package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/exporters"
)

// udpQueuesCollector is node_exporter's udp_queues collector
// (node_udp_queues{queue,ip}: the tx_queue and rx_queue columns of
// /proc/net/udp and udp6, added up over the sockets), reading the files
// through descriptors kept open and parsing them in place. A missing file
// has no series. node_exporter parses every column of every socket into
// addresses and ports it then drops; here a line needs its columns, up to
// drops, and its queues must be hexadecimal, and the rest is left as the
// kernel wrote it. TestReimplemented_SameAsNodeExporter holds it to
// node_exporter's.
type udpQueuesCollector struct {
	desc *prometheus.Desc

	mu    sync.Mutex
	files [2]*keptFile // udp, udp6
}

var _ exporters.Collector = (*udpQueuesCollector)(nil)

func newUDPQueuesCollector(procFS string) *udpQueuesCollector {
	return &udpQueuesCollector{
		desc: prometheus.NewDesc("node_udp_queues", "Number of allocated memory in the kernel for UDP datagrams in bytes.",
			[]string{"queue", "ip"}, nil),
		files: [2]*keptFile{
			newKeptFile(filepath.Join(procFS, "net/udp"), true),
			newKeptFile(filepath.Join(procFS, "net/udp6"), true),
		},
	}
}

func (c *udpQueuesCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ip := range [2]string{"v4", "v6"} {
		tx, rx, err := c.sum(c.files[i])
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(tx), "tx", ip)
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(rx), "rx", ip)
	}
	return nil
}

// sum adds up the transmit and receive queues of the sockets of f.
func (c *udpQueuesCollector) sum(f *keptFile) (tx, rx uint64, err error) {
	data, err := f.read()
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, err
	}
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't get udp queued bytes: read %s: %w", f.path, err)
	}
	_, data = cutLine(data) // the header
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when
		// retrnsmt uid timeout inode ref pointer drops
		var queues []byte
		n := 0
		for rest := line; ; n++ {
			var field []byte
			if field, rest = nextField(rest); len(field) == 0 {
				break
			}
			if n == 4 {
				queues = field
			}
		}
		if n < 13 {
			return 0, 0, fmt.Errorf("couldn't get udp queued bytes: %d columns in %q of %s, expected 13", n, line, f.path)
		}
		txq, rxq, ok := bytes.Cut(queues, []byte(":"))
		t, err1 := parseHex(txq)
		r, err2 := parseHex(rxq)
		if !ok || bytes.IndexByte(rxq, ':') >= 0 || err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("couldn't get udp queued bytes: queues %q in %s", queues, f.path)
		}
		tx += t
		rx += r
	}
	return tx, rx, nil
}

func (c *udpQueuesCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.files {
		f.close()
	}
}
