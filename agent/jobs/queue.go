package jobs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/names"
)

// Errors a caller decides on.
var (
	ErrNotFound    = errors.New("job not found")
	ErrUnknownType = errors.New("unknown job type")
	// ErrConflict: the same id was submitted with a different type or
	// request, or a job that ended was cancelled.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: a bad id, a request that is not JSON, or one its type's
	// Steps refused.
	ErrInvalid = errors.New("invalid job")
)

// DefaultTimeout is a Type's Timeout when it gives none.
const DefaultTimeout = 30 * time.Minute

// DefaultMaxAttempts is Options.MaxAttempts when it gives none.
const DefaultMaxAttempts = 10

// DefaultStopTimeout is Options.StopTimeout when it gives none.
const DefaultStopTimeout = 5 * time.Minute

// DefaultRetention is Options.Retention when it gives none.
const DefaultRetention = 30 * 24 * time.Hour

// DefaultPruneInterval is Options.PruneInterval when it gives none.
const DefaultPruneInterval = time.Hour

// Submission is a job to create.
type Submission struct {
	ID          string
	Type        string
	Request     json.RawMessage
	CallbackURL string
	// Check, when set, runs only when no job has the id yet: its error
	// refuses the job as it is (a bench that exists, a site that does not).
	// A job delivered again with its id is answered even when the check
	// would now refuse it (the bench it made exists).
	Check func() error
}

// StepFunc does one step. ctx is cancelled when the job is cancelled, times
// out, or the queue closes.
type StepFunc func(ctx context.Context, run *Run) error

// Step is one named step of a job.
type Step struct {
	Name string
	Run  StepFunc
}

// Type is a kind of job.
type Type struct {
	Name string
	// Timeout bounds one attempt of the job (a resumed job gets it anew);
	// DefaultTimeout when zero.
	Timeout time.Duration
	// Steps gives the steps for a request. It is called at Submit (an error
	// refuses the job with ErrInvalid) and again when the job runs, and must
	// give the same names for the same request. Steps must be idempotent.
	Steps func(request json.RawMessage) ([]Step, error)
	// NotResumable: a job of this type found Running after a restart ends
	// Failure "interrupted" instead of resuming. (The zero Type resumes.)
	NotResumable bool
	// Targets gives what a job holds while it runs (RequestTargets for the
	// agent's bench and site requests); nil holds nothing. It is called at
	// Submit, and an error refuses the job with ErrInvalid.
	Targets func(request json.RawMessage) ([]Target, error)
}

// Options configure a Queue.
type Options struct {
	Path    string // the SQLite file
	Types   []Type
	Workers int // jobs run at once; 2 when zero
	Logger  *slog.Logger
	Now     func() time.Time
	// CallbackClient posts callbacks; a client with a 10 s timeout when nil.
	CallbackClient *http.Client
	// MaxAttempts: a job found Running at Open after this many attempts ends
	// Failure instead of resuming again (a job that kills the agent must not
	// do so forever); DefaultMaxAttempts when zero.
	MaxAttempts int
	// Secrets are values never recorded as they are: replaced in step
	// output, errors and results (the API token, offsite keys).
	Secrets []string
	// CallbackSecret, when set, signs every callback (agentapi.SignatureHeader).
	CallbackSecret []byte
	// StopTimeout is how long a cancelled or timed-out job's worker waits for
	// its step to return before it takes other jobs again: the job stays
	// Running, holding its targets, until the step does return.
	// DefaultStopTimeout when zero.
	StopTimeout time.Duration
	// Retention is how long ended jobs are kept; the last ended job of each
	// type per target (site, bench) is kept whatever its age.
	// DefaultRetention when zero; negative keeps every job.
	Retention time.Duration
	// PruneInterval is how often jobs past Retention are deleted (and once
	// at Start); DefaultPruneInterval when zero.
	PruneInterval time.Duration
}

// Queue runs jobs from its store. Its methods are safe for concurrent use.
type Queue struct {
	w, r        *sql.DB
	reads       *reads // prepared on r
	lock        *os.File
	types       map[string]Type
	typeNames   []string
	workers     int
	maxAttempts int
	logger      *slog.Logger
	now         func() time.Time
	client      *http.Client
	secrets     *secrets
	cbSecret    []byte
	stopTimeout time.Duration
	retention   time.Duration
	pruneEvery  time.Duration

	// storeErr is the last error writing the store, nil once a write
	// succeeds again: the agent is unhealthy while it is set.
	storeErr atomic.Pointer[error]
	// fault, when set (tests), fails writes before they reach the store.
	fault atomic.Pointer[func() error]
	stuck atomic.Int64 // steps that did not return within StopTimeout of their stop

	wake         chan struct{} // a job became Pending
	wakeCallback chan struct{} // a job with a callback ended

	mu      sync.Mutex
	running map[string]*runningJob // by job id
	stop    context.CancelCauseFunc
	started bool
	closed  bool
	wg      sync.WaitGroup
}

