package sites

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// runJob runs one job of steps on a real queue and returns it ended.
func runJob(t *testing.T, steps func(json.RawMessage) ([]jobs.Step, error)) agentapi.Job {
	t.Helper()
	q, err := jobs.Open(context.Background(), jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"),
		Types: []jobs.Type{{Name: "t", Steps: steps}}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	t.Cleanup(func() { cancel(); q.Close() })
	_, _, err = q.Submit(ctx, jobs.Submission{ID: "j1", Type: "t", Request: json.RawMessage(`{}`)})
	require.NoError(t, err)
	var job agentapi.Job
	require.Eventually(t, func() bool {
		list, err := q.Get(ctx, "j1")
		require.NoError(t, err)
		job = list[0]
		return job.Status.Ended()
	}, 10*time.Second, 10*time.Millisecond)
	return job
}

func TestWithUndo_StepFails_UndoesInOrder_NamesWhatWasLeftAndWhy(t *testing.T) {
	var did []string
	var failedAt = -1
	job := runJob(t, func(json.RawMessage) ([]jobs.Step, error) {
		ok := func(name string) jobs.Step {
			return jobs.Step{Name: name, Run: func(context.Context, *jobs.Run) error { did = append(did, name); return nil }}
		}
		return withUndo([]jobs.Step{
			ok("make a"),
			ok("make b"),
			{Name: "make c", Run: func(context.Context, *jobs.Run) error { return errors.New("c broke") }},
			ok("never"),
		}, func(failed int, run *jobs.Run) []undoAction {
			failedAt = failed
			return []undoAction{
				{"b", func(context.Context) error { did = append(did, "undo b"); return nil }},
				{"a", func(context.Context) error { return errors.New("a is busy") }},
				{"claim", func(context.Context) error { did = append(did, "undo claim"); return nil }},
			}
		}), nil
	})
	require.Equal(t, agentapi.Failure, job.Status)
	require.Equal(t, 2, failedAt)
	require.Equal(t, []string{"make a", "make b", "undo b", "undo claim"}, did)
	require.Equal(t, "step make c: c broke; undone: b, claim; left behind: a (a is busy)", job.Error)
	require.JSONEq(t, `{"undone":["b","claim"],"left":["a (a is busy)"]}`, string(job.Result))
	require.Contains(t, job.Steps[2].Output, "undo: b: removed")
	require.Contains(t, job.Steps[2].Output, "undo: a: left, a is busy")
	require.Equal(t, agentapi.Skipped, job.Steps[3].Status)
}

func TestWithUndo_NoActions_TheStepsErrorAlone(t *testing.T) {
	job := runJob(t, func(json.RawMessage) ([]jobs.Step, error) {
		return withUndo([]jobs.Step{{Name: "s", Run: func(context.Context, *jobs.Run) error { return errors.New("taken") }}},
			func(int, *jobs.Run) []undoAction { return nil }), nil
	})
	require.Equal(t, "step s: taken", job.Error)
	require.Empty(t, job.Result)
}

func TestClaim_ExclusivePerJob_ReleasedOnlyByItsJob(t *testing.T) {
	o := &Operations{Root: t.TempDir()}
	fresh, err := o.claim("site", "a.example.com", "b1", "job-1")
	require.NoError(t, err)
	require.True(t, fresh)
	fresh, err = o.claim("site", "a.example.com", "b1", "job-1")
	require.NoError(t, err)
	require.False(t, fresh, "the same job again holds it already")
	_, err = o.claim("site", "a.example.com", "b2", "job-2")
	require.EqualError(t, err, "site a.example.com is being created on bench b1 by job job-1")

	require.NoError(t, o.release("site", "a.example.com", "job-2"))
	held, ok := o.claimHolder("site", "a.example.com")
	require.True(t, ok, "another job's release leaves the claim")
	require.Equal(t, claimRecord{Bench: "b1", Job: "job-1"}, held)
	require.NoError(t, o.release("site", "a.example.com", "job-1"))
	_, ok = o.claimHolder("site", "a.example.com")
	require.False(t, ok)
	fresh, err = o.claim("site", "a.example.com", "b2", "job-2")
	require.NoError(t, err)
	require.True(t, fresh)
}

func TestNativePasswordHash_MatchesMariaDB(t *testing.T) {
	// SELECT PASSWORD('password') in MariaDB.
	require.Equal(t, "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", nativePasswordHash("password"))
}
