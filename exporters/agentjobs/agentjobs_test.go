package agentjobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/jobs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// clock is a fake clock that steps move forward.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type backupRequest struct {
	Site       string `json:"site"`
	SizeBytes  int64  `json:"size_bytes"`
	FailUpload bool   `json:"fail_upload"`
}

func testTypes(clk *clock) []jobs.Type {
	return []jobs.Type{
		{Name: BackupType, Targets: jobs.RequestTargets, Steps: func(raw json.RawMessage) ([]jobs.Step, error) {
			var req backupRequest
			if err := json.Unmarshal(raw, &req); err != nil {
				return nil, err
			}
			return []jobs.Step{
				{Name: "dump", Run: func(_ context.Context, run *jobs.Run) error {
					clk.Add(90 * time.Second)
					return run.SetResult(map[string]any{"site": req.Site, "size_bytes": req.SizeBytes})
				}},
				{Name: "upload", Run: func(context.Context, *jobs.Run) error {
					clk.Add(30 * time.Second)
					if req.FailUpload {
						return errors.New("bucket unreachable")
					}
					return nil
				}},
			}, nil
		}},
		{Name: "site.migrate", Steps: func(json.RawMessage) ([]jobs.Step, error) {
			return []jobs.Step{{Name: "migrate", Run: func(context.Context, *jobs.Run) error {
				clk.Add(3 * time.Hour) // past the last bucket
				return errors.New("patch failed")
			}}}, nil
		}},
		{Name: "bench.new", Steps: func(json.RawMessage) ([]jobs.Step, error) {
			return []jobs.Step{{Name: "create", Run: func(context.Context, *jobs.Run) error { return nil }}}, nil
		}},
	}
}

func TestUpdate_AfterSomeJobs_MatchesGolden(t *testing.T) {
	ctx := t.Context()
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "jobs.db")
	opts := jobs.Options{Path: path, Types: testTypes(clk), Workers: 1, Now: clk.Now}
	q, err := jobs.Open(ctx, opts)
	require.NoError(t, err)
	submit := func(id, typ string, req any) {
		b, err := json.Marshal(req)
		require.NoError(t, err)
		_, _, err = q.Submit(ctx, jobs.Submission{ID: id, Type: typ, Request: b})
		require.NoError(t, err)
	}
	submit("b1", BackupType, backupRequest{Site: "a.example.com", SizeBytes: 1000})
	submit("b2", BackupType, backupRequest{Site: "b.example.com", SizeBytes: 2000})
	submit("b3", BackupType, backupRequest{Site: "a.example.com", SizeBytes: 1500})
	submit("b4", BackupType, backupRequest{Site: "c.example.com", SizeBytes: 9, FailUpload: true})
	submit("m1", "site.migrate", nil)
	q.Start(ctx)
	require.Eventually(t, func() bool {
		s, err := q.Stats(ctx)
		return err == nil && s.Pending == 0 && len(s.Durations) == 2 && s.Durations[0].Count+s.Durations[1].Count == 5
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, q.Close())

	// Reopened, not started: one job waits.
	q, err = jobs.Open(ctx, opts)
	require.NoError(t, err)
	defer q.Close()
	submit("n1", "bench.new", nil)
	clk.Add(42 * time.Second)

	// b.example.com was archived; d.example.com was never backed up.
	compareGolden(t, New(q, sites{{"b1", "a.example.com"}, {"b1", "c.example.com"}, {"b2", "d.example.com"}}), "jobs.prom")
}

// sites is a fixed SiteLister.
type sites []SiteRef

func (s sites) Sites(context.Context) ([]SiteRef, error) { return s, nil }

type failingSites struct{}

func (failingSites) Sites(context.Context) ([]SiteRef, error) {
	return nil, errors.New("read benches: permission denied")
}

