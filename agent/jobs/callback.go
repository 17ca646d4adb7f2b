package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	callbackBatch      = 20
)

// deliverCallbacks sends due callbacks until ctx ends. Its state is in the
// store (callback_state, _attempts, _next_at), so a restart goes on.
func (q *Queue) deliverCallbacks(ctx context.Context) {
	for {
		next, err := q.deliverDue(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := callbackMaxBackoff
		if err != nil {
			q.logger.Error("deliver callbacks", "err", err)
			wait = callbackMinBackoff
		} else if !next.IsZero() {
			wait = min(max(next.Sub(q.now()), 0), callbackMaxBackoff)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-q.wakeCallback:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// deliverDue sends the callbacks due now and returns when the next one is
// due (zero when none is pending).
func (q *Queue) deliverDue(ctx context.Context) (time.Time, error) {
	for {
		type due struct {
			id, url  string
			attempts int
			endedAt  int64
		}
		rows, err := q.r.QueryContext(ctx, `SELECT id, callback_url, callback_attempts, ended_at FROM jobs
			WHERE callback_state = 'pending' AND callback_next_at <= ? ORDER BY callback_next_at LIMIT ?`,
			unixNano(q.now()), callbackBatch)
		if err != nil {
			return time.Time{}, err
		}
		var batch []due
		for rows.Next() {
			var d due
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
			jobs, err := q.Get(ctx, d.id)
			if err != nil {
				return time.Time{}, err
			}
			sendErr := q.post(ctx, d.url, jobs[0])
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
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
				return time.Time{}, err
			}
		}
		if len(batch) < callbackBatch {
			break
		}
	}
	var next sql.NullInt64
	if err := q.r.QueryRowContext(ctx, `SELECT MIN(callback_next_at) FROM jobs WHERE callback_state = 'pending'`).Scan(&next); err != nil {
		return time.Time{}, err
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, next.Int64), nil
}

// post sends job to url; only a 2xx answer counts as delivered.
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
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("callback answered %s", resp.Status)
	}
	return nil
}
