package exporters

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

type funcCollector func(ctx context.Context, ch chan<- prometheus.Metric) error

func (f funcCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	return f(ctx, ch)
}

var fooDesc = prometheus.NewDesc("foo", "A test metric.", nil, nil)

func okCollector(v float64) Collector {
	return funcCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
		ch <- prometheus.MustNewConstMetric(fooDesc, prometheus.GaugeValue, v)
		return nil
	})
}

func TestSet_FailingCollector_OthersStillReported(t *testing.T) {
	var logs bytes.Buffer
	set := NewSet(slog.New(slog.NewTextHandler(&logs, nil)), time.Second, map[string]Collector{
		"good": okCollector(42),
		"bad": funcCollector(func(context.Context, chan<- prometheus.Metric) error {
			return errors.New("backend unreachable")
		}),
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)

	expected := `
# HELP foo A test metric.
# TYPE foo gauge
foo 42
# HELP hybrid_exporter_collector_success 1 if the collector's last update succeeded within its deadline, 0 otherwise.
# TYPE hybrid_exporter_collector_success gauge
hybrid_exporter_collector_success{collector="bad"} 0
hybrid_exporter_collector_success{collector="good"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "foo", "hybrid_exporter_collector_success"))
	// A second failing scrape logs nothing new: a lasting failure is logged once.
	_, err := reg.Gather()
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), "backend unreachable"), logs.String())
}

func TestSet_SlowCollector_CutAtDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	set := NewSet(slog.New(slog.DiscardHandler), 100*time.Millisecond, map[string]Collector{
		"fast": okCollector(1),
		"slow": funcCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
			<-release // ignores its context, like node_exporter's collectors
			ch <- prometheus.MustNewConstMetric(fooDesc, prometheus.GaugeValue, 99)
			return nil
		}),
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)

	start := time.Now()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Less(t, time.Since(start), 2*time.Second, "the scrape must not wait for a collector past its deadline")

	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	require.Equal(t, 1.0, got["foo"], "only the fast collector's sample")
	require.Equal(t, 1.0, got["hybrid_exporter_collector_success/fast"])
	require.Equal(t, 0.0, got["hybrid_exporter_collector_success/slow"])
	require.InDelta(t, 0.1, got["hybrid_exporter_collector_duration_seconds/slow"], 0.0001, "duration is capped at the deadline")
}

func TestSet_Names_Sorted(t *testing.T) {
	set := NewSet(slog.New(slog.DiscardHandler), time.Second, map[string]Collector{"b": okCollector(1), "a": okCollector(1)})
	require.Equal(t, []string{"a", "b"}, set.Names())
}

func TestSet_AlsoAsNode_NamedCollectorsReportedUnderNodeExporterNamesToo(t *testing.T) {
	set := NewSet(slog.New(slog.DiscardHandler), time.Second, map[string]Collector{
		"cpu": okCollector(1),
		"broken": funcCollector(func(context.Context, chan<- prometheus.Metric) error {
			return errors.New("no such file")
		}),
		"mariadb": funcCollector(func(context.Context, chan<- prometheus.Metric) error { return nil }),
	}, AlsoAsNode("cpu", "broken"))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(set)

	expected := `
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="broken"} 0
node_scrape_collector_success{collector="cpu"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected), "node_scrape_collector_success"))
	n, err := testutil.GatherAndCount(reg, "node_scrape_collector_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 2, n, "one duration per node collector, none for mariadb")
}
