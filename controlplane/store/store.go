package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors a caller decides on; every error the store returns for these cases
// wraps one of them (test with errors.Is).
var (
	// ErrNotFound: no server, step, bench, site, job or token by that key.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique key is taken (a server name, a bench or site
	// name on its server, a token name), a job id is reused for another
	// job, or a pinned host key differs.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input itself is wrong (an empty name, an unknown
	// status); nothing was written.
	ErrInvalid = errors.New("invalid")
)

//go:embed migrations/*.sql
var migrations embed.FS

type dialect int

const (
	sqliteDialect dialect = iota
	postgresDialect
)

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Options tune Open; the zero value is fine.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for created, updated and due times (tests move it).
	Now func() time.Time
}

// Store is the control plane's state. It is safe for concurrent use.
type Store struct {
	dialect dialect
	wdb     *sql.DB // the writer pool (one connection on SQLite)
	w, r    querier // writes, reads: the tx inside Tx
	inTx    bool
	closers []*sql.DB
	now     func() time.Time
	log     *slog.Logger
}

// Open opens the state database the DSN names and brings its schema up to
// date. "postgres://..." or "postgresql://..." is Postgres; "sqlite://PATH"
// ("sqlite:///abs/path.db") or a bare file path is SQLite, created when
// missing.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	s := &Store{now: opts.Now, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		err = s.openPostgres(dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		err = s.openSQLite(strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//"))
	case strings.Contains(dsn, "://"):
		err = fmt.Errorf("open state: dsn scheme of %q: want postgres:// or sqlite://: %w", redactDSN(dsn), ErrInvalid)
	default:
		err = s.openSQLite(dsn)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens a writer pool of one connection (SQLite has one writer;
// a second would only wait on the lock) and a reader pool beside it, which
// WAL lets read while the writer writes.
func (s *Store) openSQLite(path string) error {
	if path == "" {
		return fmt.Errorf("open state: empty sqlite path: %w", ErrInvalid)
	}
	s.dialect = sqliteDialect
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	// The writer's transactions take the write lock at BEGIN: one that read
	// first and then wrote would fail SQLITE_BUSY, not wait, when another
	// process wrote in between.
	wq := url.Values{"_txlock": {"immediate"}}
	for _, p := range q["_pragma"] {
		wq.Add("_pragma", p)
	}
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return fmt.Errorf("open state %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	// The first connection creates the file and switches it to WAL before
	// the readers open it.
	if err := w.Ping(); err != nil {
		w.Close()
		return fmt.Errorf("open state %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return fmt.Errorf("open state %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s.wdb, s.w, s.r = w, w, r
	s.closers = []*sql.DB{w, r}
	return nil
}

func (s *Store) openPostgres(dsn string) error {
	s.dialect = postgresDialect
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return fmt.Errorf("open state %s: %w", redactDSN(dsn), err)
	}
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.wdb, s.w, s.r = db, db, db
	s.closers = []*sql.DB{db}
	return nil
}

// migrate applies the embedded migrations not yet applied. On Postgres a
// session advisory lock makes control planes that start together take
// turns.
func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate state: %w", err)
	}
	d := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == postgresDialect {
		d = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migrate state: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(d, s.wdb, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate state: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate state: %w", err)
	}
	for _, r := range results {
		s.log.Info("state migration applied", "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}

// SchemaVersion is the newest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, "SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied").Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Close closes the database. A Store given to a Tx function must not be
// closed.
func (s *Store) Close() error {
	var errs []error
	for _, db := range s.closers {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}

// Tx runs fn with a Store whose every call is part of one transaction,
// committed when fn returns nil and rolled back otherwise. Within fn, use
// only tx. A Tx inside a Tx joins the outer one.
func (s *Store) Tx(ctx context.Context, fn func(tx *Store) error) error {
	if s.inTx {
		return fn(s)
	}
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed { // fn failed or panicked
			_ = sqlTx.Rollback()
		}
	}()
	tx := *s
	tx.w, tx.r, tx.inTx, tx.closers = sqlTx, sqlTx, true, nil
	if err := fn(&tx); err != nil {
		return err
	}
	committed = true
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}

// q rewrites the ? placeholders of a query for the dialect ($1, $2... on
// Postgres). The store's queries have no ? inside literals.
func (s *Store) q(query string) string {
	if s.dialect != postgresDialect {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
	return res, mapErr(err)
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	return rows, mapErr(err)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.r.QueryRowContext(ctx, s.q(query), args...)
}

// nowMS is the clock in unix milliseconds, the unit of every time column.
func (s *Store) nowMS() int64 { return s.now().UnixMilli() }

// mapErr turns unique-key violations into ErrConflict, by the engines'
// error codes, and keeps the driver's error for the rest.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %s", ErrConflict, pgErr.ConstraintName)
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", ErrConflict, sqliteErr.Error())
		}
	}
	return err
}

// affected says ErrNotFound when an update touched no row.
func affected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newID is a random id with a readable prefix ("srv_...").
func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

func msOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func fromNullMS(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMS(ms.Int64)
}

// redactDSN drops a password from a DSN for an error message.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable dsn)"
	}
	return u.Redacted()
}

// placeholders is "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// clip shortens input for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
