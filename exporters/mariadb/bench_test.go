package mariadb

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hybridsuite/hybrid/exporters"
)

// benchCollector is a collector for the shared server, with the database
// sizes refreshed once so a scrape sends them too, as in the agent.
func benchCollector(b *testing.B) *Collector {
	b.Helper()
	srv := shared.Server(b)
	c, err := New(discardLogger(), Options{CredentialsFile: srv.WriteCredentials(b, "hybrid_exporter", "exporter-pw")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.databases.refresh(ctx); err != nil {
		b.Fatal(err)
	}
	return c
}

// cpuTime is the process' user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per iteration since start, which is what
// the agent pays: ns/op is wall time, mostly the server's.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkScrape is one Update against the real server: the queries, their
// parsing and the metrics built, without the registry and the encoding.
//
//	go test -run '^$' -bench Scrape -cpuprofile /tmp/cpu.out ./exporters/mariadb/
func BenchmarkScrape(b *testing.B) {
	c := benchCollector(b)
	ch := make(chan prometheus.Metric, 4096)
	b.ReportAllocs()
	series := 0
	start := cpuTime(b)
	for b.Loop() {
		if err := c.Update(context.Background(), ch); err != nil {
			b.Fatal(err)
		}
		series = len(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
	reportCPU(b, start)
	b.ReportMetric(float64(series), "series")
}

// BenchmarkScrape_HTTP is what the agent does per scrape of this collector:
// the framework's Set, a registry, promhttp's gzip-compressed text format.
func BenchmarkScrape_HTTP(b *testing.B) {
	c := benchCollector(b)
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporters.NewSet(discardLogger(), 10*time.Second, map[string]exporters.Collector{"mariadb": c}))
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		w := httptest.NewRecorder()
		w.Body.Grow(64 << 10)
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	}
	reportCPU(b, start)
}
