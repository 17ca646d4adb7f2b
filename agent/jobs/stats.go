package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// DurationBuckets are the job duration histogram's upper bounds
// (agentapi.JobDurationBuckets).
var DurationBuckets = agentapi.JobDurationBuckets

// The counts the metrics show are agentapi's messages, so the agent-jobs
// collector reads them without importing the queue.
type (
	Stats        = agentapi.JobStats
	EndedCount   = agentapi.JobEndedCount
	Durations    = agentapi.JobDurations
	StepFailures = agentapi.JobStepFailures
	SiteResult   = agentapi.JobSiteResult
)

// Stats reads the counts, in one read transaction: a few rows per type.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	tx, err := q.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Stats{}, fmt.Errorf("job stats: %w", err)
	}
	defer tx.Rollback()
	s, err := q.stats(ctx, tx)
	if err != nil {
		return Stats{}, fmt.Errorf("job stats: %w", err)
	}
	return s, nil
}

func (q *Queue) stats(ctx context.Context, tx *sql.Tx) (Stats, error) {
	s := Stats{Types: slices.Clone(q.typeNames)}
	addType := func(t string) {
		if !slices.Contains(s.Types, t) {
			s.Types = append(s.Types, t)
		}
	}
	err := queryRows(ctx, tx, `SELECT type, status, count FROM ended_counts ORDER BY type, status`, nil, func(rows *sql.Rows) error {
		var c EndedCount
		if err := rows.Scan(&c.Type, &c.Status, &c.Count); err != nil {
			return err
		}
		addType(c.Type)
		s.Ended = append(s.Ended, c)
		return nil
	})
	if err != nil {
		return s, err
	}
	err = queryRows(ctx, tx, `SELECT type, count, sum FROM durations ORDER BY type`, nil, func(rows *sql.Rows) error {
		d := Durations{Buckets: map[float64]uint64{}}
		if err := rows.Scan(&d.Type, &d.Count, &d.Sum); err != nil {
			return err
		}
		s.Durations = append(s.Durations, d)
		return nil
	})
	if err != nil {
		return s, err
	}
	for i := range s.Durations {
		d := &s.Durations[i]
		type bucket struct {
			le    float64
			count uint64
		}
		var stored []bucket
		err := queryRows(ctx, tx, `SELECT le, count FROM duration_buckets WHERE type = ?`, []any{d.Type}, func(rows *sql.Rows) error {
			var b bucket
			if err := rows.Scan(&b.le, &b.count); err != nil {
				return err
			}
			stored = append(stored, b)
			return nil
		})
		if err != nil {
			return s, err
		}
		for _, le := range DurationBuckets {
			for _, b := range stored {
				if b.le <= le {
					d.Buckets[le] += b.count
				}
			}
		}
	}
	var oldest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), MIN(queued_at) FROM jobs WHERE status = ?`, agentapi.Pending).
		Scan(&s.Pending, &oldest); err != nil {
		return s, err
	}
	if oldest.Valid {
		s.OldestPendingAge = max(q.now().Sub(time.Unix(0, oldest.Int64)), 0)
	}
	err = queryRows(ctx, tx, `SELECT type, step, count FROM step_failures ORDER BY type, step`, nil, func(rows *sql.Rows) error {
		var f StepFailures
		if err := rows.Scan(&f.Type, &f.Step, &f.Count); err != nil {
			return err
		}
		s.StepFailures = append(s.StepFailures, f)
		return nil
	})
	if err != nil {
		return s, err
	}
	err = queryRows(ctx, tx, `SELECT type, site, job_id, ended_at, result FROM site_results ORDER BY type, site`, nil, func(rows *sql.Rows) error {
		var r SiteResult
		var ended int64
		var result []byte
		if err := rows.Scan(&r.Type, &r.Site, &r.JobID, &ended, &result); err != nil {
			return err
		}
		r.EndedAt = time.Unix(0, ended).UTC()
		r.Result = result
		s.SiteResults = append(s.SiteResults, r)
		return nil
	})
	if err != nil {
		return s, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'jobs_pruned'`).
		Scan(&s.Pruned); err != nil {
		return s, err
	}
	s.ConsecutiveFailures = map[string]int{}
	err = queryRows(ctx, tx, `SELECT type, failures FROM failure_streaks`, nil, func(rows *sql.Rows) error {
		var typ string
		var n int
		if err := rows.Scan(&typ, &n); err != nil {
			return err
		}
		s.ConsecutiveFailures[typ] = n
		return nil
	})
	if err != nil {
		return s, err
	}
	slices.Sort(s.Types)

	s.Timeouts = map[string]time.Duration{}
	for name, t := range q.types {
		s.Timeouts[name] = t.Timeout
	}
	s.OldestRunning = map[string]time.Duration{}
	now := q.now()
	q.mu.Lock()
	for _, rj := range q.running {
		s.Running++
		if rj.stopping.Load() {
			s.Stopping++
		}
		age := max(now.Sub(rj.since), 0)
		if old, ok := s.OldestRunning[rj.typ]; !ok || age > old {
			s.OldestRunning[rj.typ] = age
		}
	}
	q.mu.Unlock()
	s.StuckSteps = int(q.stuck.Load())
	s.StoreWritable = q.Healthy() == nil
	return s, nil
}

func queryRows(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
