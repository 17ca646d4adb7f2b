package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

const testToken = "test-token-0123456789"

// inventory is a set of benches and sites a test can change, as jobs would.
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

// set replaces a bench's sites; nil sites removes the bench.
func (i *inventory) set(bench string, sites []string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if sites == nil {
		delete(i.sites, bench)
		return
	}
	i.sites[bench] = sites
}

// newServer runs the API over a real job queue whose job types each have one
// short step.
func newServer(t testing.TB) (*httptest.Server, *jobs.Queue) {
	t.Helper()
	srv, q, _ := newServerWithInventory(t)
	return srv, q
}

// newServerWithInventory is newServer, with the inventory for the test to change.
func newServerWithInventory(t testing.TB) (*httptest.Server, *jobs.Queue, *inventory) {
	t.Helper()
	var types []jobs.Type
	for _, name := range []string{agentapi.TypeBenchNew, agentapi.TypeBenchRestart, agentapi.TypeBenchLimits,
		agentapi.TypeBenchArchive, agentapi.TypeSiteNew, agentapi.TypeSiteMigrate, agentapi.TypeSiteBackup,
		agentapi.TypeSiteRestore, agentapi.TypeSiteArchive, agentapi.TypeSiteMaintenance} {
		types = append(types, jobs.Type{Name: name, Steps: func(json.RawMessage) ([]jobs.Step, error) {
			return []jobs.Step{{Name: "work", Run: func(ctx context.Context, run *jobs.Run) error {
				select {
				case <-time.After(20 * time.Millisecond):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}}, nil
		}})
	}
	q, err := jobs.Open(context.Background(), jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"), Types: types, Workers: 2,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	t.Cleanup(func() { cancel(); q.Close() })
	inv := &inventory{sites: map[string][]string{"b1": {"erp.example.com"}}}
	srv := httptest.NewServer(New(q, inv, HashToken(testToken), slog.New(slog.DiscardHandler)).Handler())
	t.Cleanup(srv.Close)
	return srv, q, inv
}

func call(t testing.TB, srv *httptest.Server, method, path, token, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

var routes = []struct{ method, path, body string }{
	{"GET", "/jobs", ""},
	{"GET", "/jobs/x", ""},
	{"POST", "/jobs/x/cancel", ""},
	{"POST", "/benches", `{"name":"b2","image":"x/y:1"}`},
	{"POST", "/benches/b1/restart", ""},
	{"POST", "/benches/b1/archive", ""},
	{"POST", "/benches/b1/limits", `{"cpus":1}`},
	{"POST", "/benches/b1/sites", `{"name":"new.example.com"}`},
	{"POST", "/benches/b1/sites/erp.example.com/migrate", ""},
	{"POST", "/benches/b1/sites/erp.example.com/backup", `{}`},
	{"POST", "/benches/b1/sites/erp.example.com/restore", `{"path":"20260101_000000"}`},
	{"POST", "/benches/b1/sites/erp.example.com/archive", `{}`},
	{"POST", "/benches/b1/sites/erp.example.com/maintenance", `{"on":true}`},
	{"GET", "/nowhere", ""},
}

func TestAPI_NoOrWrongToken_401OnEveryRouteButPing(t *testing.T) {
	srv, q := newServer(t)
	for _, r := range routes {
		for _, token := range []string{"", "wrong", testToken + "x"} {
			code, body := call(t, srv, r.method, r.path, token, r.body)
			require.Equal(t, http.StatusUnauthorized, code, "%s %s with token %q: %s", r.method, r.path, token, body)
		}
	}
	code, body := call(t, srv, "GET", "/ping", "", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"message":"pong"}`, body)
	list, err := q.List(context.Background(), "", 0)
	require.NoError(t, err)
	require.Empty(t, list, "nothing was created without the token")
}

func TestAPI_BadInput_4xxWithAClearMessage_NothingCreated(t *testing.T) {
	srv, q := newServer(t)
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"malformed JSON", "POST", "/benches", `{"name":`, 400, "malformed JSON"},
		{"unknown field", "POST", "/benches", `{"name":"b2","image":"x","privileged":true}`, 400, "unknown field"},
		{"two values", "POST", "/benches", `{"name":"b2","image":"x/y"}{}`, 400, "more than one value"},
		{"empty body", "POST", "/benches", ``, 400, "empty body"},
		{"bad bench name", "POST", "/benches", `{"name":"../x","image":"x/y"}`, 400, "bench name"},
		{"bad image", "POST", "/benches", `{"name":"b2","image":"x; rm -rf /"}`, 400, "image"},
		{"bad limits", "POST", "/benches", `{"name":"b2","image":"x/y","limits":{"memory_bytes":5}}`, 400, "memory_bytes"},
		{"existing bench", "POST", "/benches", `{"name":"b1","image":"x/y"}`, 409, "exists"},
		{"unknown bench", "POST", "/benches/nope/sites", `{"name":"a.example.com"}`, 404, `bench "nope" does not exist`},
		{"site ../x", "POST", "/benches/b1/sites", `{"name":"../x"}`, 400, "site name"},
		{"site a;drop", "POST", "/benches/b1/sites", `{"name":"a;drop"}`, 400, "site name"},
		{"site 300 chars", "POST", "/benches/b1/sites", `{"name":"` + strings.Repeat("a", 300) + `"}`, 400, "longer than 253"},
		{"unknown site", "POST", "/benches/b1/sites/other.example.com/backup", `{}`, 404, "does not exist"},
		{"bad site in path", "POST", "/benches/b1/sites/a;b/migrate", ``, 400, "site name"},
		{"restore both", "POST", "/benches/b1/sites/erp.example.com/restore", `{"path":"a","object":"b"}`, 400, "exactly one"},
		{"restore escape", "POST", "/benches/b1/sites/erp.example.com/restore", `{"path":"../../etc"}`, 400, "not a backup reference"},
		{"body on bodiless route", "POST", "/benches/b1/restart", `{"x":1}`, 400, "takes no body"},
		{"bad job id", "GET", "/jobs/../../x", ``, 400, ""},
		{"bad status", "GET", "/jobs?status=Done", ``, 400, "status"},
		{"unknown job", "GET", "/jobs/nope", ``, 404, "nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, tc.method, tc.path, testToken, tc.body)
			if tc.code == 400 && tc.want == "" {
				require.True(t, code >= 400 && code < 500, "%d %s", code, body)
				return
			}
			require.Equal(t, tc.code, code, body)
			var e agentapi.Error
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			require.Contains(t, e.Error, tc.want)
		})
	}
	code, body := call(t, srv, "POST", "/benches/b1/sites", testToken, `{"name":"ok.example.com"}`, agentapi.JobIDHeader, "../x")
	require.Equal(t, http.StatusBadRequest, code, body)
	list, err := q.List(context.Background(), "", 0)
	require.NoError(t, err)
	require.Empty(t, list, "no bad request created a job")
}

func TestAPI_SameJobIDTwice_OneJob_AndPolling(t *testing.T) {
	srv, _ := newServer(t)
	code, body := call(t, srv, "GET", "/jobs", testToken, "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `[]`, body, "no jobs is an empty list")
	code, body = call(t, srv, "POST", "/benches/b1/sites/erp.example.com/backup", testToken, `{"with_files":true}`, agentapi.JobIDHeader, "cp-42")
	require.Equal(t, http.StatusAccepted, code, body)
	code, body = call(t, srv, "POST", "/benches/b1/sites/erp.example.com/backup", testToken, `{"with_files":true}`, agentapi.JobIDHeader, "cp-42")
	require.Equal(t, http.StatusOK, code, "the same id again is the same job: %s", body)
	require.JSONEq(t, `{"job":"cp-42"}`, body)
	code, body = call(t, srv, "POST", "/benches/b1/sites/erp.example.com/backup", testToken, `{"with_files":false}`, agentapi.JobIDHeader, "cp-42")
	require.Equal(t, http.StatusConflict, code, "the same id with another request is refused: %s", body)

	require.Eventually(t, func() bool {
		code, body := call(t, srv, "GET", "/jobs/cp-42", testToken, "")
		require.Equal(t, http.StatusOK, code)
		var list []agentapi.Job
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		return len(list) == 1 && list[0].Status == agentapi.Success && len(list[0].Steps) == 1
	}, 10*time.Second, 20*time.Millisecond)
}

// TestAPI_Load_200ConcurrentPollers: 200 clients poll while jobs run; none
// gets an error.
func TestAPI_Load_200ConcurrentPollers_NoErrors(t *testing.T) {
	srv, _ := newServer(t)
	var ids []string
	for i := range 20 {
		id := fmt.Sprintf("load-%d", i)
		code, body := call(t, srv, "POST", "/benches/b1/restart", testToken, "", agentapi.JobIDHeader, id)
		require.Equal(t, http.StatusAccepted, code, body)
		ids = append(ids, id)
	}
	lat := pollConcurrently(t, srv, 200, 10, "/jobs/"+strings.Join(ids, ","))
	t.Logf("200 clients x 10 polls: p50 %s, p99 %s", lat[len(lat)/2], lat[len(lat)*99/100])
}

func pollConcurrently(t testing.TB, srv *httptest.Server, clients, polls int, path string) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for range clients {
		wg.Go(func() {
			for range polls {
				req, _ := http.NewRequest("GET", srv.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("GET %s: %s", path, resp.Status)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

// BenchmarkAPI_PollJobs prints p50/p99 of GET /jobs/<20 ids> under 200 clients.
func BenchmarkAPI_PollJobs(b *testing.B) {
	srv, _ := newServer(b)
	var ids []string
	for i := range 20 {
		id := fmt.Sprintf("bench-%d", i)
		call(b, srv, "POST", "/benches/b1/restart", testToken, "", agentapi.JobIDHeader, id)
		ids = append(ids, id)
	}
	b.ResetTimer()
	lat := pollConcurrently(b, srv, 200, max(1, b.N/200), "/jobs/"+strings.Join(ids, ","))
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkAPI_PollPing is BenchmarkAPI_PollJobs's floor: the same 200
// clients polling GET /ping, which reads nothing, on the same machine.
func BenchmarkAPI_PollPing(b *testing.B) {
	srv, _ := newServer(b)
	b.ResetTimer()
	lat := pollConcurrently(b, srv, 200, max(1, b.N/200), "/ping")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// FuzzDecodeJSON: request decoding never panics, and accepts only one
// well-formed object with known fields.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"b","image":"x"}`, `{`, `[]`, `null`, `{"name":1}`, `{"a":1}{}`, "\x00", `{"limits":{"cpus":1e400}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req agentapi.NewBench
		err := decodeJSON(strings.NewReader(string(data)), &req)
		if err == nil {
			var strict map[string]json.RawMessage
			if json.Unmarshal(data, &strict) == nil {
				for k := range strict {
					switch strings.ToLower(k) {
					case "name", "image", "limits":
					default:
						t.Fatalf("accepted unknown field %q in %q", k, data)
					}
				}
			}
		}
	})
}

// TestAPI_SameJobIDAfterTheJobRan_SameJob200_OnEveryPOSTRoute: the control
// plane retries a delivery with the same X-Agent-Job-Id; by then the job may
// have run and changed what exists (the bench it made exists, the site it
// archived is gone). The retry gets the same job, 200, not a 409 or 404;
// another request under that id is a 409.
func TestAPI_SameJobIDAfterTheJobRan_SameJob200_OnEveryPOSTRoute(t *testing.T) {
	srv, q, inv := newServerWithInventory(t)
	site := "/benches/b1/sites/erp.example.com"
	cases := []struct {
		name, path, body, other string
		ran                     func() // what the job changed
	}{
		{"bench.new", "/benches", `{"name":"b2","image":"x/y:1"}`, `{"name":"b2","image":"x/y:2"}`,
			func() { inv.set("b2", []string{}) }},
		{"bench.restart", "/benches/b1/restart", ``, ``, nil},
		{"bench.limits", "/benches/b1/limits", `{"cpus":1}`, `{"cpus":2}`, nil},
		{"site.new", "/benches/b1/sites", `{"name":"new.example.com"}`, `{"name":"other.example.com"}`,
			func() { inv.set("b1", []string{"erp.example.com", "new.example.com"}) }},
		{"site.migrate", site + "/migrate", ``, ``, nil},
		{"site.backup", site + "/backup", `{"with_files":true}`, `{"with_files":false}`, nil},
		{"site.restore", site + "/restore", `{"path":"20260101_000000"}`, `{"path":"20260102_000000"}`, nil},
		{"site.maintenance", site + "/maintenance", `{"on":true}`, `{"on":false}`, nil},
		{"site.archive", site + "/archive", `{}`, `{"backup":true}`,
			func() { inv.set("b1", []string{"new.example.com"}) }},
		{"bench.archive", "/benches/b1/archive", ``, ``, func() { inv.set("b1", nil) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "cp-" + strings.ReplaceAll(tc.name, ".", "-")
			code, body := call(t, srv, "POST", tc.path, testToken, tc.body, agentapi.JobIDHeader, id)
			require.Equal(t, http.StatusAccepted, code, body)
			if tc.ran != nil {
				tc.ran()
			}
			code, body = call(t, srv, "POST", tc.path, testToken, tc.body, agentapi.JobIDHeader, id)
			require.Equal(t, http.StatusOK, code, "the same delivery again is the same job: %s", body)
			require.JSONEq(t, `{"job":"`+id+`"}`, body)
			if tc.other != "" {
				code, body = call(t, srv, "POST", tc.path, testToken, tc.other, agentapi.JobIDHeader, id)
				require.Equal(t, http.StatusConflict, code, "another request under the same id: %s", body)
				require.Contains(t, body, "another type or request")
			}
			// Another route (type) under the same id is refused too.
			code, body = call(t, srv, "POST", "/benches/b9/restart", testToken, "", agentapi.JobIDHeader, id)
			require.Equal(t, http.StatusConflict, code, body)
		})
	}
	list, err := q.List(context.Background(), "", 0)
	require.NoError(t, err)
	require.Len(t, list, len(cases), "one job per delivery, however often it came")
	for _, j := range list {
		require.Equal(t, "cp-"+strings.ReplaceAll(j.Type, ".", "-"), j.ID)
	}
}

func TestAPI_SiteNameOnAnotherBench_409_NoJob(t *testing.T) {
	srv, q, inv := newServerWithInventory(t)
	inv.set("b2", []string{})
	code, body := call(t, srv, "POST", "/benches/b2/sites", testToken, `{"name":"erp.example.com"}`)
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, `site \"erp.example.com\" exists on bench \"b1\"`)
	code, body = call(t, srv, "POST", "/benches/b1/sites", testToken, `{"name":"erp.example.com"}`)
	require.Equal(t, http.StatusConflict, code, "the same bench too: %s", body)
	list, err := q.List(context.Background(), "", 0)
	require.NoError(t, err)
	require.Empty(t, list)
}

// TestAPI_UnsafeTargets_Refused4xxNamingTheProblem_NoJob: what used to be
// accepted with 202 and fail inside the job is refused by the API.
func TestAPI_UnsafeTargets_Refused4xxNamingTheProblem_NoJob(t *testing.T) {
	srv, q := newServer(t)
	restore := "/benches/b1/sites/erp.example.com/restore"
	cases := []struct {
		name, path, body, want string
	}{
		{"IPv4 site name", "/benches/b1/sites", `{"name":"10.0.0.1"}`, "IP address"},
		{"IPv4 loopback site name", "/benches/b1/sites", `{"name":"127.0.0.1"}`, "IP address"},
		{"short IPv4 site name", "/benches/b1/sites", `{"name":"127.1"}`, "IP address"},
		{"IPv6 site name", "/benches/b1/sites", `{"name":"::1"}`, "IP address"},
		{"bracketed IPv6 site name", "/benches/b1/sites", `{"name":"[2001:db8::1]"}`, "IP address"},
		{"IPv4 site in path", "/benches/b1/sites/192.168.0.1/backup", `{}`, "IP address"},
		{"restore /etc", restore, `{"path":"/etc"}`, "not in site erp.example.com's backups folder"},
		{"restore another site's folder", restore,
			`{"path":"/home/frappe/benches/b1/sites/other.example.com/private/backups/20260101_000000"}`, "not in site erp.example.com's backups folder"},
		{"restore this site's backups folder itself", restore,
			`{"path":"/home/frappe/benches/b1/sites/erp.example.com/private/backups"}`, "not in site erp.example.com's backups folder"},
		{"restore a relative folder that is no backup", restore, `{"path":"private"}`, "is not a backup of site erp.example.com"},
		{"restore a nested relative path", restore, `{"path":"x/20260101_000000"}`, "is not a backup of site erp.example.com"},
		{"restore another site's object", restore, `{"object":"other.example.com/2026-01-01/20260101_000000"}`, "is not a backup of site erp.example.com"},
		{"restore a prefix-sharing site's object", restore, `{"object":"erp.example.com.evil.com/2026-01-01/20260101_000000"}`, "is not a backup of site erp.example.com"},
		{"restore an object without date", restore, `{"object":"erp.example.com/20260101_000000"}`, "is not a backup of site erp.example.com"},
		{"restore an object with a bad date", restore, `{"object":"erp.example.com/2026-13-01/20260101_000000"}`, "is not a date"},
		{"restore an object with a bad id", restore, `{"object":"erp.example.com/2026-01-01/latest"}`, "backup id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, "POST", tc.path, testToken, tc.body)
			require.Equal(t, http.StatusBadRequest, code, body)
			var e agentapi.Error
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			require.Contains(t, e.Error, tc.want)
		})
	}
	list, err := q.List(context.Background(), "", 0)
	require.NoError(t, err)
	require.Empty(t, list, "no refused request created a job")

	// This site's own backups are still accepted, by id, folder or object.
	for _, body := range []string{`{"path":"20260101_000000"}`,
		`{"path":"/home/frappe/benches/b1/sites/erp.example.com/private/backups/20260101_000000"}`,
		`{"object":"erp.example.com/2026-01-01/20260101_000000"}`} {
		code, resp := call(t, srv, "POST", restore, testToken, body)
		require.Equal(t, http.StatusAccepted, code, "%s: %s", body, resp)
	}
}