var errClosing = errors.New("queue closing")

// AddSecrets adds values that jobs never record as they are, for secrets the
// agent learns after Open.
func (q *Queue) AddSecrets(values ...string) { q.secrets.add(values...) }

// Open opens (or creates) the store and recovers it: jobs found Running are
// set back to Pending to resume at their first step not done, or end Failure
// "interrupted" when their type is not resumable or unknown, or they already
// had MaxAttempts attempts. No job runs until Start.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	q := &Queue{
		types:        map[string]Type{},
		workers:      opts.Workers,
		maxAttempts:  opts.MaxAttempts,
		logger:       opts.Logger,
		now:          opts.Now,
		client:       opts.CallbackClient,
		secrets:      &secrets{},
		cbSecret:     opts.CallbackSecret,
		wake:         make(chan struct{}, 1),
		wakeCallback: make(chan struct{}, 1),
		running:      map[string]*runningJob{},
		stopTimeout:  opts.StopTimeout,
		retention:    opts.Retention,
		pruneEvery:   opts.PruneInterval,
	}
	q.secrets.add(opts.Secrets...)
	for _, t := range opts.Types {
		if t.Name == "" || t.Steps == nil {
			return nil, fmt.Errorf("job type %q: a name and Steps are required", t.Name)
		}
		if _, dup := q.types[t.Name]; dup {
			return nil, fmt.Errorf("job type %q given twice", t.Name)
		}
		if t.Timeout <= 0 {
			t.Timeout = DefaultTimeout
		}
		q.types[t.Name] = t
		q.typeNames = append(q.typeNames, t.Name)
	}
	sort.Strings(q.typeNames)
	if q.workers <= 0 {
		q.workers = 2
	}
	if q.maxAttempts <= 0 {
		q.maxAttempts = DefaultMaxAttempts
	}
	if q.logger == nil {
		q.logger = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.client == nil {
		q.client = &http.Client{Timeout: 10 * time.Second}
	}
	// Callbacks follow no redirect (a 3xx is a failed delivery, retried): a
	// copy of the caller's client, made once.
	client := *q.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	q.client = &client
	if q.stopTimeout <= 0 {
		q.stopTimeout = DefaultStopTimeout
	}
	if q.retention == 0 {
		q.retention = DefaultRetention
	}
	if q.pruneEvery <= 0 {
		q.pruneEvery = DefaultPruneInterval
	}

	lock, err := lockFile(opts.Path + ".lock")
	if err != nil {
		return nil, err
	}
	q.lock = lock
	q.w, q.r, err = openDB(ctx, opts.Path)
	if err != nil {
		unlockFile(lock)
		return nil, err
	}
	if q.reads, err = prepareReads(ctx, q.r); err != nil {
		q.closeStore()
		return nil, err
	}
	if err := q.recover(ctx); err != nil {
		q.closeStore()
		return nil, fmt.Errorf("recover jobs: %w", err)
	}
	return q, nil
}

// Start starts the workers and the callback sender; it returns at once. They
// stop on Close or when ctx ends.
func (q *Queue) Start(ctx context.Context) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.closed {
		return
	}
	q.started = true
	ctx, q.stop = context.WithCancelCause(ctx)
	for range q.workers {
		q.wg.Go(func() { q.work(ctx) })
	}
	q.wg.Go(func() { q.deliverCallbacks(ctx) })
	if q.retention > 0 {
		q.wg.Go(func() { q.prunePeriodically(ctx) })
	}
}

// Close stops the workers and closes the store. Running steps get their ctx
// cancelled and are waited for (a step stuck past StopTimeout is not); their
// jobs stay Running in the store and resume on the next Open, as after a
// crash.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	if q.stop != nil {
		q.stop(errClosing)
	}
	q.mu.Unlock()
	q.wg.Wait()
	return q.closeStore()
}

