package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// scripted is a job type whose request says what its steps do.
type scriptedRequest struct {
	Steps []scriptedStep `json:"steps"`
}

type scriptedStep struct {
	Name   string `json:"name"`
	Print  string `json:"print,omitempty"`
	Sleep  string `json:"sleep,omitempty"` // a time.Duration; stops early when ctx ends
	Fail   string `json:"fail,omitempty"`
	Result any    `json:"result,omitempty"` // set as the job's result
}

func scriptedType(name string) Type {
	return Type{
		Name: name,
		Steps: func(request json.RawMessage) ([]Step, error) {
			var req scriptedRequest
			if err := json.Unmarshal(request, &req); err != nil {
				return nil, err
			}
			var steps []Step
			for _, s := range req.Steps {
				steps = append(steps, Step{Name: s.Name, Run: func(ctx context.Context, run *Run) error {
					if s.Print != "" {
						fmt.Fprint(run.Output(), s.Print)
					}
					if s.Sleep != "" {
						d, err := time.ParseDuration(s.Sleep)
						if err != nil {
							return err
						}
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return ctx.Err()
						}
					}
					if s.Result != nil {
						if err := run.SetResult(s.Result); err != nil {
							return err
						}
					}
					if s.Fail != "" {
						return errors.New(s.Fail)
					}
					return nil
				}})
			}
			return steps, nil
		},
	}
}

func request(t *testing.T, steps ...scriptedStep) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(scriptedRequest{Steps: steps})
	require.NoError(t, err)
	return b
}

func openTestQueue(t *testing.T, opts Options) *Queue {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "jobs.db")
	}
	if opts.Types == nil {
		opts.Types = []Type{scriptedType("test")}
	}
	q, err := Open(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close()) })
	return q
}

func waitEnded(t *testing.T, q *Queue, id string) agentapi.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs, err := q.Get(t.Context(), id)
		require.NoError(t, err)
		if jobs[0].Status.Ended() {
			return jobs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, jobs[0].Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stepStatuses(j agentapi.Job) []agentapi.Status {
	var out []agentapi.Status
	for _, s := range j.Steps {
		out = append(out, s.Status)
	}
	return out
}

func TestSubmit_SameIDTwice_OneJob(t *testing.T) {
	q := openTestQueue(t, Options{})
	ctx := t.Context()
	req := request(t, scriptedStep{Name: "one"})

	job, created, err := q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: req, CallbackURL: "http://cp/cb"})
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, agentapi.Pending, job.Status)
	assert.Equal(t, "http://cp/cb", job.CallbackURL)
	require.Len(t, job.Steps, 1)
	assert.Equal(t, agentapi.Step{Name: "one", Status: agentapi.Pending}, job.Steps[0])

	// The same request, formatted differently, is the same job.
	again, created, err := q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: json.RawMessage(" " + string(req) + "\n")})
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, job.CreatedAt, again.CreatedAt)

	list, err := q.List(ctx, "", 0)
	require.NoError(t, err)
	assert.Len(t, list, 1)
}

func TestSubmit_SameIDOtherRequest_Conflict(t *testing.T) {
	q := openTestQueue(t, Options{})
	ctx := t.Context()
	_, _, err := q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "one"})})
	require.NoError(t, err)

	_, _, err = q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "two"})})
	assert.ErrorIs(t, err, ErrConflict)
}

func TestSubmit_Refused(t *testing.T) {
	q := openTestQueue(t, Options{})
	for name, tc := range map[string]struct {
		s    Submission
		want error
	}{
		"unknown type":       {Submission{ID: "j1", Type: "nope"}, ErrUnknownType},
		"bad id":             {Submission{ID: "-j1", Type: "test", Request: request(t, scriptedStep{Name: "a"})}, ErrInvalid},
		"long id":            {Submission{ID: strings.Repeat("a", 129), Type: "test"}, ErrInvalid},
		"request not JSON":   {Submission{ID: "j1", Type: "test", Request: json.RawMessage("{")}, ErrInvalid},
		"refused by Steps":   {Submission{ID: "j1", Type: "test", Request: json.RawMessage(`[]`)}, ErrInvalid},
		"no steps requested": {Submission{ID: "j1", Type: "test", Request: json.RawMessage(`{}`)}, ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := q.Submit(t.Context(), tc.s)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

func TestGet_Missing_ErrNotFoundNamesID(t *testing.T) {
	q := openTestQueue(t, Options{})
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "a"})})
	require.NoError(t, err)

	_, err = q.Get(t.Context(), "j1", "j2")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorContains(t, err, `"j2"`)
}

