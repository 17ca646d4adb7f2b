package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// intervals records when each job's step ran.
type intervals struct {
	mu   sync.Mutex
	runs map[string][2]time.Time
}

func (iv *intervals) get(t *testing.T, id string) [2]time.Time {
	t.Helper()
	iv.mu.Lock()
	defer iv.mu.Unlock()
	r, ok := iv.runs[id]
	require.True(t, ok, "job %s did not run", id)
	return r
}

func overlap(a, b [2]time.Time) bool { return a[0].Before(b[1]) && b[0].Before(a[1]) }

// targetedType is a job type on the agent's bench and site requests whose one
// step takes 150 ms and records when it ran.
func targetedType(name string, iv *intervals) Type {
	return Type{Name: name, Targets: RequestTargets, Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{{Name: "work", Run: func(ctx context.Context, run *Run) error {
			start := time.Now()
			select {
			case <-time.After(150 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			iv.mu.Lock()
			iv.runs[run.JobID()] = [2]time.Time{start, time.Now()}
			iv.mu.Unlock()
			return nil
		}}}, nil
	}}
}

func siteReq(bench, site string) json.RawMessage {
	b, _ := json.Marshal(agentapi.SiteRequest{Bench: bench, Site: site})
	return b
}

func benchReq(bench string) json.RawMessage {
	b, _ := json.Marshal(agentapi.BenchRequest{Bench: bench})
	return b
}

func TestRequestTargets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		request string
		want    []Target
	}{
		{"site job holds its site, its bench shared", `{"bench":"b1","site":"a.example.com","with_files":true}`,
			[]Target{{Key: "site:a.example.com"}, {Key: "bench:b1", Shared: true}}},
		{"bench job holds its bench", `{"bench":"b1"}`, []Target{{Key: "bench:b1"}}},
		{"bench.new holds the bench it names", `{"name":"b2","image":"x"}`, []Target{{Key: "bench:b2"}}},
		{"no request holds nothing", `null`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RequestTargets(json.RawMessage(tc.request))
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := RequestTargets(json.RawMessage(`{"bench":1}`))
	assert.Error(t, err)
}

func TestSubmit_BadTargets_Invalid(t *testing.T) {
	typ := scriptedType("t")
	typ.Targets = func(json.RawMessage) ([]Target, error) { return []Target{{Key: "x"}, {Key: "x"}}, nil }
	q := openTestQueue(t, Options{Types: []Type{typ}})
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "t", Request: request(t, scriptedStep{Name: "a"})})
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ErrorContains(t, err, `target "x" given twice`)
}

func TestRun_SameSite_OneAfterTheOther_OtherSiteBeside(t *testing.T) {
	iv := &intervals{runs: map[string][2]time.Time{}}
	q := openTestQueue(t, Options{Types: []Type{targetedType("site.backup", iv)}, Workers: 3})
	ctx := t.Context()
	for _, s := range []struct{ id, site string }{{"a1", "a.example.com"}, {"a2", "a.example.com"}, {"c1", "c.example.com"}} {
		_, _, err := q.Submit(ctx, Submission{ID: s.id, Type: "site.backup", Request: siteReq("b1", s.site)})
		require.NoError(t, err)
	}
	q.Start(ctx)
	for _, id := range []string{"a1", "a2", "c1"} {
		assert.Equal(t, agentapi.Success, waitEnded(t, q, id).Status)
	}
	a1, a2, c1 := iv.get(t, "a1"), iv.get(t, "a2"), iv.get(t, "c1")
	assert.False(t, overlap(a1, a2), "two jobs on one site ran at once: %v %v", a1, a2)
	assert.True(t, a2[0].After(a1[1]), "submitted second, ran second")
	assert.True(t, overlap(a1, c1), "a job on another site waited: %v %v", a1, c1)
}

func TestRun_BenchJob_WaitsForItsSitesJobs_NewerSiteJobsWaitForIt(t *testing.T) {
	iv := &intervals{runs: map[string][2]time.Time{}}
	q := openTestQueue(t, Options{Types: []Type{targetedType("site.backup", iv), targetedType("bench.restart", iv)}, Workers: 4})
	ctx := t.Context()
	submit := func(id, typ string, req json.RawMessage) {
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: typ, Request: req})
		require.NoError(t, err)
	}
	submit("s1", "site.backup", siteReq("b1", "a.example.com"))
	submit("s2", "site.backup", siteReq("b1", "c.example.com"))
	submit("bench", "bench.restart", benchReq("b1"))
	submit("s3", "site.backup", siteReq("b1", "d.example.com")) // newer: after the bench job
	submit("other", "site.backup", siteReq("b2", "e.example.com"))
	q.Start(ctx)
	for _, id := range []string{"s1", "s2", "bench", "s3", "other"} {
		assert.Equal(t, agentapi.Success, waitEnded(t, q, id).Status, id)
	}
	s1, s2, bench, s3, other := iv.get(t, "s1"), iv.get(t, "s2"), iv.get(t, "bench"), iv.get(t, "s3"), iv.get(t, "other")
	assert.True(t, overlap(s1, s2), "two sites of a bench ran one after the other")
	assert.True(t, bench[0].After(s1[1]) && bench[0].After(s2[1]), "the bench job did not wait for its sites' jobs")
	assert.True(t, s3[0].After(bench[1]), "a newer site job ran before the bench job it conflicts with")
	assert.True(t, overlap(s1, other), "a job on another bench waited")
}

// A store of schema version 1 (before targets), with two Pending jobs on one
// site, is migrated and its jobs get their targets at Open.
func TestOpen_StoreBeforeTargets_MigratedJobsBackfilled(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "jobs.db")
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);`+migrations[0])
	require.NoError(t, err)
	for i, id := range []string{"old1", "old2"} {
		_, err = db.ExecContext(ctx, `INSERT INTO jobs (seq, id, type, status, request, created_at, queued_at) VALUES (?, ?, 'site.backup', 'Pending', ?, 0, 0)`,
			i+1, id, []byte(siteReq("b1", "a.example.com")))
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, `INSERT INTO steps (job_seq, idx, name, status) VALUES (?, 0, 'work', 'Pending')`, i+1)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	iv := &intervals{runs: map[string][2]time.Time{}}
	q := openTestQueue(t, Options{Path: path, Types: []Type{targetedType("site.backup", iv)}, Workers: 2})
	var version int
	require.NoError(t, q.r.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version))
	assert.Equal(t, len(migrations), version)
	q.Start(ctx)
	assert.Equal(t, agentapi.Success, waitEnded(t, q, "old1").Status)
	assert.Equal(t, agentapi.Success, waitEnded(t, q, "old2").Status)
	assert.False(t, overlap(iv.get(t, "old1"), iv.get(t, "old2")), "jobs of an old store on one site ran at once")
}
