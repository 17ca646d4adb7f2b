package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

var errCancelled = errors.New("cancelled")

// timeoutError ends a job that ran past its type's Timeout.
type timeoutError struct{ d time.Duration }

func (e timeoutError) Error() string { return "timed out after " + shortDuration(e.d) }

// shortDuration writes 30m rather than 30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// pollInterval bounds how long a Pending job can wait unseen if a wake-up is
// missed (none should be).
const pollInterval = 5 * time.Second

// outputFlushInterval is how often a running step's output is saved.
const outputFlushInterval = time.Second

func (q *Queue) work(ctx context.Context) {
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for {
		c, err := q.claim(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			q.logger.Error("claim job", "err", err)
		case c != nil:
			q.signal(q.wake) // another worker may take the next one
			// The job runs apart so that a step stuck past StopTimeout can
			// give this worker back (release) while its job goes on.
			slot := make(chan struct{})
			go q.run(ctx, c, sync.OnceFunc(func() { close(slot) }))
			<-slot
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-poll.C:
		}
	}
}

// claimed is a job a worker took, as the store had it.
type claimed struct {
	seq             int64
	id, typ         string
	request, result []byte
	steps           []stepState
}

type stepState struct {
	name     string
	status   agentapi.Status
	attempts int
	output   string
}

// runningJob is a job this process runs.
type runningJob struct {
	typ    string
	since  time.Time // claimed, this attempt
	cancel context.CancelCauseFunc
	// stopping: its step's ctx ended (cancel, timeout, close) and the step
	// has not returned yet.
	stopping atomic.Bool
}

