package hostbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/node_exporter/collector"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/exporters"
)

// collectorFunc runs an Update function as a prometheus.Collector.
type collectorFunc func(ch chan<- prometheus.Metric) error

func (collectorFunc) Describe(chan<- *prometheus.Desc) {}

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	if err := f(ch); err != nil {
		panic(err)
	}
}

// The host package reimplements some of node_exporter's collectors: on this
// machine they must report what node_exporter's own do, configured by the
// same flags (the real /proc and /sys, Docker's devices ignored, the default
// netstat fields).
func TestReimplementedCollectors_SameAsNodeExporter_OnThisMachine(t *testing.T) {
	h, err := realHost()
	require.NoError(t, err)
	for name, newNode := range map[string]func(*slog.Logger) (collector.Collector, error){
		"arp":        collector.NewARPCollector, // over netlink
		"conntrack":  collector.NewConntrackCollector,
		"entropy":    collector.NewEntropyCollector,
		"filefd":     collector.NewFileFDStatCollector,
		"loadavg":    collector.NewLoadavgCollector,
		"meminfo":    collector.NewMeminfoCollector,
		"netclass":   collector.NewNetClassCollector,
		"netstat":    collector.NewNetStatCollector,
		"pressure":   collector.NewPressureStatsCollector,
		"sockstat":   collector.NewSockStatCollector,
		"softnet":    collector.NewSoftnetCollector,
		"stat":       collector.NewStatCollector,
		"udp_queues": collector.NewUDPqueuesCollector,
		"vmstat":     collector.NewvmStatCollector,
	} {
		t.Run(name, func(t *testing.T) {
			var ours exporters.Collector = h.Collectors()[name]
			require.NotNil(t, ours)
			node, err := newNode(slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			// Counters move between reads: ours is read between two
			// reads of node_exporter's and must fall between them; a
			// few tries before calling it a difference.
			var diff error
			for range 5 {
				before := gatherNode(t, node)
				got := gatherText(t, func(ch chan<- prometheus.Metric) error {
					return ours.Update(context.Background(), ch)
				})
				after := gatherNode(t, node)
				// node_exporter counts in node_filefd_allocated the file it
				// opens to read the count; ours reads a file kept open.
				slack := 0.0
				if name == "filefd" {
					slack = 1
				}
				if diff = sandwiched(before, got, after, slack); diff == nil {
					return
				}
			}
			t.Fatal(diff)
		})
	}
}

func gatherNode(t *testing.T, node collector.Collector) []byte {
	return gatherText(t, node.Update)
}

func gatherText(t *testing.T, update collectorFunc) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(update)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var out bytes.Buffer
	enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		require.NoError(t, enc.Encode(mf))
	}
	return out.Bytes()
}

// sandwiched checks that got, in the text format, has the lines of before and
// after (HELP, TYPE, names and labels, in order) and that each of its values
// lies between the two others, or up to slack below.
func sandwiched(before, got, after []byte, slack float64) error {
	b, g, a := bytes.Split(before, []byte("\n")), bytes.Split(got, []byte("\n")), bytes.Split(after, []byte("\n"))
	if len(g) != len(b) || len(g) != len(a) {
		return fmt.Errorf("%d lines, node_exporter's %d and %d:\n%s\nnode_exporter's:\n%s", len(g), len(b), len(a), got, before)
	}
	for i := range g {
		if bytes.Equal(g[i], b[i]) || bytes.Equal(g[i], a[i]) {
			continue
		}
		gs, gv, _ := bytes.Cut(g[i], []byte(" "))
		bs, bv, _ := bytes.Cut(b[i], []byte(" "))
		as, av, _ := bytes.Cut(a[i], []byte(" "))
		if bytes.HasPrefix(g[i], []byte("#")) || !bytes.Equal(gs, bs) || !bytes.Equal(gs, as) {
			return fmt.Errorf("line %q, node_exporter's %q and %q", g[i], b[i], a[i])
		}
		x, err1 := strconv.ParseFloat(string(gv), 64)
		lo, err2 := strconv.ParseFloat(string(bv), 64)
		hi, err3 := strconv.ParseFloat(string(av), 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("line %q: %w", g[i], err)
		}
		if x < min(lo, hi)-slack || x > max(lo, hi) {
			return fmt.Errorf("%s is %v, node_exporter's %v before and %v after", gs, x, lo, hi)
		}
	}
	return nil
}
