package jobs

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// Three failures in a row of a type count 3, whatever succeeded before them;
// the next success sets the count back to 0. Step failure counters exist at
// 0 from the first submission of their step.
func TestStats_ConsecutiveFailures_CountUpAndResetOnSuccess(t *testing.T) {
	q := openTestQueue(t, Options{})
	q.Start(t.Context())
	run := func(id string, fail bool) {
		st := scriptedStep{Name: "work"}
		if fail {
			st.Fail = "broken"
		}
		_, _, err := q.Submit(t.Context(), Submission{ID: id, Type: "test", Request: request(t, st)})
		require.NoError(t, err)
		waitEnded(t, q, id)
	}
	streak := func() int {
		s, err := q.Stats(t.Context())
		require.NoError(t, err)
		return s.ConsecutiveFailures["test"]
	}

	run("ok-1", false)
	s, err := q.Stats(t.Context())
	require.NoError(t, err)
	require.Contains(t, s.StepFailures, StepFailures{Type: "test", Step: "work", Count: 0}, "at 0 before any failure")
	for i := range 3 {
		run(fmt.Sprintf("ok-%d", i+2), false)
	}
	require.Equal(t, 0, streak())
	for i := range 3 {
		run(fmt.Sprintf("fail-%d", i), true)
		require.Equal(t, i+1, streak(), "three successes earlier in the hour do not hide the failures")
	}
	run("ok-again", false)
	require.Equal(t, 0, streak())

	jobs, err := q.Get(t.Context(), "fail-2")
	require.NoError(t, err)
	require.Equal(t, agentapi.Failure, jobs[0].Status)
}
