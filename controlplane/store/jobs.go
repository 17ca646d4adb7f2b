package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/names"
)

// JobStatus is a job's state on the control plane's side.
type JobStatus string

// A job is Pending until a deliverer claims it (Delivering), Delivered once
// the agent accepted it, then Running, Success or Failure as the agent
// reports. A delivery that must be retried goes back to Pending with its
// next attempt time.
const (
	JobPending    JobStatus = "Pending"
	JobDelivering JobStatus = "Delivering"
	JobDelivered  JobStatus = "Delivered"
	JobRunning    JobStatus = "Running"
	JobSuccess    JobStatus = "Success"
	JobFailure    JobStatus = "Failure"
)

func (st JobStatus) valid() bool {
	switch st {
	case JobPending, JobDelivering, JobDelivered, JobRunning, JobSuccess, JobFailure:
		return true
	}
	return false
}

// Ended says whether st is final.
func (st JobStatus) Ended() bool { return st == JobSuccess || st == JobFailure }

// Job is a job of the control plane for one server's agent. Its ID is the
// X-Agent-Job-Id sent with every delivery, so the agent makes one job of it
// however often it is delivered.
type Job struct {
	ID     string
	Server string // the server's name
	Type   string
	Bench  string // target bench, if any
	Site   string // target site, if any
	// Request is the JSON body delivered to the agent. It holds no secret:
	// a job record is shown to people.
	Request  json.RawMessage
	Status   JobStatus
	Attempts int // deliveries started
	// NextAttemptAt is when the job is next due for delivery.
	NextAttemptAt time.Time
	// Deadline, when set, is when an unfinished job is failed.
	Deadline time.Time
	// AgentJob is the agent's last report of the job (agentapi.Job JSON).
	AgentJob  json.RawMessage
	Error     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

const jobColumns = `j.id, s.name, j.type, j.bench, j.site, j.request, j.status, j.attempts, j.next_attempt_at,
	j.deadline_at, j.agent_job, j.error, j.created_at, j.updated_at`

const jobFrom = ` FROM jobs j JOIN servers s ON s.id = j.server_id`

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var j Job
	var request, agentJob string
	var next, created, updated int64
	var deadline sql.NullInt64
	if err := row.Scan(&j.ID, &j.Server, &j.Type, &j.Bench, &j.Site, &request, &j.Status, &j.Attempts, &next,
		&deadline, &agentJob, &j.Error, &created, &updated); err != nil {
		return Job{}, err
	}
	if request != "" {
		j.Request = json.RawMessage(request)
	}
	if agentJob != "" {
		j.AgentJob = json.RawMessage(agentJob)
	}
	j.NextAttemptAt, j.Deadline = fromMS(next), fromNullMS(deadline)
	j.CreatedAt, j.UpdatedAt = fromMS(created), fromMS(updated)
	return j, nil
}