// TestGet_ManyIDs_InTheirOrderEachWithItsSteps: Get reads every job and
// step in one statement; each job gets its own steps, in order, with their
// output, in the order the ids were asked (repeats included), and a List page
// the same steps without output.
func TestGet_ManyIDs_InTheirOrderEachWithItsSteps(t *testing.T) {
	q := openTestQueue(t, Options{})
	ctx := t.Context()
	for i, id := range []string{"a", "b", "c"} {
		var steps []scriptedStep
		for n := range i + 1 {
			steps = append(steps, scriptedStep{Name: fmt.Sprintf("%s%d", id, n), Print: id + " says hello"})
		}
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: "test", Request: request(t, steps...)})
		require.NoError(t, err)
	}
	q.Start(ctx)
	for _, id := range []string{"a", "b", "c"} {
		waitEnded(t, q, id)
	}

	got, err := q.Get(ctx, "c", "a", "b", "a")
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "a", "b", "a"}, ids(got))
	for _, j := range got {
		require.Equal(t, agentapi.Success, j.Status, j.ID)
		var names []string
		for _, s := range j.Steps {
			names = append(names, s.Name)
			assert.Equal(t, j.ID+" says hello", s.Output)
			assert.NotNil(t, s.EndedAt)
		}
		want := map[string][]string{"a": {"a0"}, "b": {"b0", "b1"}, "c": {"c0", "c1", "c2"}}[j.ID]
		assert.Equal(t, want, names, j.ID)
		assert.JSONEq(t, string(request(t, func() []scriptedStep {
			var s []scriptedStep
			for _, n := range want {
				s = append(s, scriptedStep{Name: n, Print: j.ID + " says hello"})
			}
			return s
		}()...)), string(j.Request))
	}

	page, next, err := q.ListPage(ctx, ListQuery{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "b"}, ids(page))
	require.Len(t, page[0].Steps, 3)
	assert.Empty(t, page[0].Steps[2].Output, "a page leaves the output out")
	page, next, err = q.ListPage(ctx, ListQuery{Limit: 2, Before: next})
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, ids(page))
	assert.Zero(t, next)
}

// TestGet_ConcurrentWithWrites_EveryReadSucceeds: reads run on the read pool
// beside the writer (WAL), under -race too.
func TestGet_ConcurrentWithWrites_EveryReadSucceeds(t *testing.T) {
	q := openTestQueue(t, Options{Workers: 2})
	ctx := t.Context()
	var all []string
	for i := range 20 {
		id := fmt.Sprintf("j%d", i)
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: "test", Request: request(t,
			scriptedStep{Name: "one", Print: "x", Sleep: "5ms"}, scriptedStep{Name: "two"})})
		require.NoError(t, err)
		all = append(all, id)
	}
	q.Start(ctx)
	errs := make(chan error, 16)
	for range cap(errs) {
		go func() {
			for range 20 {
				got, err := q.Get(ctx, all...)
				if err == nil && len(got) != len(all) {
					err = fmt.Errorf("got %d jobs", len(got))
				}
				for _, j := range got {
					if err == nil && len(j.Steps) != 2 {
						err = fmt.Errorf("job %s has %d steps", j.ID, len(j.Steps))
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range cap(errs) {
		require.NoError(t, <-errs)
	}
}

func TestList_NewestFirstByStatus(t *testing.T) {
	q := openTestQueue(t, Options{})
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: "test", Request: request(t, scriptedStep{Name: "s"})})
		require.NoError(t, err)
	}
	require.NoError(t, q.Cancel(ctx, "b"))

	all, err := q.List(ctx, "", 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "b", "a"}, ids(all))
	pending, err := q.List(ctx, agentapi.Pending, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "a"}, ids(pending))
	one, err := q.List(ctx, "", 1)
	require.NoError(t, err)
	assert.Equal(t, []string{"c"}, ids(one))
}

