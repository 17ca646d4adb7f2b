package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, pure Go
)

// migrations, applied in order; schema_version holds how many ran. Only add.
var migrations = []string{
	`CREATE TABLE jobs (
		seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- submission order
		id           TEXT NOT NULL UNIQUE,
		type         TEXT NOT NULL,
		status       TEXT NOT NULL,
		request      BLOB NOT NULL,
		result       BLOB,
		error        TEXT NOT NULL DEFAULT '',
		created_at   INTEGER NOT NULL, -- unix nanoseconds, as every time here
		queued_at    INTEGER NOT NULL, -- when it last became Pending
		started_at   INTEGER,
		ended_at     INTEGER,
		attempts     INTEGER NOT NULL DEFAULT 0,
		cancel_requested INTEGER NOT NULL DEFAULT 0,
		callback_url      TEXT NOT NULL DEFAULT '',
		callback_state    TEXT NOT NULL DEFAULT '', -- '', 'pending', 'delivered', 'failed'
		callback_attempts INTEGER NOT NULL DEFAULT 0,
		callback_next_at  INTEGER,
		callback_error    TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX jobs_status ON jobs (status, seq);
	CREATE INDEX jobs_callback ON jobs (callback_state, callback_next_at);
	CREATE TABLE steps (
		job_seq    INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
		idx        INTEGER NOT NULL,
		name       TEXT NOT NULL,
		status     TEXT NOT NULL,
		started_at INTEGER,
		ended_at   INTEGER,
		attempts   INTEGER NOT NULL DEFAULT 0,
		output     TEXT NOT NULL DEFAULT '',
		error      TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (job_seq, idx)
	) WITHOUT ROWID;
	-- Counters kept on every state change, in the same transaction, so that a
	-- scrape reads a few rows and they stay cumulative if old jobs are pruned.
	CREATE TABLE ended_counts (
		type   TEXT NOT NULL,
		status TEXT NOT NULL,
		count  INTEGER NOT NULL,
		PRIMARY KEY (type, status)
	) WITHOUT ROWID;
	CREATE TABLE durations (
		type  TEXT NOT NULL PRIMARY KEY,
		count INTEGER NOT NULL,
		sum   REAL NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE duration_buckets (
		type  TEXT NOT NULL,
		le    REAL NOT NULL, -- the smallest of DurationBuckets >= the duration
		count INTEGER NOT NULL,
		PRIMARY KEY (type, le)
	) WITHOUT ROWID;
	CREATE TABLE step_failures (
		type  TEXT NOT NULL,
		step  TEXT NOT NULL,
		count INTEGER NOT NULL,
		PRIMARY KEY (type, step)
	) WITHOUT ROWID;
	-- The last Success job of each type per site, for results that name one.
	CREATE TABLE site_results (
		type     TEXT NOT NULL,
		site     TEXT NOT NULL,
		job_id   TEXT NOT NULL,
		ended_at INTEGER NOT NULL,
		result   BLOB NOT NULL,
		PRIMARY KEY (type, site)
	) WITHOUT ROWID;`,
	// 2: what jobs hold while they run (Type.Targets), so that jobs on one
	// site or bench do not run at once; retention.
	`CREATE TABLE job_targets (
		job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
		key     TEXT NOT NULL,
		shared  INTEGER NOT NULL, -- 0: held alone
		PRIMARY KEY (job_seq, key)
	) WITHOUT ROWID;
	CREATE INDEX job_targets_key ON job_targets (key, job_seq);
	CREATE INDEX jobs_ended ON jobs (ended_at) WHERE ended_at IS NOT NULL;
	CREATE TABLE counters (
		name  TEXT NOT NULL PRIMARY KEY, -- 'jobs_pruned'
		value INTEGER NOT NULL
	) WITHOUT ROWID;`,
	// 3: jobs of a type that failed in a row since its last success, so an
	// alert fires on repeated failures and resolves on the next success.
	`CREATE TABLE failure_streaks (
		type     TEXT NOT NULL PRIMARY KEY,
		failures INTEGER NOT NULL
	) WITHOUT ROWID;`,
}

// openDB opens the store: one connection that writes (BEGIN IMMEDIATE, so a
// transaction that reads then writes never fails to upgrade its lock) and a
// few that only read, which WAL lets run beside the writer.
//
// synchronous=FULL: with WAL, NORMAL keeps the database consistent but may
// lose the last transactions on a power cut. A lost Submit means the agent
// answered {"job": id} for a job it then forgets, and a lost step end re-runs
// a step; job writes are few (a handful per step), so an fsync per commit
// costs nothing that matters here.
func openDB(ctx context.Context, path string) (w, r *sql.DB, err error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, nil, fmt.Errorf("store path %q: empty or holds '?' or '#'", path)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	// At most 512 KiB of page cache per connection (SQLite's default is
	// 2 MiB, for each of the writer and the readers): the file's pages stay in
	// the OS's cache, and the agent is a small daemon.
	q.Add("_pragma", "cache_size(-512)")
	q.Set("_txlock", "immediate")
	w, err = sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("migrate store %s: %w", path, err)
	}
	q.Set("_txlock", "deferred")
	q.Set("_query_only", "1")
	r, err = sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One reader per core (2 at least, 8 at most): a read is CPU work once
	// its pages are in the OS's cache, and every connection keeps its own page
	// cache and prepared statements. On 2 cores, 4 readers polled no faster
	// than 2. Idle readers are kept (database/sql keeps 2 by default): a
	// reopened connection parses the schema and prepares its statements again.
	readConns := max(2, min(runtime.NumCPU(), 8))
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return w, r, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var version int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err {
	case nil:
	case sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	default:
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this agent's %d", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
		return err
	}
	return tx.Commit()
}

// Times are stored as unix nanoseconds.
func unixNano(t time.Time) int64 { return t.UnixNano() }

func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}
