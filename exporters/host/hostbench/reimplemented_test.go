package hostbench

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// The host package reimplements two of node_exporter's collectors: on this
// machine they must report what node_exporter's own do, configured by the
// same flags (the real /proc and /sys, Docker's devices ignored, the default
// netstat fields).
func TestReimplementedCollectors_SameAsNodeExporter_OnThisMachine(t *testing.T) {
	h, err := realHost()
	require.NoError(t, err)
	for name, newNode := range map[string]func(*slog.Logger) (collector.Collector, error){
		"netclass": collector.NewNetClassCollector,
		"netstat":  collector.NewNetStatCollector,
	} {
		t.Run(name, func(t *testing.T) {
			var ours exporters.Collector = h.Collectors()[name]
			require.NotNil(t, ours)
			node, err := newNode(slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			// Counters move between the two reads: try a few times
			// before calling it a difference.
			var diff error
			for range 5 {
				reg := prometheus.NewPedanticRegistry()
				reg.MustRegister(collectorFunc(node.Update))
				mfs, err := reg.Gather()
				require.NoError(t, err)
				var want bytes.Buffer
				enc := expfmt.NewEncoder(&want, expfmt.NewFormat(expfmt.TypeTextPlain))
				for _, mf := range mfs {
					require.NoError(t, enc.Encode(mf))
				}
				oursReg := prometheus.NewPedanticRegistry()
				oursReg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) error {
					return ours.Update(context.Background(), ch)
				}))
				if diff = testutil.GatherAndCompare(oursReg, &want); diff == nil {
					return
				}
			}
			t.Fatal(diff)
		})
	}
}