func ids(jobs []agentapi.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func TestCancel_Pending_FailureCancelled(t *testing.T) {
	q := openTestQueue(t, Options{})
	ctx := t.Context()
	_, _, err := q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "a"}, scriptedStep{Name: "b"})})
	require.NoError(t, err)

	require.NoError(t, q.Cancel(ctx, "j1"))
	jobs, err := q.Get(ctx, "j1")
	require.NoError(t, err)
	assert.Equal(t, agentapi.Failure, jobs[0].Status)
	assert.Equal(t, "cancelled", jobs[0].Error)
	assert.NotNil(t, jobs[0].EndedAt)
	assert.Equal(t, []agentapi.Status{agentapi.Skipped, agentapi.Skipped}, stepStatuses(jobs[0]))

	assert.ErrorIs(t, q.Cancel(ctx, "j1"), ErrConflict, "a job that ended")
	assert.ErrorIs(t, q.Cancel(ctx, "nope"), ErrNotFound)
}

func TestCancel_Running_StepCancelled(t *testing.T) {
	q := openTestQueue(t, Options{})
	ctx := t.Context()
	q.Start(ctx)
	_, _, err := q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: request(t,
		scriptedStep{Name: "a"}, scriptedStep{Name: "wait", Sleep: "1m"}, scriptedStep{Name: "c"})})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		jobs, err := q.Get(ctx, "j1")
		return err == nil && jobs[0].Steps[1].Status == agentapi.Running
	}, 5*time.Second, 5*time.Millisecond)

	require.NoError(t, q.Cancel(ctx, "j1"))
	job := waitEnded(t, q, "j1")
	assert.Equal(t, agentapi.Failure, job.Status)
	assert.Equal(t, "cancelled", job.Error)
	assert.Equal(t, []agentapi.Status{agentapi.Success, agentapi.Failure, agentapi.Skipped}, stepStatuses(job))
	assert.Equal(t, "cancelled", job.Steps[1].Error)
}

func TestRun_StepsInOrder_OutputAndResultKept(t *testing.T) {
	var seen []string
	typ := Type{Name: "ordered", Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{
			{Name: "first", Run: func(ctx context.Context, run *Run) error {
				seen = append(seen, "first")
				run.Log("hello %s", "world")
				return run.SetResult(map[string]any{"files": 2})
			}},
			{Name: "second", Run: func(ctx context.Context, run *Run) error {
				seen = append(seen, "second")
				var r map[string]any
				if err := run.Result(&r); err != nil {
					return err
				}
				r["checked"] = true
				// More than the kept tail: only the last 64 KiB stay.
				fmt.Fprint(run.Output(), strings.Repeat("x", 100<<10)+"end")
				assert.Equal(t, 1, run.Attempt())
				assert.Equal(t, "j1", run.JobID())
				return run.SetResult(r)
			}},
		}, nil
	}}
	q := openTestQueue(t, Options{Types: []Type{typ}})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "ordered"})
	require.NoError(t, err)

	job := waitEnded(t, q, "j1")
	assert.Equal(t, agentapi.Success, job.Status, job.Error)
	assert.Equal(t, []string{"first", "second"}, seen)
	assert.Equal(t, []agentapi.Status{agentapi.Success, agentapi.Success}, stepStatuses(job))
	assert.Equal(t, "hello world\n", job.Steps[0].Output)
	assert.Len(t, job.Steps[1].Output, maxOutput)
	assert.True(t, strings.HasSuffix(job.Steps[1].Output, "xend"))
	assert.JSONEq(t, `{"files": 2, "checked": true}`, string(job.Result))
	assert.Equal(t, 1, job.Attempts)
	require.NotNil(t, job.StartedAt)
	require.NotNil(t, job.EndedAt)
	for _, s := range job.Steps {
		assert.Equal(t, 1, s.Attempts)
		assert.NotNil(t, s.StartedAt)
		assert.NotNil(t, s.EndedAt)
	}
}

