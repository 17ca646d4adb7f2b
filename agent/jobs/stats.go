package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// DurationBuckets are the upper bounds, in seconds, of the job duration
// histogram Stats gives, for jobs of 1 s to 2 h. Counts are kept per bucket
// in the store; a changed list still counts every job, a job only in a
// bucket that became wider.
var DurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}

// Stats are the counts the metrics show. Counts of ended jobs are kept in
// the store as jobs end, so they are cumulative since the store was created.
type Stats struct {
	// Types are the job types: those registered and those of ended jobs.
	Types []string
	Ended []EndedCount
	// Durations of ended jobs that started (from their first start to
	// their end, a restart between included), by type.
	Durations []Durations
	Pending   int
	// OldestPendingAge is how long the oldest Pending job has waited since
	// it became Pending (submitted, or set back at a restart); 0 when none.
	OldestPendingAge time.Duration
	StepFailures     []StepFailures
	// SiteResults are, per type and site, the last Success job whose result
	// JSON names a site: {"site": "<name>", ...}.
	SiteResults []SiteResult

	// Running counts the jobs running now; OldestRunning gives, for each
	// type with one running, how long the oldest has run (this attempt).
	Running       int
	OldestRunning map[string]time.Duration
	// Stopping counts running jobs whose step's ctx ended (cancel, timeout)
	// and which wait for it to return; StuckSteps those of them past
	// StopTimeout, whose worker went on to other jobs.
	Stopping   int
	StuckSteps int
	// Timeouts are the types' Timeout.
	Timeouts map[string]time.Duration
	// Pruned counts the ended jobs deleted by retention since the store was
	// created.
	Pruned uint64
	// StoreWritable is false while the last write to the store failed.
	StoreWritable bool
	// ConsecutiveFailures counts, by type, the jobs that ended Failure in a
	// row since the type's last Success.
	ConsecutiveFailures map[string]int
}

// EndedCount counts the jobs of a type that ended with a status.
type EndedCount struct {
	Type   string
	Status agentapi.Status
	Count  uint64
}

// Durations is a histogram of a type's job durations in seconds.
type Durations struct {
	Type  string
	Count uint64
	Sum   float64
	// Buckets are cumulative counts by upper bound (DurationBuckets).
	Buckets map[float64]uint64
}

// StepFailures counts the times a step of a type ended Failure.
type StepFailures struct {
	Type, Step string
	Count      uint64
}

// SiteResult is the last Success job of a type for a site.
type SiteResult struct {
	Type, Site string
	JobID      string
	EndedAt    time.Time
	Result     json.RawMessage
}

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