// claim takes the oldest Pending job whose targets are free (see Target),
// making it Running, in one write transaction; nil when there is none.
func (q *Queue) claim(ctx context.Context) (*claimed, error) {
	var c *claimed
	err := q.write(ctx, func(tx *sql.Tx) error {
		var j claimed
		err := tx.QueryRowContext(ctx, `SELECT seq, id, type, request, result FROM jobs p
			WHERE status = ? AND `+claimable+` ORDER BY seq LIMIT 1`, agentapi.Pending).Scan(&j.seq, &j.id, &j.typ, &j.request, &j.result)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		now := unixNano(q.now())
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, started_at = COALESCE(started_at, ?),
			attempts = attempts + 1 WHERE seq = ?`, agentapi.Running, now, j.seq); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT name, status, attempts, output FROM steps WHERE job_seq = ? ORDER BY idx`, j.seq)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s stepState
			if err := rows.Scan(&s.name, &s.status, &s.attempts, &s.output); err != nil {
				return err
			}
			j.steps = append(j.steps, s)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		c = &j
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// run runs a claimed job's steps from the first not done, and records how it
// ends; it leaves the job Running when the queue closes under it. It calls
// release when it returns, or before when a stopped step does not return
// within StopTimeout.
func (q *Queue) run(ctx context.Context, c *claimed, release func()) {
	defer release()
	logger := q.logger.With("job", c.id, "type", c.typ)
	// State is written even when ctx ends: that is how the job ends. Writes
	// that fail are retried until ctx (the queue) ends.
	wctx := context.WithoutCancel(ctx)

	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rj := &runningJob{typ: c.typ, since: q.now(), cancel: cancel}
	q.mu.Lock()
	q.running[c.id] = rj
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.running, c.id)
		q.mu.Unlock()
	}()
	// Read after registering: a Cancel that committed before this is seen
	// here, one after finds cancel in q.running.
	var cancelRequested bool
	if err := q.w.QueryRowContext(wctx, `SELECT cancel_requested FROM jobs WHERE seq = ?`, c.seq).Scan(&cancelRequested); err != nil {
		logger.Error("read job; it resumes on the next start", "err", err)
		return
	}
	if cancelRequested {
		cancel(errCancelled)
	}

	sec := q.secrets.child()
	end := func(e ending) {
		e.seq, e.typ = c.seq, c.typ
		// An error quotes what a bench printed (ExecError): cleaned as
		// its output is.
		e.err, e.stepErr = sec.redact(cleanOutput([]byte(e.err))), sec.redact(cleanOutput([]byte(e.stepErr)))
		if e.output != nil {
			o := sec.redact(*e.output)
			e.output = &o
		}
		if err := q.persist(ctx, wctx, logger, "end job", func(tx *sql.Tx) error { return q.endJob(wctx, tx, e) }); err != nil {
			logger.Error("end job; it resumes on the next start", "err", err)
			return
		}
		logger.Info("job ended", "status", e.status, "error", e.err)
		q.signal(q.wakeCallback)
		q.signal(q.wake) // a job waiting for its targets may run
	}

	t, ok := q.types[c.typ]
	if !ok {
		end(ending{status: agentapi.Failure, err: "unknown job type", failedStep: -1})
		return
	}
	steps, err := t.Steps(c.request)
	if err == nil && !sameNames(steps, c.steps) {
		err = fmt.Errorf("the steps of type %s changed since the job was submitted", c.typ)
	}
	if err != nil {
		end(ending{status: agentapi.Failure, err: "steps: " + err.Error(), failedStep: -1})
		return
	}

	jobCtx, cancelTimeout := context.WithTimeoutCause(jobCtx, t.Timeout, timeoutError{t.Timeout})
	defer cancelTimeout()

	result := c.result
	for i, st := range steps {
		if c.steps[i].status == agentapi.Success {
			continue
		}
		if jobCtx.Err() != nil {
			cause := context.Cause(jobCtx)
			if errors.Is(cause, errClosing) {
				return
			}
			end(ending{status: agentapi.Failure, err: cause.Error(), failedStep: -1})
			return
		}

		attempt := c.steps[i].attempts + 1
		out := &tail{}
		if prev := c.steps[i].output; prev != "" {
			fmt.Fprintf(out, "%s\n--- attempt %d ---\n", strings.TrimRight(prev, "\n"), attempt)
		}
		if err := q.persist(ctx, wctx, logger, "start step "+st.Name, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(wctx, `UPDATE steps SET status = ?, started_at = ?, ended_at = NULL, attempts = ?, error = ''
				WHERE job_seq = ? AND idx = ?`, agentapi.Running, unixNano(q.now()), attempt, c.seq, i)
			return err
		}); err != nil {
			logger.Error("start step; the job resumes on the next start", "step", st.Name, "err", err)
			return
		}
		r := &Run{q: q, seq: c.seq, id: c.id, request: c.request, attempt: attempt, out: out, result: result, secrets: sec}
		err := q.runStep(jobCtx, st, r, i, rj, release, logger)
		result = r.currentResult()
		output, _ := out.take()
		output = sec.redact(output)

		if err == nil {
			if err := q.persist(ctx, wctx, logger, "end step "+st.Name, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(wctx, `UPDATE steps SET status = ?, ended_at = ?, output = ? WHERE job_seq = ? AND idx = ?`,
					agentapi.Success, unixNano(q.now()), output, c.seq, i)
				return err
			}); err != nil {
				logger.Error("end step; the job resumes on the next start", "step", st.Name, "err", err)
				return
			}
			continue
		}
		e := ending{status: agentapi.Failure, failedStep: i, output: &output}
		if jobCtx.Err() != nil {
			cause := context.Cause(jobCtx)
			if errors.Is(cause, errClosing) {
				// Left Running, to resume on the next Open; keep what it printed.
				q.exec(wctx, `UPDATE steps SET output = ? WHERE job_seq = ? AND idx = ?`, output, c.seq, i)
				return
			}
			e.err, e.stepErr = cause.Error(), cause.Error()
		} else {
			e.err, e.stepErr = fmt.Sprintf("step %s: %v", st.Name, err), err.Error()
		}
		end(e)
		return
	}
	end(ending{status: agentapi.Success, failedStep: -1})
}

