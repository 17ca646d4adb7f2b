package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// Target is something a job holds while it runs. Two jobs whose targets
// conflict never run at once: a Pending job waits while a Running job, or an
// older Pending job, holds a target it conflicts with, so jobs on one target
// run in the order they were submitted and none waits forever behind newer
// ones.
type Target struct {
	// Key names what is held, such as "site:a.example.com".
	Key string
	// Shared targets are held together with other shared holders of the
	// same key; an exclusive one with no other holder.
	Shared bool
}

// BenchTarget and SiteTarget are the keys RequestTargets gives.
func BenchTarget(bench string) string { return "bench:" + bench }

// SiteTarget is a site's key. Site names are unique on the server, so the key
// does not name the bench.
func SiteTarget(site string) string { return "site:" + site }

// RequestTargets gives the targets of the agent's bench and site requests: a
// request with a "site" holds its site exclusively and its "bench" shared (so
// jobs on two sites of a bench run beside each other, and a bench job waits
// for them); one with only a "bench", or a "name" (bench.new), holds that
// bench exclusively. Other requests hold nothing.
func RequestTargets(request json.RawMessage) ([]Target, error) {
	var r struct {
		Bench string `json:"bench"`
		Site  string `json:"site"`
		Name  string `json:"name"`
	}
	if len(request) > 0 && string(request) != "null" {
		if err := json.Unmarshal(request, &r); err != nil {
			return nil, fmt.Errorf("targets of request: %w", err)
		}
	}
	switch {
	case r.Site != "":
		t := []Target{{Key: SiteTarget(r.Site)}}
		if r.Bench != "" {
			t = append(t, Target{Key: BenchTarget(r.Bench), Shared: true})
		}
		return t, nil
	case r.Bench != "":
		return []Target{{Key: BenchTarget(r.Bench)}}, nil
	case r.Name != "":
		return []Target{{Key: BenchTarget(r.Name)}}, nil
	}
	return nil, nil
}

// typeTargets gives a request's targets by its type, checked.
func typeTargets(t Type, request json.RawMessage) ([]Target, error) {
	if t.Targets == nil {
		return nil, nil
	}
	targets, err := t.Targets(request)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, tg := range targets {
		if tg.Key == "" || len(tg.Key) > 512 || strings.ContainsAny(tg.Key, "\x00\n") {
			return nil, fmt.Errorf("target %q: empty, longer than 512 bytes or holds a control character", tg.Key)
		}
		if seen[tg.Key] {
			return nil, fmt.Errorf("target %q given twice", tg.Key)
		}
		seen[tg.Key] = true
	}
	return targets, nil
}

func insertTargets(ctx context.Context, tx *sql.Tx, seq int64, targets []Target) error {
	for _, tg := range targets {
		if _, err := tx.ExecContext(ctx, `INSERT INTO job_targets (job_seq, key, shared) VALUES (?, ?, ?)`,
			seq, tg.Key, tg.Shared); err != nil {
			return err
		}
	}
	return nil
}

// claimable is the condition on a Pending job p that claim takes: none of its
// targets conflicts with one held by a Running job or by an older Pending job.
const claimable = `NOT EXISTS (
	SELECT 1 FROM job_targets pt
	JOIN job_targets ot ON ot.key = pt.key AND ot.job_seq != pt.job_seq AND (pt.shared = 0 OR ot.shared = 0)
	JOIN jobs o ON o.seq = ot.job_seq
	WHERE pt.job_seq = p.seq AND (o.status = 'Running' OR (o.status = 'Pending' AND o.seq < p.seq)))`

// backfillTargets gives the jobs not ended that have no targets (from a store
// of before targets, or a type that gained them) the targets of their type.
// Running in recover, it sees no Running job.
func (q *Queue) backfillTargets(ctx context.Context, tx *sql.Tx) error {
	type job struct {
		seq     int64
		typ     string
		request []byte
	}
	var missing []job
	err := queryRows(ctx, tx, `SELECT seq, type, request FROM jobs j WHERE status IN (?, ?)
		AND NOT EXISTS (SELECT 1 FROM job_targets WHERE job_seq = j.seq)`, []any{agentapi.Pending, agentapi.Running},
		func(rows *sql.Rows) error {
			var j job
			if err := rows.Scan(&j.seq, &j.typ, &j.request); err != nil {
				return err
			}
			missing = append(missing, j)
			return nil
		})
	if err != nil {
		return err
	}
	for _, j := range missing {
		t, ok := q.types[j.typ]
		if !ok {
			continue
		}
		targets, err := typeTargets(t, j.request)
		if err != nil {
			q.logger.Warn("job's targets unknown; it runs holding nothing", "seq", j.seq, "type", j.typ, "err", err)
			continue
		}
		if err := insertTargets(ctx, tx, j.seq, targets); err != nil {
			return err
		}
	}
	return nil
}
