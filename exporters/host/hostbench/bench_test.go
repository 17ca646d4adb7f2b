package hostbench

import (
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	cpu := startCPU(b)
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
	cpu.report()
	b.ReportMetric(float64(series), "series")
}

// BenchmarkHostScrapeHTTP is BenchmarkHostScrape the way the agent serves it:
// with the agent's own Go and process (SelfCollector) collectors and node_exporter's
// node_scrape_collector_* series, through promhttp, gzipped at the fastest
// level as agent/gzip.go does for a client that accepts it as Prometheus
// does (minus the network and the basic auth). Profile it with -cpuprofile
// to see the whole scrape path.
func BenchmarkHostScrapeHTTP(b *testing.B) {
	h, err := realHost()
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		exporters.NewSet(slog.New(slog.DiscardHandler), 10*time.Second, h.Collectors(), exporters.AlsoAsNode(h.NodeCollectorNames()...)),
		collectors.NewGoCollector(),
		host.NewSelfCollector(""),
	)
	inner := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, DisableCompression: true})
	gz, err := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	if err != nil {
		b.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gz.Reset(w)
		w.Header().Set("Content-Encoding", "gzip")
		inner.ServeHTTP(gzipWriter{ResponseWriter: w, gz: gz}, r)
		gz.Close()
	})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")

	size := 0
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Encoding") != "gzip" {
			b.Fatalf("HTTP %d, Content-Encoding %q", rec.Code, rec.Header().Get("Content-Encoding"))
		}
		size = rec.Body.Len()
	}
	cpu.report()
	b.ReportMetric(float64(size), "gzip-bytes")
}

// gzipWriter is agent/gzip.go's: the response, compressed.
type gzipWriter struct {
	http.ResponseWriter
	gz *gzip.Writer
}

func (w gzipWriter) Write(p []byte) (int, error) { return w.gz.Write(p) }

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
			cpu := startCPU(b)
			for b.Loop() {
				if err := cs[name].Update(context.Background(), ch); err != nil {
					b.Fatal(err)
				}
				for len(ch) > 0 {
					<-ch
				}
			}
			cpu.report()
		})
	}
}

// cpuClock measures the CPU time of the whole test process (every thread,
// the garbage collector's included) over a benchmark: what scrapebench reads
// from /proc/<pid>/stat, and steadier than ns/op when other work shares the
// machine.
type cpuClock struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) cpuClock {
	return cpuClock{b: b, start: processCPU(b)}
}

// report adds cpu-ns/op to the benchmark's results.
func (c cpuClock) report() {
	c.b.ReportMetric(float64(processCPU(c.b)-c.start)/float64(c.b.N), "cpu-ns/op")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProcessCollector compares client_golang's process collector with
// host.SelfCollector, which the agent registers in its place, in this
// process (whose open files include the host collectors' kept ones).
func BenchmarkProcessCollector(b *testing.B) {
	h, err := realHost()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range h.Collectors() { // open the files a running agent keeps open
		_ = c.Update(context.Background(), make(chan prometheus.Metric, 1<<14))
	}
	for name, c := range map[string]prometheus.Collector{
		"client_golang": collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		"self":          host.NewSelfCollector(""),
	} {
		b.Run(name, func(b *testing.B) {
			ch := make(chan prometheus.Metric, 64)
			b.ReportAllocs()
			cpu := startCPU(b)
			for b.Loop() {
				c.Collect(ch)
				for len(ch) > 0 {
					<-ch
				}
			}
			cpu.report()
		})
	}
}