func TestRun_StepFails_JobFailureLaterSkipped(t *testing.T) {
	q := openTestQueue(t, Options{})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "test", Request: request(t,
		scriptedStep{Name: "dump"}, scriptedStep{Name: "upload", Print: "connecting\n", Fail: "connection refused"}, scriptedStep{Name: "prune"})})
	require.NoError(t, err)

	job := waitEnded(t, q, "j1")
	assert.Equal(t, agentapi.Failure, job.Status)
	assert.Equal(t, "step upload: connection refused", job.Error)
	assert.Equal(t, []agentapi.Status{agentapi.Success, agentapi.Failure, agentapi.Skipped}, stepStatuses(job))
	assert.Equal(t, "connection refused", job.Steps[1].Error)
	assert.Equal(t, "connecting\n", job.Steps[1].Output)
	assert.Nil(t, job.Steps[2].StartedAt)
}

func TestRun_StepPanics_JobFailure(t *testing.T) {
	typ := Type{Name: "panics", Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{{Name: "boom", Run: func(context.Context, *Run) error { panic("oops") }}}, nil
	}}
	q := openTestQueue(t, Options{Types: []Type{typ}})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "panics"})
	require.NoError(t, err)
	job := waitEnded(t, q, "j1")
	assert.Equal(t, "step boom: panic: oops", job.Error)
	assert.Contains(t, job.Steps[0].Output, "panic: oops")
}

func TestRun_Timeout_FailureTimedOut(t *testing.T) {
	typ := scriptedType("slow")
	typ.Timeout = 200 * time.Millisecond
	q := openTestQueue(t, Options{Types: []Type{typ}})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "slow", Request: request(t,
		scriptedStep{Name: "quick"}, scriptedStep{Name: "stuck", Sleep: "1m"}, scriptedStep{Name: "after"})})
	require.NoError(t, err)

	job := waitEnded(t, q, "j1")
	assert.Equal(t, agentapi.Failure, job.Status)
	assert.Equal(t, "timed out after 200ms", job.Error)
	assert.Equal(t, []agentapi.Status{agentapi.Success, agentapi.Failure, agentapi.Skipped}, stepStatuses(job))
	assert.Equal(t, "timed out after 200ms", job.Steps[1].Error)
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Minute:        "30m",
		2 * time.Hour:           "2h",
		90 * time.Minute:        "1h30m",
		1500 * time.Millisecond: "1.5s",
		45 * time.Second:        "45s",
	} {
		assert.Equal(t, want, shortDuration(d))
	}
}

func TestStart_PendingFromBeforeRestart_Run(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	ctx := t.Context()
	q, err := Open(ctx, Options{Path: path, Types: []Type{scriptedType("test")}})
	require.NoError(t, err)
	for _, id := range []string{"a", "b", "c"} {
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: "test", Request: request(t, scriptedStep{Name: "s"})})
		require.NoError(t, err)
	}
	require.NoError(t, q.Close())

	q = openTestQueue(t, Options{Path: path, Workers: 1})
	q.Start(ctx)
	for _, id := range []string{"a", "b", "c"} {
		assert.Equal(t, agentapi.Success, waitEnded(t, q, id).Status)
	}
	// One worker takes the oldest first.
	jobs, err := q.Get(ctx, "a", "b", "c")
	require.NoError(t, err)
	assert.False(t, jobs[1].StartedAt.Before(*jobs[0].EndedAt))
	assert.False(t, jobs[2].StartedAt.Before(*jobs[1].EndedAt))
}