func (q *Queue) closeStore() error {
	var err error
	if q.reads != nil {
		err = q.reads.close()
	}
	err = errors.Join(err, q.r.Close(), q.w.Close())
	unlockFile(q.lock)
	return err
}

// Submit creates a job, Pending. The same id again returns the job it names
// (false: not created) when type and request are the same, ErrConflict when
// not.
func (q *Queue) Submit(ctx context.Context, s Submission) (job agentapi.Job, created bool, err error) {
	if err := names.JobID(s.ID); err != nil {
		return agentapi.Job{}, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	t, ok := q.types[s.Type]
	if !ok {
		return agentapi.Job{}, false, fmt.Errorf("%w: %q", ErrUnknownType, s.Type)
	}
	request, err := compactJSON(s.Request)
	if err != nil {
		return agentapi.Job{}, false, fmt.Errorf("%w: request: %v", ErrInvalid, err)
	}
	steps, err := t.Steps(request)
	if err != nil {
		return agentapi.Job{}, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(steps) == 0 {
		return agentapi.Job{}, false, fmt.Errorf("%w: type %q gave no steps", ErrInvalid, s.Type)
	}
	targets, err := typeTargets(t, request)
	if err != nil {
		return agentapi.Job{}, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if s.Check != nil {
		var one int
		err := q.r.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE id = ?`, s.ID).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := s.Check(); err != nil {
				return agentapi.Job{}, false, err
			}
		case err != nil:
			return agentapi.Job{}, false, err
		}
	}

	err = q.write(ctx, func(tx *sql.Tx) error {
		var typ string
		var existing []byte
		err := tx.QueryRowContext(ctx, `SELECT type, request FROM jobs WHERE id = ?`, s.ID).Scan(&typ, &existing)
		switch {
		case err == nil:
			if typ != s.Type || string(existing) != string(request) {
				return fmt.Errorf("job %q exists with another type or request: %w", s.ID, ErrConflict)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		now := unixNano(q.now())
		res, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, type, status, request, created_at, queued_at, callback_url)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, s.ID, s.Type, agentapi.Pending, request, now, now, s.CallbackURL)
		if err != nil {
			return err
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for i, st := range steps {
			if _, err := tx.ExecContext(ctx, `INSERT INTO steps (job_seq, idx, name, status) VALUES (?, ?, ?, ?)`,
				seq, i, st.Name, agentapi.Pending); err != nil {
				return err
			}
			// The step's failure counter exists, at 0, before its first
			// failure, so increase() sees that one too.
			if _, err := tx.ExecContext(ctx, `INSERT INTO step_failures (type, step, count) VALUES (?, ?, 0)
				ON CONFLICT (type, step) DO NOTHING`, s.Type, st.Name); err != nil {
				return err
			}
		}
		if err := insertTargets(ctx, tx, seq, targets); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return agentapi.Job{}, false, fmt.Errorf("submit job %q: %w", s.ID, err)
	}
	if created {
		q.signal(q.wake)
	}
	jobs, err := q.Get(ctx, s.ID)
	if err != nil {
		return agentapi.Job{}, false, err
	}
	return jobs[0], created, nil
}

// Get returns the jobs with the ids, in that order; ErrNotFound naming the
// first id missing.
func (q *Queue) Get(ctx context.Context, ids ...string) ([]agentapi.Job, error) {
	arg, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("get jobs: %w", err)
	}
	found, _, err := loadJobs(ctx, q.reads.get, string(arg))
	if err != nil {
		return nil, fmt.Errorf("get jobs: %w", err)
	}
	byID := make(map[string]int, len(found))
	for i, j := range found {
		byID[j.ID] = i
	}
	out := make([]agentapi.Job, 0, len(ids))
	for _, id := range ids {
		i, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
		}
		out = append(out, found[i])
	}
	return out, nil
}

// List returns up to limit jobs (100 when limit <= 0) with the status, or of
// any status when it is "", newest first.
func (q *Queue) List(ctx context.Context, status agentapi.Status, limit int) ([]agentapi.Job, error) {
	if limit <= 0 {
		limit = 100
	}
	var jobs []agentapi.Job
	var err error
	if status == "" {
		jobs, _, err = loadJobs(ctx, q.reads.list, limit)
	} else {
		jobs, _, err = loadJobs(ctx, q.reads.listStatus, status, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

// MaxListLimit bounds ListQuery.Limit.
const MaxListLimit = 1000

// ListQuery selects a page of jobs, newest first.
type ListQuery struct {
	Status agentapi.Status // "" for any
	Limit  int             // 100 when <= 0, at most MaxListLimit
	// Before is the cursor a previous page gave: the page starts after it.
	// 0 starts at the newest job.
	Before int64
}

// ListPage returns a page of jobs, newest first, with their steps but not
// the steps' output (Get gives it), and the cursor of the next page (0 when
// this is the last).
func (q *Queue) ListPage(ctx context.Context, lq ListQuery) ([]agentapi.Job, int64, error) {
	limit := lq.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxListLimit)
	before := lq.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	var jobs []agentapi.Job
	var seqs []int64
	var err error
	if lq.Status == "" {
		jobs, seqs, err = loadJobs(ctx, q.reads.page, before, limit+1)
	} else {
		jobs, seqs, err = loadJobs(ctx, q.reads.pageStatus, lq.Status, before, limit+1)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	var next int64
	if len(jobs) > limit {
		jobs = jobs[:limit]
		next = seqs[limit-1]
	}
	return jobs, next, nil
}

// Cancel ends a Pending job Failure "cancelled" at once; a Running one has
// its step's ctx cancelled and ends Failure "cancelled" when the step
// returns. A job that ended gives ErrConflict.
func (q *Queue) Cancel(ctx context.Context, id string) error {
	var status agentapi.Status
	err := q.write(ctx, func(tx *sql.Tx) error {
		var seq int64
		var typ string
		if err := tx.QueryRowContext(ctx, `SELECT seq, type, status FROM jobs WHERE id = ?`, id).Scan(&seq, &typ, &status); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("job %q: %w", id, ErrNotFound)
			}
			return err
		}
		switch status {
		case agentapi.Pending:
			return q.endJob(ctx, tx, ending{seq: seq, typ: typ, status: agentapi.Failure, err: errCancelled.Error(), failedStep: -1})
		case agentapi.Running:
			// Kept, so a cancel that races the claim, or a restart, still ends it.
			_, err := tx.ExecContext(ctx, `UPDATE jobs SET cancel_requested = 1 WHERE seq = ?`, seq)
			return err
		default:
			return fmt.Errorf("job %q already ended %s: %w", id, status, ErrConflict)
		}
	})
	if err != nil {
		return fmt.Errorf("cancel job %q: %w", id, err)
	}
	if status == agentapi.Pending {
		q.signal(q.wakeCallback)
	}
	if status == agentapi.Running {
		q.mu.Lock()
		rj := q.running[id]
		q.mu.Unlock()
		if rj != nil {
			rj.cancel(errCancelled)
		}
	}
	return nil
}

// write runs fn in a transaction on the writing connection, and keeps
// whether the store can be written (Healthy).
func (q *Queue) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err := q.tryWrite(ctx, fn)
	switch {
	case err == nil:
		q.storeErr.Store(nil)
	case ctx.Err() != nil, errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
		// Not the store's fault.
	default:
		q.storeErr.Store(&err)
	}
	return err
}

func (q *Queue) tryWrite(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if f := q.fault.Load(); f != nil {
		if err := (*f)(); err != nil {
			return err
		}
	}
	tx, err := q.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// exec runs one statement as a write.
func (q *Queue) exec(ctx context.Context, query string, args ...any) error {
	return q.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}

// Store writes that record a job's progress are retried, from
// persistMinBackoff doubling to persistMaxBackoff, until they commit or the
// queue closes: a full disk must not leave a job Running until a restart.
const (
	persistMinBackoff = 100 * time.Millisecond
	persistMaxBackoff = 30 * time.Second
)

// persist runs fn as a write until it commits, or stop ends (the queue
// closing); the write itself runs with ctx. It logs the first failure and
// every tenth, and when the store can be written again.
func (q *Queue) persist(stop, ctx context.Context, logger *slog.Logger, what string, fn func(tx *sql.Tx) error) error {
	backoff := persistMinBackoff
	for attempt := 1; ; attempt++ {
		err := q.write(ctx, fn)
		if err == nil {
			if attempt > 1 {
				logger.Info(what+": the store can be written again", "attempts", attempt)
			}
			return nil
		}
		if attempt%10 == 1 {
			logger.Error(what+": cannot write the job store; retrying", "attempt", attempt, "err", err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-stop.Done():
			timer.Stop()
			return fmt.Errorf("%s: %w", what, err)
		case <-timer.C:
		}
		backoff = min(2*backoff, persistMaxBackoff)
	}
}

// Healthy is nil while the store can be written, and the last write error
// once a write failed, until one succeeds again.
func (q *Queue) Healthy() error {
	if p := q.storeErr.Load(); p != nil {
		return fmt.Errorf("job store cannot be written: %w", *p)
	}
	return nil
}

func (q *Queue) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func compactJSON(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// reads are the statements that answer Get, List and ListPage, prepared
// once: parsing SQL was most of a poll's cost. Each reads a job and its steps
// in one statement (one snapshot, no transaction, no query per job).
type reads struct {
	get, list, listStatus, page, pageStatus *sql.Stmt
}

// jobsWithSteps selects the jobs the inner query gives, one row per step
// (one with NULL steps for a job without any), ordered by job then step.
func jobsWithSteps(inner, order string, withOutput bool) string {
	output := "''"
	if withOutput {
		output = "s.output"
	}
	return `SELECT j.seq, j.id, j.type, j.status, j.request, j.result, j.error, j.created_at,
		j.started_at, j.ended_at, j.attempts, j.callback_url,
		s.name, s.status, s.started_at, s.ended_at, ` + output + `, s.error, s.attempts
		FROM (SELECT * FROM jobs ` + inner + `) j LEFT JOIN steps s ON s.job_seq = j.seq
		ORDER BY j.seq ` + order + `, s.idx`
}

func prepareReads(ctx context.Context, db *sql.DB) (*reads, error) {
	r := &reads{}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		// The ids come as one JSON array, so one statement serves any count.
		{&r.get, jobsWithSteps(`WHERE id IN (SELECT value FROM json_each(?))`, "", true)},
		{&r.list, jobsWithSteps(`ORDER BY seq DESC LIMIT ?`, "DESC", true)},
		{&r.listStatus, jobsWithSteps(`WHERE status = ? ORDER BY seq DESC LIMIT ?`, "DESC", true)},
		{&r.page, jobsWithSteps(`WHERE seq < ? ORDER BY seq DESC LIMIT ?`, "DESC", false)},
		{&r.pageStatus, jobsWithSteps(`WHERE status = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, "DESC", false)},
	} {
		stmt, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("prepare reads: %w", err)
		}
		*p.stmt = stmt
	}
	return r, nil
}

