package nginx_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/nginx"
	"github.com/hybridsuite/hybrid/exporters/sitelog"
)

// statusBackend answers every path /<code> with that status code.
func statusBackend(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			code = http.StatusOK
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// startCounted starts an owned nginx whose site requests go to a sitelog
// collector, as the agent wires them.
func startCounted(t *testing.T) (*fixture, *sitelog.Collector) {
	t.Helper()
	bin := requireNginx(t)
	dir := t.TempDir()
	col, err := sitelog.New(sitelog.Options{Socket: filepath.Join(dir, "run", "access.sock"), GID: -1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	col.Start(ctx)
	t.Cleanup(func() {
		cancel()
		col.Wait()
	})
	opts := nginx.Options{
		Dir:             filepath.Join(dir, "nginx"),
		Binary:          bin,
		Listen:          freeAddr(t),
		ProbeListen:     freeAddr(t),
		ProbeTimeout:    5 * time.Second,
		AccessLogSocket: filepath.Join(dir, "run", "access.sock"),
		SitesServed:     col.SetSites,
	}
	if os.Geteuid() == 0 {
		opts.User = "root"
	}
	m, err := nginx.New(opts)
	require.NoError(t, err)
	startCtx, stop := context.WithTimeout(t.Context(), 15*time.Second)
	defer stop()
	require.NoError(t, m.Start(startCtx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &fixture{m: m, dir: opts.Dir, listen: opts.Listen, opts: opts}, col
}

type promAdapter struct{ c *sitelog.Collector }

func (p promAdapter) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(p, ch) }
func (p promAdapter) Collect(ch chan<- prometheus.Metric) { _ = p.c.Update(context.Background(), ch) }

// requestCounts is hybrid_site_http_requests_total by "site code", and the
// lost and invalid line counters.
func requestCounts(t *testing.T, col *sitelog.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(promAdapter{col})
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			key := strings.TrimSpace(strings.Join([]string{mf.GetName(), labels["site"], labels["code"]}, " "))
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				out[key+" count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func hit(t *testing.T, client *http.Client, listen, host string, code, n int) {
	t.Helper()
	for range n {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/%d", listen, code), nil)
		require.NoError(t, err)
		req.Host = host
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := code
		if host == "unknown.example.com" {
			want = http.StatusNotFound // the default server
		}
		require.Equal(t, want, resp.StatusCode)
	}
}

const reqs = "hybrid_site_http_requests_total"

func TestRequestMetrics_KnownCodes_CountedExactlyPerSite(t *testing.T) {
	f, col := startCounted(t)
	port := statusBackend(t)
	benches := []nginx.Bench{{Name: "bench-a", Port: port}}
	require.NoError(t, f.m.Apply(t.Context(), benches, []nginx.Site{
		{Name: "a.example.com", Bench: "bench-a"}, {Name: "b.example.com", Bench: "bench-a"}}))

	client := &http.Client{Timeout: 5 * time.Second}
	hit(t, client, f.listen, "a.example.com", 200, 7)
	hit(t, client, f.listen, "a.example.com", 404, 3)
	hit(t, client, f.listen, "a.example.com", 500, 2)
	hit(t, client, f.listen, "b.example.com", 200, 4)
	hit(t, client, f.listen, "unknown.example.com", 200, 5)
	want := map[string]float64{
		reqs + " a.example.com 200": 7,
		reqs + " a.example.com 404": 3,
		reqs + " a.example.com 500": 2,
		reqs + " b.example.com 200": 4,
		reqs + " _other 404":        5,
	}
	waitCounts(t, col, want, 21)

	// A reload (a site added) keeps the counters: they live in the agent.
	require.NoError(t, f.m.Apply(t.Context(), benches, []nginx.Site{
		{Name: "a.example.com", Bench: "bench-a"}, {Name: "b.example.com", Bench: "bench-a"}, {Name: "c.example.com", Bench: "bench-a"}}))
	hit(t, client, f.listen, "a.example.com", 500, 1)
	hit(t, client, f.listen, "c.example.com", 502, 2)
	want[reqs+" a.example.com 500"] = 3
	want[reqs+" c.example.com 502"] = 2
	waitCounts(t, col, want, 24)

	got := requestCounts(t, col)
	require.Zero(t, got["hybrid_site_log_lines_lost_total"])
	require.Zero(t, got["hybrid_site_log_lines_invalid_total"])
	require.Equal(t, 13.0, got["hybrid_site_http_request_duration_seconds a.example.com count"])
}

// waitCounts waits until the request counters are want, and checks they
// stay there: no line counted twice, none for the probe.
func waitCounts(t *testing.T, col *sitelog.Collector, want map[string]float64, total float64) {
	t.Helper()
	only := func() map[string]float64 {
		got := map[string]float64{}
		for k, v := range requestCounts(t, col) {
			if strings.HasPrefix(k, reqs+" ") {
				got[k] = v
			}
		}
		return got
	}
	require.Eventually(t, func() bool {
		var sum float64
		for _, v := range only() {
			sum += v
		}
		return sum >= total
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, want, only())
}

// The load test. make test runs it at 2,000 requests a second for 5 s;
// make bench (scripts/bench.sh) at HYBRID_SITELOG_RATE=10000 for
// HYBRID_SITELOG_SECONDS=10. Every request must be counted, exactly.
//
// The clients and the stand-in bench run in a child process (this test
// binary again, as TestHelper_LoadGenerator): the reader's process is then,
// as the agent is, not the one doing the HTTP work, and the reader's CPU
// time is its own.
func TestRequestMetrics_Load_EveryRequestCounted(t *testing.T) {
	rate, seconds := 2000, 5
	if v, err := strconv.Atoi(os.Getenv("HYBRID_SITELOG_RATE")); err == nil {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("HYBRID_SITELOG_SECONDS")); err == nil {
		seconds = v
	}
	f, col := startCounted(t)

	helper := exec.Command(os.Args[0], "-test.run=^TestHelper_LoadGenerator$", "-test.count=1")
	helper.Env = append(os.Environ(), "HYBRID_SITELOG_LOADGEN=1")
	stdin, err := helper.StdinPipe()
	require.NoError(t, err)
	stdout, err := helper.StdoutPipe()
	require.NoError(t, err)
	helper.Stderr = os.Stderr
	require.NoError(t, helper.Start())
	t.Cleanup(func() {
		_ = helper.Process.Kill()
		_ = helper.Wait()
	})
	out := bufio.NewScanner(stdout)
	var port int
	for out.Scan() {
		if _, err := fmt.Sscanf(out.Text(), "backend %d", &port); err == nil {
			break
		}
	}
	require.NotZero(t, port, "the helper's backend port")
	require.NoError(t, f.m.Apply(t.Context(), []nginx.Bench{{Name: "bench-a", Port: port}},
		[]nginx.Site{{Name: "a.example.com", Bench: "bench-a"}}))

	total := rate * seconds
	cpu0, err := col.ReaderCPU()
	require.NoError(t, err)
	_, err = fmt.Fprintf(stdin, "load %s %d %d\n", f.listen, rate, seconds)
	require.NoError(t, err)
	var sent, failed int
	var elapsed time.Duration
	for out.Scan() {
		if _, err := fmt.Sscanf(out.Text(), "sent %d failed %d elapsed %d", &sent, &failed, &elapsed); err == nil {
			break
		}
	}
	require.Zero(t, failed, "requests that failed")
	require.Equal(t, total, sent)

	// Lines still in the socket's queue are read within moments.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if requestCounts(t, col)[reqs+" a.example.com 200"] >= float64(total) {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	got := requestCounts(t, col)
	cpu1, err := col.ReaderCPU()
	require.NoError(t, err)
	require.Equal(t, float64(total), got[reqs+" a.example.com 200"], "requests sent %d in %s; lost lines seen %v",
		total, elapsed, got["hybrid_site_log_lines_lost_total"])
	require.Zero(t, got["hybrid_site_log_lines_lost_total"])
	require.Zero(t, got["hybrid_site_log_lines_invalid_total"])
	t.Logf("%d requests in %s (%.0f/s): all counted; reader CPU %s, %.3f ms per 1,000 requests",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), (cpu1 - cpu0).Round(time.Microsecond),
		float64(cpu1-cpu0)/float64(time.Millisecond)/(float64(total)/1000))
}

// TestHelper_LoadGenerator is the child process of the load test: it serves
// as the bench (printing "backend <port>"), then on "load <addr> <rate>
// <seconds>" sends a.example.com requests through nginx, paced, over 32
// kept-alive connections, and prints "sent <n> failed <n> elapsed <ns>".
func TestHelper_LoadGenerator(t *testing.T) {
	if os.Getenv("HYBRID_SITELOG_LOADGEN") == "" {
		t.Skip("the load test's child process")
	}
	port := statusBackend(t)
	fmt.Printf("backend %d\n", port)
	var listen string
	var rate, seconds int
	_, err := fmt.Fscanf(os.Stdin, "load %s %d %d\n", &listen, &rate, &seconds)
	require.NoError(t, err)

	const conns = 32
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	defer transport.CloseIdleConnections()
	total := rate * seconds
	tokens := make(chan struct{}, total)
	var sent, failed atomic.Int64
	start := time.Now()
	go func() { // paced: rate per second, released every millisecond
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		released := 0
		for released < total {
			<-tick.C
			due := min(total, int(float64(rate)*time.Since(start).Seconds()))
			for ; released < due; released++ {
				tokens <- struct{}{}
			}
		}
		close(tokens)
	}()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/200", nil)
			req.Host = "a.example.com"
			for range tokens {
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("sent %d failed %d elapsed %d\n", sent.Load(), failed.Load(), time.Since(start))
}

// An agent upgraded to one that counts requests finds nginx serving
// snippets without the access log lines: Refresh renders the same routes
// again and applies them, once.
func TestRefresh_SnippetsOfOlderAgent_ReappliedThenCounted(t *testing.T) {
	f := startOwned(t)
	port := statusBackend(t)
	benches := []nginx.Bench{{Name: "bench-a", Port: port}, {Name: "idle", Port: 1}}
	sites := []nginx.Site{{Name: "a.example.com", Bench: "bench-a"}, {Name: "b.example.com", Bench: "bench-a"}}
	require.NoError(t, f.m.Apply(t.Context(), benches, sites))
	require.NoError(t, f.m.Refresh(t.Context()))
	require.Equal(t, uint64(1), f.m.Generation(), "nothing changed: nothing applied")

	col, err := sitelog.New(sitelog.Options{Socket: filepath.Join(t.TempDir(), "access.sock"), GID: -1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	col.Start(ctx)
	defer func() {
		cancel()
		col.Wait()
	}()
	opts := f.opts
	opts.AccessLogSocket = col.Socket()
	opts.SitesServed = col.SetSites
	m2, err := nginx.New(opts)
	require.NoError(t, err)
	require.NoError(t, m2.Start(t.Context()))
	require.NoError(t, m2.Refresh(t.Context()))
	require.Equal(t, uint64(2), m2.Generation())
	require.NoError(t, m2.Refresh(t.Context()))
	require.Equal(t, uint64(2), m2.Generation(), "refreshed once")
	require.Contains(t, includedSnippets(t, f.dir)["bench-a.conf"], "server_name a.example.com b.example.com;")

	client := &http.Client{Timeout: 5 * time.Second}
	hit(t, client, f.listen, "b.example.com", 500, 2)
	waitCounts(t, col, map[string]float64{reqs + " b.example.com 500": 2}, 2)
}
