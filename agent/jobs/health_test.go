package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// gatedType's one step waits until gate is closed, printing print.
func gatedType(gate <-chan struct{}, print string) Type {
	return Type{Name: "gated", Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{{Name: "work", Run: func(ctx context.Context, run *Run) error {
			run.Log("%s", print)
			select {
			case <-gate:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}}, nil
	}}
}

func TestRun_StoreWriteFailsAtStepEnd_RetriedUnhealthyUntilItWorks(t *testing.T) {
	gate := make(chan struct{})
	q := openTestQueue(t, Options{Workers: 1, Types: []Type{gatedType(gate, "working")}})
	ctx := t.Context()
	q.Start(ctx)
	_, _, err := q.Submit(ctx, Submission{ID: "j1", Type: "gated"})
	require.NoError(t, err)
	waitRunning(t, q, "j1")
	require.NoError(t, q.Healthy())

	fail := func() error { return errors.New("database or disk is full") }
	q.fault.Store(&fail)
	close(gate)
	require.Eventually(t, func() bool { return q.Healthy() != nil }, 5*time.Second, 5*time.Millisecond)
	assert.ErrorContains(t, q.Healthy(), "job store cannot be written: database or disk is full")
	s, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.False(t, s.StoreWritable)
	time.Sleep(300 * time.Millisecond) // a few retries
	jobs, err := q.Get(ctx, "j1")
	require.NoError(t, err)
	assert.Equal(t, agentapi.Running, jobs[0].Status)

	q.fault.Store(nil)
	job := waitEnded(t, q, "j1")
	assert.Equal(t, agentapi.Success, job.Status, "the step's end was lost")
	assert.Equal(t, "working\n", job.Steps[0].Output)
	assert.NoError(t, q.Healthy())
	s, err = q.Stats(ctx)
	require.NoError(t, err)
	assert.True(t, s.StoreWritable)
}

// The same on a real full disk: the store on a small tmpfs that the test
// fills while a step runs. Needs root to mount.
func TestRun_DiskFullAtStepEnd_JobEndsOnceSpaceIsFreed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })

	gate := make(chan struct{})
	// Output of 64 KiB makes the step's end write more than the WAL holds.
	q, err := Open(t.Context(), Options{Path: filepath.Join(dir, "jobs.db"), Workers: 1,
		Types: []Type{gatedType(gate, strings.Repeat("x", maxOutput-1))}})
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	ctx := t.Context()
	q.Start(ctx)
	_, _, err = q.Submit(ctx, Submission{ID: "j1", Type: "gated"})
	require.NoError(t, err)
	waitRunning(t, q, "j1")

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC
		}
	}
	require.NoError(t, f.Close())
	close(gate)
	require.Eventually(t, func() bool { return q.Healthy() != nil }, 10*time.Second, 10*time.Millisecond,
		"the step's end was written to a full disk")
	jobs, err := q.Get(ctx, "j1")
	require.NoError(t, err)
	assert.Equal(t, agentapi.Running, jobs[0].Status)

	require.NoError(t, os.Remove(filler))
	job := waitEnded(t, q, "j1")
	assert.Equal(t, agentapi.Success, job.Status)
	assert.Len(t, job.Steps[0].Output, maxOutput)
	assert.NoError(t, q.Healthy())
}
