package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/api"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// The secrets the tests plant, to grep every error and log line for.
const (
	testToken          = "tok-SECRET-4f6b1c0e9a7d2b35"
	testCallbackSecret = "cbsecret-SECRET-8e1d7a2c"
)

// agent is a real agent API (agent/api) over a real job queue on a temp
// SQLite store: every job type is one step that returns at once, except
// bench.restart, whose step waits until the test ends (a job that never
// finishes).
type agent struct {
	queue   *jobs.Queue
	handler http.Handler
}

type agentOptions struct {
	callbackSecret []byte
}

func newAgent(t testing.TB, opts agentOptions) *agent {
	t.Helper()
	hold := make(chan struct{})
	var types []jobs.Type
	for _, name := range []string{agentapi.TypeBenchNew, agentapi.TypeBenchRestart, agentapi.TypeSiteNew,
		agentapi.TypeSiteMigrate, agentapi.TypeSiteBackup} {
		types = append(types, jobs.Type{Name: name, Steps: func(json.RawMessage) ([]jobs.Step, error) {
			return []jobs.Step{{Name: "work", Run: func(ctx context.Context, run *jobs.Run) error {
				if name != agentapi.TypeBenchRestart {
					return nil
				}
				select {
				case <-hold:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}}, nil
		}})
	}
	q, err := jobs.Open(context.Background(), jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"), Types: types,
		Workers: 2, Logger: slog.New(slog.DiscardHandler), CallbackSecret: opts.callbackSecret})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	t.Cleanup(func() { close(hold); cancel(); q.Close() })
	inv := &inventory{sites: map[string][]string{"b1": {"erp.example.com"}}}
	return &agent{queue: q, handler: api.New(q, inv, api.HashToken(testToken), slog.New(slog.DiscardHandler)).Handler()}
}

// serve runs the agent's API behind an injector on a local port.
func (a *agent) serve(t testing.TB) (*httptest.Server, *injector) {
	t.Helper()
	inj := &injector{next: a.handler}
	srv := httptest.NewServer(inj)
	t.Cleanup(srv.Close)
	return srv, inj
}

func (a *agent) jobCount(t testing.TB) int {
	t.Helper()
	list, err := a.queue.List(context.Background(), "", 1000)
	require.NoError(t, err)
	return len(list)
}

type inventory struct {
	mu    sync.Mutex
	sites map[string][]string
}

func (i *inventory) BenchExists(b string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	_, ok := i.sites[b]
	return ok
}

func (i *inventory) SiteExists(b, s string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, x := range i.sites[b] {
		if x == s {
			return true
		}
	}
	return false
}

func (i *inventory) SiteBench(s string) (string, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for b, list := range i.sites {
		for _, x := range list {
			if x == s {
				return b, true
			}
		}
	}
	return "", false
}

func (i *inventory) BackupsDir(b, s string) string {
	return filepath.Join("/home/frappe/benches", b, "sites", s, "private", "backups")
}

// injector counts the requests that reach it and does to them what a real
// agent cannot be made to do: answer 503 to the next fail requests, or to
// every request while down.
type injector struct {
	next http.Handler

	mu       sync.Mutex
	requests []string // "METHOD path"
	fail     int
	down     bool
	redirect string
}

func (i *injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	i.requests = append(i.requests, r.Method+" "+r.URL.Path)
	fail := i.down || i.fail > 0
	if i.fail > 0 {
		i.fail--
	}
	redirect := i.redirect
	i.mu.Unlock()
	switch {
	case redirect != "":
		http.Redirect(w, r, redirect, http.StatusFound)
	case fail:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"injected: agent overloaded"}`))
	default:
		i.next.ServeHTTP(w, r)
	}
}

func (i *injector) count() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.requests)
}

func (i *injector) set(fn func(i *injector)) {
	i.mu.Lock()
	defer i.mu.Unlock()
	fn(i)
}

func (i *injector) seen() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.requests...)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer is a concurrency-safe slog destination, for grepping.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastRetry retries quickly, so tests wait milliseconds.
var fastRetry = Retry{MaxAttempts: 5, MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, MaxTime: 10 * time.Second}

func newClient(t testing.TB, baseURL string, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{Server: "srv1", BaseURL: baseURL, Token: testToken, RequestTimeout: 5 * time.Second, Retry: fastRetry}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// requireNoSecret fails when err or the text holds a planted secret.
func requireNoSecret(t testing.TB, what string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, secret := range []string{testToken, testCallbackSecret, "hunter2"} {
			require.NotContains(t, text, secret, "%s holds a secret", what)
		}
	}
}

func siteNew(id, bench, site string) Delivery {
	return Delivery{JobID: id, Path: "/benches/" + bench + "/sites", Body: []byte(fmt.Sprintf(`{"name":%q}`, site))}
}

// waitEnded polls the agent's queue until the job ends.
func waitEnded(t testing.TB, q *jobs.Queue, id string) agentapi.Job {
	t.Helper()
	var job agentapi.Job
	require.Eventually(t, func() bool {
		list, err := q.Get(context.Background(), id)
		if err != nil {
			return false
		}
		job = list[0]
		return job.Status.Ended()
	}, 10*time.Second, 5*time.Millisecond)
	return job
}

func itoa(i int) string { return fmt.Sprint(i) }

// submission is the job the agent's API would make of d (a site.new).
func submission(t testing.TB, d Delivery) jobs.Submission {
	t.Helper()
	var body agentapi.NewSite
	require.NoError(t, json.Unmarshal(d.Body, &body))
	bench := strings.Split(d.Path, "/")[2]
	req, err := json.Marshal(agentapi.SiteRequest{Bench: bench, Site: body.Name})
	require.NoError(t, err)
	return jobs.Submission{ID: d.JobID, Type: agentapi.TypeSiteNew, Request: req}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
