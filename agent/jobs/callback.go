package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// Callback retries: 1s, 2s, 4s ... at most callbackMaxBackoff apart, until
// callbackGiveUp after the job ended. The control plane polls as well, so a
// callback that never arrives only makes it learn later.
const (
	callbackMinBackoff = time.Second
	callbackMaxBackoff = time.Minute
	callbackGiveUp     = time.Hour
	// callbackConcurrency callbacks are sent at once, so that a URL that
	// never answers holds one slot (for at most callbackTimeout), not the
	// whole delivery.
	callbackConcurrency = 8
	// callbackTimeout bounds one attempt whatever the client's own timeout.
	callbackTimeout = 30 * time.Second
)

// errRedirect: a callback answered with a redirect, which is not followed
// (it would send the job, and its signature, to a URL nobody configured).
var errRedirect = errors.New("redirects are not followed")

// callbackSender sends due callbacks, at most callbackConcurrency at once.
type callbackSender struct {
	q     *Queue
	slots chan struct{}
	done  chan struct{} // a send finished: a slot is free

	mu       sync.Mutex
	inflight map[string]bool // job ids being sent
	wg       sync.WaitGroup
}

// deliverCallbacks sends due callbacks until ctx ends. Its state is in the
// store (callback_state, _attempts, _next_at), so a restart goes on.
func (q *Queue) deliverCallbacks(ctx context.Context) {
	s := &callbackSender{
		q:        q,
		slots:    make(chan struct{}, callbackConcurrency),
		done:     make(chan struct{}, 1),
		inflight: map[string]bool{},
	}
	defer s.wg.Wait()
	for {
		next, err := s.dispatchDue(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := callbackMaxBackoff
		switch {
		case err != nil:
			q.logger.Error("deliver callbacks", "err", err)
			wait = callbackMinBackoff
		case len(s.slots) == cap(s.slots):
			// Every slot is taken: the next free one (s.done) wakes the loop.
		case !next.IsZero():
			wait = min(max(next.Sub(q.now()), 0), callbackMaxBackoff)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-q.wakeCallback:
		case <-s.done:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// dispatchDue starts a send for each callback due now, as far as there are
// free slots, and returns when the next callback not being sent is due
// (zero when none is pending).
func (s *callbackSender) dispatchDue(ctx context.Context) (time.Time, error) {
	q := s.q
	s.mu.Lock()
	busy := make([]any, 0, len(s.inflight))
	for id := range s.inflight {
		busy = append(busy, id)
	}
	s.mu.Unlock()
	notBusy := ""
	if len(busy) > 0 {
		notBusy = " AND id NOT IN (?" + strings.Repeat(", ?", len(busy)-1) + ")"
	}

	if free := cap(s.slots) - len(busy); free > 0 {
		args := append([]any{unixNano(q.now())}, busy...)
		args = append(args, free)
		rows, err := q.r.QueryContext(ctx, `SELECT id, callback_url, callback_attempts, ended_at FROM jobs
			WHERE callback_state = 'pending' AND callback_next_at <= ?`+notBusy+` ORDER BY callback_next_at LIMIT ?`, args...)
		if err != nil {
			return time.Time{}, err
		}
		var batch []dueCallback
		for rows.Next() {
			var d dueCallback
			if err := rows.Scan(&d.id, &d.url, &d.attempts, &d.endedAt); err != nil {
				rows.Close()
				return time.Time{}, err
			}
			batch = append(batch, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return time.Time{}, err
		}
		for _, d := range batch {
			s.slots <- struct{}{} // never blocks: at most free were selected
			s.mu.Lock()
			s.inflight[d.id] = true
			busy = append(busy, d.id)
			s.mu.Unlock()
			s.wg.Go(func() { s.send(ctx, d) })
		}
		if len(busy) > 0 {
			notBusy = " AND id NOT IN (?" + strings.Repeat(", ?", len(busy)-1) + ")"
		}
	}

	var next sql.NullInt64
	if err := q.r.QueryRowContext(ctx, `SELECT MIN(callback_next_at) FROM jobs WHERE callback_state = 'pending'`+notBusy,
		busy...).Scan(&next); err != nil {
		return time.Time{}, err
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, next.Int64), nil
}

type dueCallback struct {
	id, url  string
	attempts int
	endedAt  int64
}

// send makes one attempt at d and records its outcome; an attempt cut short
// by ctx (the queue closing) is not counted.
func (s *callbackSender) send(ctx context.Context, d dueCallback) {
	q := s.q
	defer func() {
		s.mu.Lock()
		delete(s.inflight, d.id)
		s.mu.Unlock()
		<-s.slots
		select {
		case s.done <- struct{}{}:
		default:
		}
	}()
	var sendErr error
	jobs, err := q.Get(ctx, d.id)
	if err != nil {
		sendErr = fmt.Errorf("read job: %w", err)
	} else {
		attemptCtx, cancel := context.WithTimeout(ctx, callbackTimeout)
		sendErr = q.post(attemptCtx, d.url, jobs[0])
		cancel()
	}
	if ctx.Err() != nil {
		return
	}
	attempts := d.attempts + 1
	now := q.now()
	state, next, msg := "delivered", now, ""
	if sendErr != nil {
		msg = sendErr.Error()
		backoff := min(callbackMinBackoff<<min(attempts-1, 16), callbackMaxBackoff)
		state, next = "pending", now.Add(backoff)
		if next.Sub(time.Unix(0, d.endedAt)) > callbackGiveUp {
			state = "failed"
			q.logger.Warn("callback not delivered; giving up", "job", d.id, "attempts", attempts, "err", sendErr)
		} else {
			q.logger.Info("callback not delivered; will retry", "job", d.id, "attempts", attempts, "in", backoff, "err", sendErr)
		}
	}
	if _, err := q.w.ExecContext(context.WithoutCancel(ctx), `UPDATE jobs SET callback_state = ?, callback_attempts = ?,
		callback_next_at = ?, callback_error = ? WHERE id = ?`, state, attempts, unixNano(next), msg, d.id); err != nil {
		q.logger.Error("record callback attempt", "job", d.id, "err", err)
		// The callback is still due in the store: hold the slot a moment so
		// that a store that cannot be written is not retried in a tight loop.
		select {
		case <-ctx.Done():
		case <-time.After(callbackMinBackoff):
		}
	}
}

// post sends job to url, signed when the queue has a callback secret; only
// a 2xx answer counts as delivered, a redirect is not followed.
func (q *Queue) post(ctx context.Context, url string, job agentapi.Job) error {
	body, err := json.Marshal(job)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(agentapi.JobIDHeader, job.ID)
	if len(q.cbSecret) > 0 {
		req.Header.Set(agentapi.SignatureHeader, agentapi.Sign(q.cbSecret, body, q.now()))
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return fmt.Errorf("callback answered %s: %w", resp.Status, errRedirect)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("callback answered %s", resp.Status)
	}
	return nil
}