func (s *Store) scanJobs(ctx context.Context, query string, args ...any) ([]Job, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// CreateJob records a job, Pending and due now (or at j.NextAttemptAt).
// It is idempotent on the id: the same job again returns the recorded one
// with created false; the id with another server, type or request is
// ErrConflict.
func (s *Store) CreateJob(ctx context.Context, j Job) (_ Job, created bool, _ error) {
	var problems []error
	if err := names.JobID(j.ID); err != nil {
		problems = append(problems, err)
	}
	if j.Type == "" {
		problems = append(problems, errors.New("type is empty"))
	}
	if len(j.Request) > 0 && !json.Valid(j.Request) {
		problems = append(problems, errors.New("request is not JSON"))
	}
	if len(problems) > 0 {
		return Job{}, false, fmt.Errorf("create job %q: %w: %w", clip(j.ID), ErrInvalid, errors.Join(problems...))
	}
	var out Job
	err := s.Tx(ctx, func(tx *Store) error {
		sv, err := tx.GetServer(ctx, j.Server)
		if err != nil {
			return err
		}
		now := tx.nowMS()
		next := now
		if !j.NextAttemptAt.IsZero() {
			next = j.NextAttemptAt.UnixMilli()
		}
		// ON CONFLICT DO NOTHING: two callers creating the same id at once
		// make one row on both engines, and neither fails.
		res, err := tx.exec(ctx, `INSERT INTO jobs (id, server_id, type, bench, site, request, status, attempts,
			next_attempt_at, deadline_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			j.ID, sv.ID, j.Type, j.Bench, j.Site, string(j.Request), string(JobPending), next,
			msOrNil(j.Deadline), now, now)
		if err != nil {
			return fmt.Errorf("create job %q: %w", j.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("create job %q: %w", j.ID, err)
		}
		created = n == 1
		out, err = tx.GetJob(ctx, j.ID)
		if err != nil {
			return err
		}
		if !created && (out.Server != j.Server || out.Type != j.Type || !bytes.Equal(out.Request, j.Request)) {
			return fmt.Errorf("job id %q is taken by another job (%s on %s): %w", j.ID, out.Type, out.Server, ErrConflict)
		}
		return nil
	})
	if err != nil {
		return Job{}, false, err
	}
	return out, created, nil
}

// GetJob returns the job by id.
func (s *Store) GetJob(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(s.queryRow(ctx, `SELECT `+jobColumns+jobFrom+` WHERE j.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %q: %w", clip(id), ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %q: %w", clip(id), err)
	}
	return j, nil
}

// NextJobsToDeliver claims up to limit jobs due for delivery (Pending or
// Delivering, next attempt time passed, deadline not passed), oldest due
// first: each becomes Delivering with one more attempt and is not due again
// for lease, so a deliverer that dies mid-way leaves its jobs to be
// delivered again (the agent makes one job of the same id). On Postgres,
// control planes claiming at once skip each other's rows.
func (s *Store) NextJobsToDeliver(ctx context.Context, lease time.Duration, limit int) ([]Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []Job
	err := s.Tx(ctx, func(tx *Store) error {
		now := tx.nowMS()
		lock := ""
		if tx.dialect == postgresDialect {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := tx.query(ctx, `SELECT id FROM jobs WHERE status IN (?, ?) AND next_attempt_at <= ?
			AND (deadline_at IS NULL OR deadline_at > ?) ORDER BY next_attempt_at, created_at, id LIMIT ?`+lock,
			string(JobPending), string(JobDelivering), now, now, limit)
		if err != nil {
			return err
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		args := append([]any{string(JobDelivering), now + lease.Milliseconds(), now}, ids...)
		if _, err := tx.exec(ctx, `UPDATE jobs SET status = ?, attempts = attempts + 1, next_attempt_at = ?, updated_at = ?
			WHERE id IN (`+placeholders(len(ids))+`)`, args...); err != nil {
			return err
		}
		out, err = tx.scanJobs(ctx, `SELECT `+jobColumns+jobFrom+` WHERE j.id IN (`+placeholders(len(ids))+`)
			ORDER BY j.created_at, j.id`, ids...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim jobs to deliver: %w", err)
	}
	return out, nil
}

// MarkDelivered records that the agent accepted the job. A job the agent
// already reported on (Running or ended, by its callback) keeps that state.
func (s *Store) MarkDelivered(ctx context.Context, id string) error {
	return s.setJob(ctx, id, []JobStatus{JobPending, JobDelivering},
		`status = ?, error = ''`, string(JobDelivered))
}

// RetryDelivery puts a job whose delivery failed (connection error, 5xx)
// back to Pending, due at next, with the reason.
func (s *Store) RetryDelivery(ctx context.Context, id string, next time.Time, reason string) error {
	return s.setJob(ctx, id, []JobStatus{JobPending, JobDelivering},
		`status = ?, next_attempt_at = ?, error = ?`, string(JobPending), next.UnixMilli(), reason)
}

// FailJob ends an unfinished job as Failure with the reason (the agent
// refused it, or its deadline passed). An ended job is left as it is.
func (s *Store) FailJob(ctx context.Context, id, reason string) error {
	return s.setJob(ctx, id, []JobStatus{JobPending, JobDelivering, JobDelivered, JobRunning},
		`status = ?, error = ?`, string(JobFailure), reason)
}

// setJob updates a job in one of the from states; a job in another state is
// left alone (no error), an unknown job is ErrNotFound.
func (s *Store) setJob(ctx context.Context, id string, from []JobStatus, set string, args ...any) error {
	return s.Tx(ctx, func(tx *Store) error {
		j, err := tx.GetJob(ctx, id)
		if err != nil {
			return err
		}
		if !containsStatus(from, j.Status) {
			return nil
		}
		args = append(args, tx.nowMS(), id)
		if _, err := tx.exec(ctx, `UPDATE jobs SET `+set+`, updated_at = ? WHERE id = ?`, args...); err != nil {
			return fmt.Errorf("update job %q: %w", clip(id), err)
		}
		return nil
	})
}

func containsStatus(list []JobStatus, st JobStatus) bool {
	for _, x := range list {
		if x == st {
			return true
		}
	}
	return false
}

// UpdateJobFromAgent records the agent's report of a job (from a poll or
// its callback): the snapshot, its error, and the status it implies
// (the agent's Pending is our Delivered). An ended job does not change
// again. It returns the job as recorded.
func (s *Store) UpdateJobFromAgent(ctx context.Context, aj agentapi.Job) (Job, error) {
	var status JobStatus
	switch aj.Status {
	case agentapi.Pending:
		status = JobDelivered
	case agentapi.Running:
		status = JobRunning
	case agentapi.Success:
		status = JobSuccess
	case agentapi.Failure:
		status = JobFailure
	default:
		return Job{}, fmt.Errorf("update job %q from agent: %w: unknown status %q", clip(aj.ID), ErrInvalid, aj.Status)
	}
	snapshot, err := json.Marshal(aj)
	if err != nil {
		return Job{}, fmt.Errorf("update job %q from agent: %w", clip(aj.ID), err)
	}
	var out Job
	err = s.Tx(ctx, func(tx *Store) error {
		j, err := tx.GetJob(ctx, aj.ID)
		if err != nil {
			return err
		}
		if !j.Status.Ended() {
			if _, err := tx.exec(ctx, `UPDATE jobs SET status = ?, agent_job = ?, error = ?, updated_at = ? WHERE id = ?`,
				string(status), string(snapshot), aj.Error, tx.nowMS(), aj.ID); err != nil {
				return fmt.Errorf("update job %q from agent: %w", clip(aj.ID), err)
			}
		}
		out, err = tx.GetJob(ctx, aj.ID)
		return err
	})
	return out, err
}

// JobsInFlight returns the jobs the agent has and has not finished
// (Delivered or Running), to poll, by server then id; server "" is every
// server's.
func (s *Store) JobsInFlight(ctx context.Context, server string) ([]Job, error) {
	jobs, err := s.scanJobs(ctx, `SELECT `+jobColumns+jobFrom+` WHERE j.status IN (?, ?) AND (? = '' OR s.name = ?)
		ORDER BY s.name, j.id`, string(JobDelivered), string(JobRunning), server, server)
	if err != nil {
		return nil, fmt.Errorf("jobs in flight: %w", err)
	}
	return jobs, nil
}

// FailOverdueJobs ends every unfinished job whose deadline has passed as
// Failure, saying so, and returns them.
func (s *Store) FailOverdueJobs(ctx context.Context) ([]Job, error) {
	var out []Job
	err := s.Tx(ctx, func(tx *Store) error {
		now := tx.nowMS()
		open := []any{string(JobPending), string(JobDelivering), string(JobDelivered), string(JobRunning)}
		overdue, err := tx.scanJobs(ctx, `SELECT `+jobColumns+jobFrom+` WHERE j.status IN (?, ?, ?, ?)
			AND j.deadline_at IS NOT NULL AND j.deadline_at <= ? ORDER BY j.id`, append(open, now)...)
		if err != nil {
			return err
		}
		for _, j := range overdue {
			reason := fmt.Sprintf("deadline %s passed while %s", j.Deadline.Format(time.RFC3339), strings.ToLower(string(j.Status)))
			if _, err := tx.exec(ctx, `UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ?`,
				string(JobFailure), reason, now, j.ID); err != nil {
				return err
			}
			j.Status, j.Error, j.UpdatedAt = JobFailure, reason, fromMS(now)
			out = append(out, j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fail overdue jobs: %w", err)
	}
	return out, nil
}

// JobFilter selects jobs for ListJobs; empty fields select all.
type JobFilter struct {
	Server string
	Status JobStatus
	Site   string
	// Limit is the page size (default and maximum 1000).
	Limit int
	// After is the cursor ListJobs returned for the previous page.
	After string
}

type jobCursor struct {
	CreatedAt int64  `json:"c"`
	ID        string `json:"i"`
}

// ListJobs returns a page of jobs, newest first, and the cursor of the next
// page, "" after the last one.
func (s *Store) ListJobs(ctx context.Context, f JobFilter) ([]Job, string, error) {
	limit := pageSize(f.Limit)
	if f.Status != "" && !f.Status.valid() {
		return nil, "", fmt.Errorf("list jobs: %w: unknown status %q", ErrInvalid, f.Status)
	}
	var after jobCursor
	if f.After != "" {
		if err := decodeCursor(f.After, &after); err != nil {
			return nil, "", fmt.Errorf("list jobs: %w", err)
		}
	}
	jobs, err := s.scanJobs(ctx, `SELECT `+jobColumns+jobFrom+`
		WHERE (? = '' OR s.name = ?) AND (? = '' OR j.status = ?) AND (? = '' OR j.site = ?)
		AND (? = 0 OR j.created_at < ? OR (j.created_at = ? AND j.id < ?))
		ORDER BY j.created_at DESC, j.id DESC LIMIT ?`,
		f.Server, f.Server, string(f.Status), string(f.Status), f.Site, f.Site,
		boolInt(f.After != ""), after.CreatedAt, after.CreatedAt, after.ID, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	if len(jobs) <= limit {
		return jobs, "", nil
	}
	jobs = jobs[:limit]
	last := jobs[limit-1]
	return jobs, encodeCursor(jobCursor{CreatedAt: last.CreatedAt.UnixMilli(), ID: last.ID}), nil
}
