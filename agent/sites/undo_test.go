package sites

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
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

// The agent stops (a kill, a restart) while a failed step's undo runs: the
// step, run again when the agent is back, goes on with the undo instead of
// making again what was being taken back (before, a step that succeeded the
// second time went on to the next steps with its database dropped).
func TestWithUndo_AgentStopsMidUndo_ResumedStepUndoesInsteadOfRedoing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	var makes, undos atomic.Int32
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	steps := func(json.RawMessage) ([]jobs.Step, error) {
		return withUndo([]jobs.Step{
			{Name: "make", Run: func(ctx context.Context, run *jobs.Run) error {
				if makes.Add(1) == 1 {
					return errors.New("broke the first time")
				}
				return nil // would go on, as if nothing had been undone
			}},
			{Name: "after", Run: func(context.Context, *jobs.Run) error { return nil }},
		}, func(int, *jobs.Run) []undoAction {
			return []undoAction{{"the thing", func(ctx context.Context) error {
				if undos.Add(1) == 1 {
					<-stuck // the agent stops here
				}
				return nil
			}}}
		}), nil
	}
	open := func() *jobs.Queue {
		q, err := jobs.Open(context.Background(), jobs.Options{Path: path, StopTimeout: 100 * time.Millisecond,
			Types: []jobs.Type{{Name: "t", Steps: steps}}, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		return q
	}
	q := open()
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	_, _, err := q.Submit(ctx, jobs.Submission{ID: "j1", Type: "t", Request: json.RawMessage(`{}`)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return undos.Load() == 1 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, q.Close())

	q = open()
	ctx, cancel = context.WithCancel(context.Background())
	defer func() { cancel(); q.Close() }()
	q.Start(ctx)
	var job agentapi.Job
	require.Eventually(t, func() bool {
		list, err := q.Get(ctx, "j1")
		require.NoError(t, err)
		job = list[0]
		return job.Status.Ended()
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, agentapi.Failure, job.Status)
	require.Equal(t, int32(1), makes.Load(), "the step was not made again")
	require.Equal(t, int32(2), undos.Load())
	require.Equal(t, "step make: broke the first time; undone: the thing", job.Error)
	require.JSONEq(t, `{"undone":["the thing"]}`, string(job.Result))
	require.Equal(t, agentapi.Skipped, job.Steps[1].Status)
}
