package jobs

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// lingering is a job type whose step, like a bench command being killed,
// returns some time after its ctx ends: after linger, or when release is
// closed.
func lingeringType(linger time.Duration, release <-chan struct{}, returned *atomic.Int64) Type {
	return Type{Name: "lingering", Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{{Name: "exec", Run: func(ctx context.Context, run *Run) error {
			<-ctx.Done()
			select {
			case <-time.After(linger):
			case <-release:
			}
			returned.Store(time.Now().UnixNano())
			return ctx.Err()
		}}}, nil
	}}
}

func waitRunning(t *testing.T, q *Queue, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		jobs, err := q.Get(t.Context(), id)
		return err == nil && jobs[0].Status == agentapi.Running && jobs[0].Steps[0].Status == agentapi.Running
	}, 5*time.Second, 5*time.Millisecond)
}

func TestCancel_StepSlowToStop_SlotHeldEndRecordedAfterItReturns(t *testing.T) {
	var returned atomic.Int64
	q := openTestQueue(t, Options{Workers: 1, Types: []Type{
		lingeringType(700*time.Millisecond, nil, &returned), scriptedType("test"),
	}})
	ctx := t.Context()
	q.Start(ctx)
	_, _, err := q.Submit(ctx, Submission{ID: "slow", Type: "lingering"})
	require.NoError(t, err)
	waitRunning(t, q, "slow")
	_, _, err = q.Submit(ctx, Submission{ID: "next", Type: "test", Request: request(t, scriptedStep{Name: "a"})})
	require.NoError(t, err)

	require.NoError(t, q.Cancel(ctx, "slow"))
	time.Sleep(300 * time.Millisecond)
	jobs, err := q.Get(ctx, "slow", "next")
	require.NoError(t, err)
	assert.Equal(t, agentapi.Running, jobs[0].Status, "ended while its step still ran")
	assert.Contains(t, jobs[0].Steps[0].Output, "--- stopping (cancelled): waiting for the step to return ---")
	assert.Equal(t, agentapi.Pending, jobs[1].Status, "the worker went on while the step still ran")
	s, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s.Stopping)
	assert.Equal(t, 1, s.Running)
	assert.Equal(t, 0, s.StuckSteps)

	slow := waitEnded(t, q, "slow")
	assert.Equal(t, agentapi.Failure, slow.Status)
	assert.Equal(t, "cancelled", slow.Error)
	require.NotZero(t, returned.Load())
	assert.False(t, slow.EndedAt.Before(time.Unix(0, returned.Load())), "end recorded before the step returned")
	next := waitEnded(t, q, "next")
	assert.False(t, next.StartedAt.Before(time.Unix(0, returned.Load())), "the next job started before the step returned")
}

func TestTimeout_StepNeverStops_WorkerFreedAfterStopTimeoutJobStaysRunning(t *testing.T) {
	var returned atomic.Int64
	release := make(chan struct{})
	stuck := lingeringType(time.Hour, release, &returned)
	stuck.Timeout = 100 * time.Millisecond
	stuck.Targets = RequestTargets
	other := scriptedType("test")
	other.Targets = RequestTargets
	q := openTestQueue(t, Options{Workers: 1, StopTimeout: 300 * time.Millisecond, Types: []Type{stuck, other}})
	ctx := t.Context()
	q.Start(ctx)
	_, _, err := q.Submit(ctx, Submission{ID: "stuck", Type: "lingering", Request: siteReq("b1", "a.example.com")})
	require.NoError(t, err)
	waitRunning(t, q, "stuck")
	// the same site waits for the stuck job; another site runs on the freed worker
	sameSite := json.RawMessage(`{"bench":"b1","site":"a.example.com","steps":[{"name":"a"}]}`)
	otherSite := json.RawMessage(`{"bench":"b1","site":"c.example.com","steps":[{"name":"a"}]}`)
	_, _, err = q.Submit(ctx, Submission{ID: "same", Type: "test", Request: sameSite})
	require.NoError(t, err)
	_, _, err = q.Submit(ctx, Submission{ID: "other", Type: "test", Request: otherSite})
	require.NoError(t, err)

	assert.Equal(t, agentapi.Success, waitEnded(t, q, "other").Status)
	s, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, s.StuckSteps)
	assert.Equal(t, 1, s.Stopping)
	assert.Greater(t, s.OldestRunning["lingering"], 300*time.Millisecond)
	jobs, err := q.Get(ctx, "stuck", "same")
	require.NoError(t, err)
	assert.Equal(t, agentapi.Running, jobs[0].Status)
	assert.Equal(t, agentapi.Pending, jobs[1].Status, "a job ran on a site whose stuck step still runs")

	close(release)
	job := waitEnded(t, q, "stuck")
	assert.Equal(t, agentapi.Failure, job.Status)
	assert.Equal(t, "timed out after 100ms", job.Error)
	assert.Equal(t, agentapi.Success, waitEnded(t, q, "same").Status)
	s, err = q.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, s.StuckSteps)
	assert.Equal(t, 0, s.Running)
	assert.Empty(t, s.OldestRunning)
}