func (r *reads) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{r.get, r.list, r.listStatus, r.page, r.pageStatus} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// loadJobs reads the jobs a statement of reads selects, with their steps,
// and their seqs.
func loadJobs(ctx context.Context, stmt *sql.Stmt, args ...any) ([]agentapi.Job, []int64, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var jobs []agentapi.Job
	var seqs []int64
	for rows.Next() {
		var j agentapi.Job
		var seq, created int64
		// RawBytes: a job's request and result repeat on each of its steps'
		// rows and are copied once, below.
		var request, result sql.RawBytes
		var started, ended sql.NullInt64
		var stepName, stepStatus, stepOutput, stepError sql.NullString
		var stepStarted, stepEnded, stepAttempts sql.NullInt64
		if err := rows.Scan(&seq, &j.ID, &j.Type, &j.Status, &request, &result, &j.Error, &created,
			&started, &ended, &j.Attempts, &j.CallbackURL,
			&stepName, &stepStatus, &stepStarted, &stepEnded, &stepOutput, &stepError, &stepAttempts); err != nil {
			return nil, nil, err
		}
		if len(seqs) == 0 || seqs[len(seqs)-1] != seq {
			if string(request) != "null" {
				j.Request = bytes.Clone(request)
			}
			if len(result) > 0 {
				j.Result = bytes.Clone(result)
			}
			j.CreatedAt = time.Unix(0, created).UTC()
			j.StartedAt = timePtr(started)
			j.EndedAt = timePtr(ended)
			j.Steps = []agentapi.Step{}
			jobs = append(jobs, j)
			seqs = append(seqs, seq)
		}
		if !stepName.Valid {
			continue // a job without steps
		}
		last := &jobs[len(jobs)-1]
		last.Steps = append(last.Steps, agentapi.Step{
			Name:      stepName.String,
			Status:    agentapi.Status(stepStatus.String),
			StartedAt: timePtr(stepStarted),
			EndedAt:   timePtr(stepEnded),
			Output:    stepOutput.String,
			Error:     stepError.String,
			Attempts:  int(stepAttempts.Int64),
		})
	}
	return jobs, seqs, rows.Err()
}
