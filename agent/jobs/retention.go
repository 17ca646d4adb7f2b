package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// pruneBatch is how many jobs one transaction deletes: a short write, so
// workers recording steps do not wait long behind it.
const pruneBatch = 500

// keptJob is the condition on an ended job j that keeps it whatever its age:
// it is the last ended job of its type for one of its targets (a site's last
// backup), or, holding none, the last of its type holding none.
const keptJob = `(EXISTS (
		SELECT 1 FROM job_targets t WHERE t.job_seq = j.seq AND NOT EXISTS (
			SELECT 1 FROM job_targets t2 JOIN jobs j2 ON j2.seq = t2.job_seq
			WHERE t2.key = t.key AND t2.job_seq > j.seq AND j2.type = j.type AND j2.ended_at IS NOT NULL))
	OR (NOT EXISTS (SELECT 1 FROM job_targets WHERE job_seq = j.seq) AND NOT EXISTS (
		SELECT 1 FROM jobs j2 WHERE j2.type = j.type AND j2.seq > j.seq AND j2.ended_at IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM job_targets WHERE job_seq = j2.seq))))`

// Prune deletes the jobs that ended more than Retention ago, but the last
// of each type per target and those whose callback is still being
// delivered, in transactions of a few hundred; it returns how many it
// deleted. The counters the metrics read are kept apart, so they stay.
func (q *Queue) Prune(ctx context.Context) (int, error) {
	if q.retention <= 0 {
		return 0, nil
	}
	cutoff := unixNano(q.now().Add(-q.retention))
	total := 0
	for {
		n := 0
		err := q.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE seq IN (
				SELECT seq FROM jobs j WHERE ended_at IS NOT NULL AND ended_at < ? AND callback_state != 'pending'
				AND NOT `+keptJob+` ORDER BY seq LIMIT ?)`, cutoff, pruneBatch)
			if err != nil {
				return err
			}
			deleted, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n = int(deleted)
			if n == 0 {
				return nil
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES ('jobs_pruned', ?)
				ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`, n)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune jobs: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// prunePeriodically prunes at once and then every PruneInterval until ctx
// ends.
func (q *Queue) prunePeriodically(ctx context.Context) {
	ticker := time.NewTicker(q.pruneEvery)
	defer ticker.Stop()
	for {
		n, err := q.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			q.logger.Error("prune jobs", "err", err)
		case n > 0:
			q.logger.Info("pruned ended jobs", "count", n, "retention", q.retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