func TestClose_RunningJob_ResumedAtItsStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	ctx := t.Context()
	q, err := Open(ctx, Options{Path: path, Types: []Type{scriptedType("test")}})
	require.NoError(t, err)
	q.Start(ctx)
	req := request(t, scriptedStep{Name: "a", Result: map[string]int{"a": 1}}, scriptedStep{Name: "b", Print: "b ran\n", Sleep: "1m"})
	_, _, err = q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: req})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		jobs, err := q.Get(ctx, "j1")
		return err == nil && jobs[0].Steps[1].Status == agentapi.Running
	}, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, q.Close())

	// As after a crash: Running in the store.
	q, err = Open(ctx, Options{Path: path, Types: []Type{scriptedType("test")}})
	require.NoError(t, err)
	jobs, err := q.Get(ctx, "j1")
	require.NoError(t, err)
	assert.Equal(t, agentapi.Pending, jobs[0].Status, "set back by Open")
	assert.Equal(t, []agentapi.Status{agentapi.Success, agentapi.Pending}, stepStatuses(jobs[0]))
	require.NoError(t, q.Close())

	// The next type's step b finishes at once; a is not run again.
	var ranA bool
	typ := Type{Name: "test", Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{
			{Name: "a", Run: func(context.Context, *Run) error { ranA = true; return nil }},
			{Name: "b", Run: func(_ context.Context, run *Run) error {
				var r map[string]int
				require.NoError(t, run.Result(&r))
				assert.Equal(t, map[string]int{"a": 1}, r, "result data of the first attempt")
				assert.Equal(t, 2, run.Attempt())
				return nil
			}},
		}, nil
	}}
	q = openTestQueue(t, Options{Path: path, Types: []Type{typ}})
	q.Start(ctx)
	job := waitEnded(t, q, "j1")
	assert.Equal(t, agentapi.Success, job.Status, job.Error)
	assert.False(t, ranA)
	assert.Equal(t, 2, job.Attempts)
	assert.Equal(t, 2, job.Steps[1].Attempts)
	assert.Equal(t, "b ran\n--- attempt 2 ---\n", job.Steps[1].Output)
}

func TestOpen_RunningNotResumable_FailureInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	ctx := t.Context()
	typ := scriptedType("once")
	typ.NotResumable = true
	q, err := Open(ctx, Options{Path: path, Types: []Type{typ}})
	require.NoError(t, err)
	q.Start(ctx)
	_, _, err = q.Submit(ctx, Submission{ID: "j1", Type: "once", Request: request(t,
		scriptedStep{Name: "a", Sleep: "1m"}, scriptedStep{Name: "b"})})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		jobs, err := q.Get(ctx, "j1")
		return err == nil && jobs[0].Steps[0].Status == agentapi.Running
	}, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, q.Close())

	q = openTestQueue(t, Options{Path: path, Types: []Type{typ}})
	jobs, err := q.Get(ctx, "j1")
	require.NoError(t, err)
	assert.Equal(t, agentapi.Failure, jobs[0].Status)
	assert.Equal(t, "interrupted", jobs[0].Error)
	assert.Equal(t, []agentapi.Status{agentapi.Failure, agentapi.Skipped}, stepStatuses(jobs[0]))
}

func TestOpen_StoreInUse_Refused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	openTestQueue(t, Options{Path: path})
	_, err := Open(t.Context(), Options{Path: path, Types: []Type{scriptedType("test")}})
	assert.ErrorContains(t, err, "another process")
}

// Check runs only for an id the queue does not know: a job delivered again
// is answered even when the check would now refuse it.
func TestSubmit_Check_OnlyForNewIDs(t *testing.T) {
	q := openTestQueue(t, Options{})
	ctx := t.Context()
	req := request(t, scriptedStep{Name: "one"})
	refuse := errors.New("bench exists")
	calls := 0
	check := func() error { calls++; return refuse }

	_, _, err := q.Submit(ctx, Submission{ID: "c1", Type: "test", Request: req, Check: check})
	require.ErrorIs(t, err, refuse)
	_, err = q.Get(ctx, "c1")
	require.ErrorIs(t, err, ErrNotFound, "a refused job is not made")

	_, created, err := q.Submit(ctx, Submission{ID: "c1", Type: "test", Request: req})
	require.NoError(t, err)
	require.True(t, created)
	_, created, err = q.Submit(ctx, Submission{ID: "c1", Type: "test", Request: req, Check: check})
	require.NoError(t, err, "the same job again: no check")
	require.False(t, created)
	require.Equal(t, 1, calls)
}