// runStep runs one step, saving its output every second, until it returns.
// When ctx ends (cancel, timeout, close) the step is waited for: what it runs
// (a bench command) is stopped by the same ctx, and its job must not end, nor
// another job take its targets, while it still runs. The job shows as
// stopping meanwhile (in its output and the log). A step that has not
// returned StopTimeout after its stop gives its worker back (release) and is
// counted as stuck, while its job stays Running until it returns.
func (q *Queue) runStep(ctx context.Context, st Step, r *Run, idx int, rj *runningJob, release func(), logger *slog.Logger) error {
	logger = logger.With("step", st.Name)
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(r.out, "panic: %v\n%s", p, debug.Stack())
				done <- fmt.Errorf("panic: %v", p)
			}
		}()
		done <- st.Run(ctx, r)
	}()
	saveFailed := false // logged once, not every second of a full disk
	save := func() {
		if output, dirty := r.out.take(); dirty {
			err := q.exec(context.WithoutCancel(ctx), `UPDATE steps SET output = ? WHERE job_seq = ? AND idx = ?`,
				r.secrets.redact(output), r.seq, idx)
			if err != nil && !saveFailed {
				logger.Warn("save step output", "err", err)
			}
			saveFailed = err != nil
		}
	}
	flush := time.NewTicker(outputFlushInterval)
	defer flush.Stop()
	ctxDone := ctx.Done()
	var stopped time.Time
	var stuck, remind <-chan time.Time
	for {
		select {
		case err := <-done:
			if !stopped.IsZero() {
				logger.Info("stopped step returned", "after", time.Since(stopped).Round(time.Millisecond), "err", err)
			}
			return err
		case <-flush.C:
			save()
		case <-ctxDone:
			ctxDone = nil
			stopped = time.Now()
			rj.stopping.Store(true)
			cause := context.Cause(ctx)
			if !errors.Is(cause, errClosing) { // closing: the job resumes, not ends
				fmt.Fprintf(r.out, "--- stopping (%v): waiting for the step to return ---\n", cause)
				save()
			}
			logger.Warn("job stopping: waiting for its step to return", "cause", cause)
			stuck = time.After(q.stopTimeout)
		case <-stuck:
			stuck = nil
			q.stuck.Add(1)
			defer q.stuck.Add(-1)
			logger.Error("stopped step has not returned; its worker takes other jobs, its job stays Running and holds its targets until it does",
				"stopped", time.Since(stopped).Round(time.Second), "cause", context.Cause(ctx))
			release()
			ticker := time.NewTicker(q.stopTimeout)
			defer ticker.Stop()
			remind = ticker.C
		case <-remind:
			logger.Error("stopped step still has not returned", "stopped", time.Since(stopped).Round(time.Second))
		}
	}
}

func sameNames(steps []Step, states []stepState) bool {
	if len(steps) != len(states) {
		return false
	}
	for i := range steps {
		if steps[i].Name != states[i].name {
			return false
		}
	}
	return true
}

// ending is how a job ends.
type ending struct {
	seq        int64
	typ        string
	status     agentapi.Status // Success or Failure
	err        string          // the job's error
	failedStep int             // the step that failed, or -1
	stepErr    string          // its error
	output     *string         // its output, when known
}

