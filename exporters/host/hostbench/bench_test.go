package hostbench

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/hybridsuite/hybrid/exporters"
	"github.com/hybridsuite/hybrid/exporters/host"
)

// realHost is the Host with the default options, on this machine: one per
// process, since node_exporter's flags are.
var realHost = sync.OnceValues(func() (*host.Host, error) {
	return host.New(slog.New(slog.DiscardHandler), host.Options{})
})

// BenchmarkHostScrape measures one scrape of the default set on this machine:
// every collector run concurrently by an exporters.Set, gathered and encoded
// as the text format, as a /metrics request would be (minus HTTP). The
// directory sizes are not measured here (Start is not called): a scrape only
// reads their last measurement.
func BenchmarkHostScrape(b *testing.B) {
	h, err := realHost()
	if err != nil {
		b.Fatal(err)
	}
	set := exporters.NewSet(slog.New(slog.DiscardHandler), 10*time.Second, h.Collectors())
	reg := prometheus.NewRegistry()
	reg.MustRegister(set)

	series := 0
	b.ReportAllocs()
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		series = 0
		for _, mf := range mfs {
			series += len(mf.GetMetric())
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(series), "series")
}

// BenchmarkHostCollector measures each collector alone, to find the costly ones.
func BenchmarkHostCollector(b *testing.B) {
	h, err := realHost()
	if err != nil {
		b.Fatal(err)
	}
	cs := h.Collectors()
	names := make([]string, 0, len(cs))
	for name := range cs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b.Run(name, func(b *testing.B) {
			ch := make(chan prometheus.Metric, 1<<14)
			b.ReportAllocs()
			for b.Loop() {
				if err := cs[name].Update(context.Background(), ch); err != nil {
					b.Fatal(err)
				}
				for len(ch) > 0 {
					<-ch
				}
			}
		})
	}
}