func TestUpdate_Sites_NeverBackedUpZeroArchivedGone(t *testing.T) {
	ctx := t.Context()
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	q, err := jobs.Open(ctx, jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"), Types: testTypes(clk), Now: clk.Now, Workers: 1})
	require.NoError(t, err)
	defer q.Close()
	for i, site := range []string{"a.example.com", "gone.example.com"} {
		id := fmt.Sprintf("b%d", i)
		b, err := json.Marshal(backupRequest{Site: site, SizeBytes: 7})
		require.NoError(t, err)
		_, _, err = q.Submit(ctx, jobs.Submission{ID: id, Type: BackupType, Request: b})
		require.NoError(t, err)
	}
	q.Start(ctx)
	require.Eventually(t, func() bool {
		s, err := q.Stats(ctx)
		return err == nil && len(s.SiteResults) == 2
	}, 10*time.Second, 10*time.Millisecond)

	// gone.example.com was archived: not listed. new.example.com never had a backup.
	c := New(q, sites{{"b1", "a.example.com"}, {"b1", "new.example.com"}, {"b2", "new.example.com"}})
	require.NoError(t, testutil.CollectAndCompare(updateCollector{t: t, c: c}, bytes.NewReader([]byte(`
# HELP hybrid_site_last_backup_timestamp_seconds When the site's last successful backup job ended, as a Unix time; 0 when it never had one.
# TYPE hybrid_site_last_backup_timestamp_seconds gauge
hybrid_site_last_backup_timestamp_seconds{site="a.example.com"} 1.767323165e+09
hybrid_site_last_backup_timestamp_seconds{site="new.example.com"} 0
# HELP hybrid_site_backup_size_bytes Size of the site's last successful backup.
# TYPE hybrid_site_backup_size_bytes gauge
hybrid_site_backup_size_bytes{site="a.example.com"} 7
`)), "hybrid_site_last_backup_timestamp_seconds", "hybrid_site_backup_size_bytes"))

	// The sites cannot be listed: the collector fails, the job metrics still come.
	ch := make(chan prometheus.Metric, 100)
	require.ErrorContains(t, New(q, failingSites{}).Update(ctx, ch), "permission denied")
	require.NotEmpty(t, ch)
}

func TestUpdate_NoJobs_KnownTypesAtZero(t *testing.T) {
	q, err := jobs.Open(t.Context(), jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"), Types: testTypes(&clock{})})
	require.NoError(t, err)
	defer q.Close()
	require.NoError(t, testutil.CollectAndCompare(updateCollector{t: t, c: New(q, nil)}, bytes.NewReader([]byte(`
# HELP hybrid_agent_jobs_pending Jobs waiting for a worker.
# TYPE hybrid_agent_jobs_pending gauge
hybrid_agent_jobs_pending 0
# HELP hybrid_agent_oldest_pending_job_age_seconds How long the oldest pending job has waited; 0 when none waits.
# TYPE hybrid_agent_oldest_pending_job_age_seconds gauge
hybrid_agent_oldest_pending_job_age_seconds 0
`)), "hybrid_agent_jobs_pending", "hybrid_agent_oldest_pending_job_age_seconds"))
	require.Equal(t, 6, testutil.CollectAndCount(updateCollector{t: t, c: New(q, nil)}, "hybrid_agent_jobs_total"))
}

type failingSource struct{}

func (failingSource) Stats(context.Context) (jobs.Stats, error) {
	return jobs.Stats{}, errors.New("disk I/O error")
}

func TestUpdate_StoreFails_Error(t *testing.T) {
	ch := make(chan prometheus.Metric, 100)
	require.ErrorContains(t, New(failingSource{}, nil).Update(t.Context(), ch), "disk I/O error")
	require.Empty(t, ch)
}

// updateCollector adapts Update to a prometheus.Collector.
type updateCollector struct {
	t *testing.T
	c *Collector
}

func (u updateCollector) Describe(chan<- *prometheus.Desc) {}

func (u updateCollector) Collect(ch chan<- prometheus.Metric) {
	require.NoError(u.t, u.c.Update(u.t.Context(), ch))
}

// compareGolden collects c and compares with testdata/<golden>, or rewrites
// the file with -update.
func compareGolden(t *testing.T, c *Collector, golden string) {
	t.Helper()
	path := filepath.Join("testdata", golden)
	col := updateCollector{t: t, c: c}
	if *update {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(col)
		mfs, err := reg.Gather()
		require.NoError(t, err)
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			require.NoError(t, enc.Encode(mf))
		}
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	f, err := os.Open(path)
	require.NoError(t, err, "run with -update to create it")
	defer f.Close()
	require.NoError(t, testutil.CollectAndCompare(col, f), "run go test ./exporters/agentjobs -update if the change is intended")
}

func TestUpdate_JobRunning_OldestRunningAgeByType(t *testing.T) {
	ctx := t.Context()
	clk := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	gate := make(chan struct{})
	started := make(chan struct{})
	types := []jobs.Type{{Name: "site.restore", Timeout: 4 * time.Hour, Steps: func(json.RawMessage) ([]jobs.Step, error) {
		return []jobs.Step{{Name: "restore", Run: func(ctx context.Context, _ *jobs.Run) error {
			close(started)
			<-gate
			return nil
		}}}, nil
	}}, {Name: "site.backup", Steps: testTypes(clk)[0].Steps}}
	q, err := jobs.Open(ctx, jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"), Types: types, Now: clk.Now})
	require.NoError(t, err)
	defer q.Close()
	defer close(gate)
	q.Start(ctx)
	_, _, err = q.Submit(ctx, jobs.Submission{ID: "r1", Type: "site.restore"})
	require.NoError(t, err)
	<-started
	clk.Add(90 * time.Minute)

	require.NoError(t, testutil.CollectAndCompare(updateCollector{t: t, c: New(q, nil)}, bytes.NewReader([]byte(`
# HELP hybrid_agent_jobs_running Jobs running now, stopping ones included.
# TYPE hybrid_agent_jobs_running gauge
hybrid_agent_jobs_running 1
# HELP hybrid_agent_oldest_running_job_age_seconds How long the oldest running job of the type has run (this attempt); 0 when none runs.
# TYPE hybrid_agent_oldest_running_job_age_seconds gauge
hybrid_agent_oldest_running_job_age_seconds{type="site.backup"} 0
hybrid_agent_oldest_running_job_age_seconds{type="site.restore"} 5400
# HELP hybrid_agent_job_timeout_seconds The time a job of the type may run before it is stopped.
# TYPE hybrid_agent_job_timeout_seconds gauge
hybrid_agent_job_timeout_seconds{type="site.backup"} 1800
hybrid_agent_job_timeout_seconds{type="site.restore"} 14400
`)), "hybrid_agent_jobs_running", "hybrid_agent_oldest_running_job_age_seconds", "hybrid_agent_job_timeout_seconds"))
}