// endJob records a job's end in tx: the job, its failed and skipped steps,
// the counters the metrics read, and the callback to send.
func (q *Queue) endJob(ctx context.Context, tx *sql.Tx, e ending) error {
	now := q.now()
	var id string
	var started sql.NullInt64
	var result []byte
	var callbackURL string
	if err := tx.QueryRowContext(ctx, `SELECT id, started_at, result, callback_url FROM jobs WHERE seq = ?`, e.seq).
		Scan(&id, &started, &result, &callbackURL); err != nil {
		return err
	}
	if e.failedStep >= 0 {
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM steps WHERE job_seq = ? AND idx = ?`, e.seq, e.failedStep).Scan(&name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE steps SET status = ?, ended_at = ?, error = ?, output = COALESCE(?, output)
			WHERE job_seq = ? AND idx = ?`, agentapi.Failure, unixNano(now), e.stepErr, e.output, e.seq, e.failedStep); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO step_failures (type, step, count) VALUES (?, ?, 1)
			ON CONFLICT (type, step) DO UPDATE SET count = count + 1`, e.typ, name); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE steps SET status = ? WHERE job_seq = ? AND status IN (?, ?)`,
		agentapi.Skipped, e.seq, agentapi.Pending, agentapi.Running); err != nil {
		return err
	}
	callbackState := ""
	if callbackURL != "" {
		callbackState = "pending"
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, error = ?, ended_at = ?, callback_state = ?, callback_next_at = ?
		WHERE seq = ?`, e.status, e.err, unixNano(now), callbackState, unixNano(now), e.seq); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO ended_counts (type, status, count) VALUES (?, ?, 1)
		ON CONFLICT (type, status) DO UPDATE SET count = count + 1`, e.typ, e.status); err != nil {
		return err
	}
	failed := 0
	if e.status == agentapi.Failure {
		failed = 1
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO failure_streaks (type, failures) VALUES (?, ?)
		ON CONFLICT (type) DO UPDATE SET failures = CASE WHEN excluded.failures = 0 THEN 0 ELSE failures + 1 END`,
		e.typ, failed); err != nil {
		return err
	}
	if started.Valid {
		d := now.Sub(time.Unix(0, started.Int64)).Seconds()
		if _, err := tx.ExecContext(ctx, `INSERT INTO durations (type, count, sum) VALUES (?, 1, ?)
			ON CONFLICT (type) DO UPDATE SET count = count + 1, sum = sum + excluded.sum`, e.typ, d); err != nil {
			return err
		}
		for _, le := range DurationBuckets {
			if d <= le {
				if _, err := tx.ExecContext(ctx, `INSERT INTO duration_buckets (type, le, count) VALUES (?, ?, 1)
					ON CONFLICT (type, le) DO UPDATE SET count = count + 1`, e.typ, le); err != nil {
					return err
				}
				break
			}
		}
	}
	if e.status == agentapi.Success && len(result) > 0 {
		// The site is the one the job held (its Targets), not whatever its
		// result says: the queue does not read results.
		var key string
		err := tx.QueryRowContext(ctx, `SELECT key FROM job_targets WHERE job_seq = ? AND key LIKE 'site:%' AND shared = 0
			ORDER BY key LIMIT 1`, e.seq).Scan(&key)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if site, ok := strings.CutPrefix(key, SiteTarget("")); ok && site != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO site_results (type, site, job_id, ended_at, result) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (type, site) DO UPDATE SET job_id = excluded.job_id, ended_at = excluded.ended_at, result = excluded.result
				WHERE excluded.ended_at >= site_results.ended_at`, e.typ, site, id, unixNano(now), result); err != nil {
				return err
			}
		}
	}
	return nil
}

// recover sets jobs found Running (the agent stopped under them) back to
// Pending to resume, or ends them Failure, in one transaction.
func (q *Queue) recover(ctx context.Context) error {
	type found struct {
		seq             int64
		id, typ         string
		attempts        int
		cancelRequested bool
	}
	return q.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, type, attempts, cancel_requested FROM jobs WHERE status = ?`, agentapi.Running)
		if err != nil {
			return err
		}
		var all []found
		for rows.Next() {
			var f found
			if err := rows.Scan(&f.seq, &f.id, &f.typ, &f.attempts, &f.cancelRequested); err != nil {
				rows.Close()
				return err
			}
			all = append(all, f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		now := unixNano(q.now())
		for _, f := range all {
			running := -1
			if err := tx.QueryRowContext(ctx, `SELECT idx FROM steps WHERE job_seq = ? AND status = ?`, f.seq, agentapi.Running).
				Scan(&running); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			t, known := q.types[f.typ]
			reason := ""
			switch {
			case f.cancelRequested:
				reason = errCancelled.Error()
			case !known:
				reason = "interrupted: unknown job type"
			case t.NotResumable:
				reason = "interrupted"
			case f.attempts >= q.maxAttempts:
				reason = fmt.Sprintf("interrupted %d times", f.attempts)
			}
			if reason != "" {
				e := ending{seq: f.seq, typ: f.typ, status: agentapi.Failure, err: reason, failedStep: running, stepErr: reason}
				if err := q.endJob(ctx, tx, e); err != nil {
					return err
				}
				q.logger.Warn("job found running at start ended", "job", f.id, "type", f.typ, "error", reason)
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, queued_at = ? WHERE seq = ?`, agentapi.Pending, now, f.seq); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE steps SET status = ? WHERE job_seq = ? AND status = ?`,
				agentapi.Pending, f.seq, agentapi.Running); err != nil {
				return err
			}
			q.logger.Info("job found running at start resumes", "job", f.id, "type", f.typ, "attempts", f.attempts)
		}
		return q.backfillTargets(ctx, tx)
	})
}
