package sites

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hybridsuite/hybrid/agent/jobs"
)

// undoTimeout bounds the undo of a failed job: it runs after the job's own
// ctx ended when the job was cancelled or timed out.
const undoTimeout = 2 * time.Minute

// undoAction takes back one thing a job made. Actions are idempotent and
// take back only what the job made (see claim): they run whatever the
// failed step got to.
type undoAction struct {
	what string // "database and user site_x", "site folder /home/frappe/..."
	do   func(ctx context.Context) error
}

// undoResult is the result of a job whose undo ran: what it took back and
// what it left, with why, so a retry knows where it starts.
type undoResult struct {
	Undone []string `json:"undone"`
	Left   []string `json:"left,omitempty"`
	// Undoing is set while the undo runs, with the failure that started
	// it: when the agent stops in the middle, the step, run again, goes on
	// with the undo instead of doing again what it was undoing.
	Undoing bool   `json:"undoing,omitempty"`
	Cause   string `json:"cause,omitempty"`
}

// withUndo makes a job that takes back what it made when a step fails: the
// failing step runs undo(i)'s actions, in order, records each in its output
// and the job's result, and fails with its own error followed by what was
// undone and what was left. The jobs package has no undo of its own.
func withUndo(steps []jobs.Step, undo func(failed int, run *jobs.Run) []undoAction) []jobs.Step {
	out := make([]jobs.Step, len(steps))
	for i, st := range steps {
		do := st.Run
		out[i] = jobs.Step{Name: st.Name, Run: func(ctx context.Context, run *jobs.Run) error {
			var prior undoResult
			if run.Result(&prior) == nil && prior.Undoing {
				run.Log("the agent stopped while this step's failure was being undone: undoing it again")
				return runUndo(ctx, run, errors.New(prior.Cause), undo(i, run))
			}
			err := do(ctx, run)
			if err == nil {
				return nil
			}
			return runUndo(ctx, run, err, undo(i, run))
		}}
	}
	return out
}

func runUndo(ctx context.Context, run *jobs.Run, cause error, actions []undoAction) error {
	if len(actions) == 0 {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	run.Log("failed: %v", cause)
	if err := run.SetResult(undoResult{Undone: []string{}, Undoing: true, Cause: cause.Error()}); err != nil {
		run.Log("record that the undo started: %v", err)
	}
	res := undoResult{Undone: []string{}}
	for _, a := range actions {
		if err := a.do(ctx); err != nil {
			run.Log("undo: %s: left, %v", a.what, err)
			res.Left = append(res.Left, fmt.Sprintf("%s (%v)", a.what, err))
			continue
		}
		run.Log("undo: %s: removed", a.what)
		res.Undone = append(res.Undone, a.what)
	}
	if err := run.SetResult(res); err != nil {
		res.Left = append(res.Left, "the record of this undo ("+err.Error()+")")
	}
	msg := "undone: " + strings.Join(res.Undone, ", ")
	if len(res.Undone) == 0 {
		msg = "nothing undone"
	}
	if len(res.Left) > 0 {
		return fmt.Errorf("%w; %s; left behind: %s", cause, msg, strings.Join(res.Left, "; "))
	}
	return fmt.Errorf("%w; %s", cause, msg)
}
