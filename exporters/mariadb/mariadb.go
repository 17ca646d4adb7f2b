package mariadb

import (
	"github.com/hybridsuite/hybrid/internal/mycnf"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hybridsuite/hybrid/exporters"
)

// Options configures a Collector. Zero durations take the defaults.
type Options struct {
	CredentialsFile   string        // my.cnf style file, 0600
	QueryTimeout      time.Duration // per query, default 2s
	LockWaitTimeout   time.Duration // default 2s
	DatabasesInterval time.Duration // default 5m
	// VariablesInterval is how often SHOW GLOBAL VARIABLES is read again,
	// default 1m; scrapes in between send the values last read (see
	// globalVariables). Zero takes the default.
	VariablesInterval time.Duration
}

const (
	defaultQueryTimeout      = 2 * time.Second
	defaultLockWaitTimeout   = 2 * time.Second
	defaultDatabasesInterval = 5 * time.Minute
	defaultVariablesInterval = time.Minute

	// A scrape and the database refresh each hold one connection at a time;
	// the third is slack for a scrape that overlaps a refresh's point queries.
	maxOpenConns = 3
	// Connections are recycled so a restarted or failed-over server is
	// picked up even by a pool that never saw an error.
	connMaxLifetime = 10 * time.Minute
	connMaxIdleTime = 2 * time.Minute
)

// Collector exports a MariaDB server's metrics under mysqld_exporter's names
// (mysql_*) plus per-database sizes (hybrid_mariadb_*).
type Collector struct {
	logger *slog.Logger
	opts   Options
	addr   string // where the server is, for messages (never the DSN)
	user   string
	db     *sql.DB

	// In this order: the variables use the status' Uptime, and the replica
	// status, denied to a user with mysqld_exporter's documented grant, is
	// last so its failure costs no second round trip.
	scrapers  []scraper
	variables *globalVariables
	databases *databaseSizes
	upDesc    *prometheus.Desc
	connErrs  *connectErrors
	// How many metrics the last scrape sent, to size the next one's slice.
	// Scrapes are single-flight: one at a time.
	lastMetrics int

	// Scrapes are single-flight: see Update.
	flightMu sync.Mutex
	flight   *flight

	// Up/down transitions, so each is logged once.
	stateMu   sync.Mutex
	state     serverState
	downSince time.Time

	startOnce sync.Once
	closeOnce sync.Once
	stop      context.CancelFunc // set by Start
	stopped   chan struct{}      // closed when the refresh loop has returned

	// Instrumentation for tests: query sets run, and the most that ever ran at once.
	querySets    atomic.Int64
	running      atomic.Int64
	maxRunning   atomic.Int64
	beforeScrape func() // test hook, nil in production
}

var _ exporters.Collector = (*Collector)(nil)

// scraper reads one group of metrics from the result of one statement. Each
// lives in its own file and builds its fixed descriptors in its constructor.
// A scrape sends all the scrapers' statements at once (see runBatch), and
// uses a scraper from one goroutine at a time: Update is single-flight.
type scraper interface {
	// statement is the SQL to run in this scrape, or "" for none: the
	// scraper then sends what it kept, read with nil rows.
	statement() string
	// read reads the statement's result set, the one rows stands on.
	read(rows *sql.Rows, emit func(prometheus.Metric)) error
	// failed returns the error to report for the statement or read failing
	// with err, nil to report none.
	failed(err error) error
}

type serverState int

const (
	stateUnknown serverState = iota
	stateUp
	stateDown
)

// New reads and checks the credentials file and prepares a connection pool.
// It does not need the server to be up: the first Update reports mysql_up 0
// until it is, and the pool reconnects by itself afterwards.
func New(logger *slog.Logger, opts Options) (*Collector, error) {
	if opts.CredentialsFile == "" {
		return nil, errors.New("mariadb: Options.CredentialsFile is empty")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = defaultQueryTimeout
	}
	if opts.LockWaitTimeout <= 0 {
		opts.LockWaitTimeout = defaultLockWaitTimeout
	}
	if opts.DatabasesInterval <= 0 {
		opts.DatabasesInterval = defaultDatabasesInterval
	}
	if opts.VariablesInterval <= 0 {
		opts.VariablesInterval = defaultVariablesInterval
	}
	creds, err := mycnf.Read(opts.CredentialsFile)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(driverConfig(creds, opts, logger))
	if err != nil {
		// The config holds the password: name the address, not the error's input.
		return nil, fmt.Errorf("mariadb: configure connection to %s: %w", creds.Address(), err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(connMaxLifetime)
	db.SetConnMaxIdleTime(connMaxIdleTime)

	status := newGlobalStatus()
	variables := newGlobalVariables(opts.VariablesInterval, time.Now, func() float64 { return status.uptime })
	c := &Collector{
		logger:    logger,
		opts:      opts,
		addr:      creds.Address(),
		user:      creds.User,
		db:        db,
		scrapers:  []scraper{status, variables, newProcesslist(), newReplicaStatus(logger)},
		variables: variables,
		databases: newDatabaseSizes(logger, db, opts.QueryTimeout, databasesTimeout(opts.DatabasesInterval)),
		upDesc:    prometheus.NewDesc("mysql_up", "Whether the MariaDB server answered the exporter's queries (1) or not (0).", nil, nil),
		connErrs:  newConnectErrors(),
		stopped:   make(chan struct{}),
	}
	return c, nil
}

// driverConfig builds the driver's config directly rather than through a DSN
// string, so no string holding the password ever exists to leak into an
// error. Every new connection runs SET lock_wait_timeout (a scrape never
// queues behind DDL's metadata lock) and SET max_statement_time (the server
// itself abandons a query the exporter gave up on; MariaDB-only).
//
// Multi-statement queries let a scrape send its statements in one round trip
// (runBatch). Every statement the exporter sends is a constant, the only
// parameters (the database refresh's table lookups) go to the server apart,
// in prepared statements: there is nothing to inject into.
func driverConfig(creds mycnf.Credentials, opts Options, logger *slog.Logger) *mysql.Config {
	cfg := creds.DriverConfig()
	cfg.MultiStatements = true
	cfg.Timeout = opts.QueryTimeout // dial
	cfg.Logger = driverLogger{logger}
	cfg.Params = map[string]string{
		"lock_wait_timeout":  strconv.Itoa(max(1, int(math.Ceil(opts.LockWaitTimeout.Seconds())))),
		"max_statement_time": strconv.FormatFloat(opts.QueryTimeout.Seconds(), 'f', 3, 64),
	}
	return cfg
}

// databasesTimeout bounds one refresh of the database sizes.
func databasesTimeout(interval time.Duration) time.Duration {
	return min(interval, time.Minute)
}

// driverLogger routes the driver's own messages ("closing bad idle
// connection", ...) to slog. They never hold the password; what matters
// reaches the caller as an error anyway, hence Debug.
type driverLogger struct{ logger *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.logger.Debug("mariadb driver: " + strings.TrimSpace(fmt.Sprint(v...)))
}

// Start launches the background refresh of the per-database sizes: the first
// refresh runs at once, then one every DatabasesInterval. It returns at once;
// the loop ends with ctx or Close.
func (c *Collector) Start(ctx context.Context) {
	c.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(ctx)
		c.stop = cancel
		go func() {
			defer close(c.stopped)
			c.databases.run(ctx, c.opts.DatabasesInterval)
		}()
	})
}

// Close stops the refresh loop and closes the connection pool.
func (c *Collector) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.startOnce.Do(func() {}) // a Start after Close does nothing
		if c.stop != nil {
			c.stop()
			<-c.stopped
		}
		if cerr := c.db.Close(); cerr != nil {
			err = fmt.Errorf("mariadb: close connections to %s: %w", c.addr, cerr)
		}
	})
	return err
}

// flight is one run of the query set, whose result every Update that asked
// for it while it ran receives.
type flight struct {
	done    chan struct{}
	metrics []prometheus.Metric
	err     error
}

// Update sends the server's metrics. Scrapes are single-flight: an Update
// that arrives while another runs waits for that run and sends its result,
// so ten concurrent scrapes cost the server one query set, not ten, and a
// slow server never piles up queries. The run uses the first caller's
// deadline; a waiter gives up at its own.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	c.flightMu.Lock()
	f := c.flight
	leader := f == nil
	if leader {
		f = &flight{done: make(chan struct{})}
		c.flight = f
	}
	c.flightMu.Unlock()

	if leader {
		c.lead(ctx, f)
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
			return fmt.Errorf("mariadb: wait for the running scrape: %w", ctx.Err())
		}
	}
	for _, m := range f.metrics {
		select { // most sends find the reader waiting: skip the two-way select
		case ch <- m:
			continue
		default:
		}
		select {
		case ch <- m:
		case <-ctx.Done():
			return fmt.Errorf("mariadb: send metrics: %w", ctx.Err())
		}
	}
	return f.err
}

// lead runs the query set for f and releases its waiters, even if it panics.
func (c *Collector) lead(ctx context.Context, f *flight) {
	defer func() {
		c.flightMu.Lock()
		c.flight = nil
		c.flightMu.Unlock()
		close(f.done)
	}()
	f.metrics, f.err = c.scrape(ctx)
}

// scrape runs the query set once. A scrape that cannot connect, or whose
// statements the server does not answer at all, yields mysql_up 0 and an
// error; otherwise the scrapers' failures are joined, so one failing
// statement does not hide the others' metrics.
func (c *Collector) scrape(ctx context.Context) ([]prometheus.Metric, error) {
	c.querySets.Add(1)
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for {
		m := c.maxRunning.Load()
		if n <= m || c.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	if c.beforeScrape != nil {
		c.beforeScrape()
	}

	metrics := make([]prometheus.Metric, 0, c.lastMetrics)
	emit := func(m prometheus.Metric) { metrics = append(metrics, m) }
	answered, err := c.query(ctx, emit)
	if !answered {
		reason := c.connErrs.add(err)
		err = fmt.Errorf("mariadb: connect to %s as %s (%s): %w", c.addr, c.user, reason, err)
		c.markDown(err, reason)
		c.variables.invalidate() // the server may come back restarted, with other settings
		down := []prometheus.Metric{prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, 0)}
		c.connErrs.collect(func(m prometheus.Metric) { down = append(down, m) })
		return down, err
	}
	c.markUp()
	emit(prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, 1))
	c.connErrs.collect(emit)
	c.databases.collect(emit)
	c.lastMetrics = len(metrics)
	if err != nil {
		return metrics, fmt.Errorf("mariadb: %w", err)
	}
	return metrics, nil
}

// query takes a connection and runs the scrapers' statements on it, batched.
// answered is false when the connection failed or the server did not answer
// the first statement (err says why); otherwise err joins the scrapers'.
func (c *Collector) query(ctx context.Context, emit func(prometheus.Metric)) (answered bool, err error) {
	connCtx, cancel := context.WithTimeout(ctx, c.opts.QueryTimeout)
	// A pooled connection is checked for a close by the server (a restart)
	// first, and replaced if need be: no round trip of its own.
	conn, err := c.db.Conn(connCtx)
	cancel()
	if err != nil {
		return false, err
	}
	defer conn.Close()

	var errs []error
	pending := c.scrapers
	for len(pending) > 0 {
		// Scrapers without a statement are asked again once the batch before
		// was read: the variables re-read when the status shows a restart.
		var (
			batch, rest []scraper
			statements  []string
		)
		for _, s := range pending {
			if q := s.statement(); q != "" {
				batch, statements = append(batch, s), append(statements, q)
			} else {
				rest = append(rest, s)
			}
		}
		if len(batch) == 0 {
			for _, s := range rest {
				if err := s.read(nil, emit); err != nil {
					errs = append(errs, err)
				}
			}
			break
		}
		done, err := c.runBatch(ctx, conn, batch, statements, emit)
		if err != nil {
			var serverErr *mysql.MySQLError
			if !answered && done == 0 && !errors.As(err, &serverErr) {
				return false, err
			}
			if err := batch[done].failed(err); err != nil {
				errs = append(errs, err)
			}
			done++
		}
		answered = true
		// The rest, in their order, for the next batch.
		finished, next := batch[:done], make([]scraper, 0, len(pending)-done)
		for _, s := range pending {
			if len(finished) > 0 && s == finished[0] {
				finished = finished[1:]
				continue
			}
			next = append(next, s)
		}
		pending = next
	}
	return true, errors.Join(errs...)
}

// runBatch sends the statements of batch's scrapers to the server as one
// multi-statement query, a single round trip however many there are, and has
// each scraper read its result set in turn. The server stops at a statement
// that fails: runBatch returns how many scrapers read their result, and the
// error of the next one's statement or read, for the caller to send the rest
// again.
func (c *Collector) runBatch(ctx context.Context, conn *sql.Conn, batch []scraper, statements []string,
	emit func(prometheus.Metric),
) (int, error) {
	// Each statement has QueryTimeout on the server (max_statement_time).
	ctx, cancel := context.WithTimeout(ctx, time.Duration(len(batch))*c.opts.QueryTimeout)
	defer cancel()
	rows, err := conn.QueryContext(ctx, strings.Join(statements, ";\n"))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for i, s := range batch {
		if i > 0 && !rows.NextResultSet() {
			if err := rows.Err(); err != nil {
				return i, err
			}
			return i, errors.New("no result from the server")
		}
		if err := s.read(rows, emit); err != nil {
			return i, err
		}
	}
	return len(batch), nil
}

// markDown logs once when the server stops answering.
func (c *Collector) markDown(err error, reason string) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.state == stateDown {
		return
	}
	c.state = stateDown
	c.downSince = time.Now()
	c.logger.Warn("mariadb is down; reporting mysql_up 0 until it answers again", "addr", c.addr, "reason", reason, "err", err)
}

// markUp logs the first contact and the recovery after a failure.
func (c *Collector) markUp() {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	switch c.state {
	case stateUnknown:
		c.logger.Info("mariadb is up", "addr", c.addr, "user", c.user)
	case stateDown:
		c.logger.Info("mariadb is up again", "addr", c.addr, "down_for", time.Since(c.downSince).Round(time.Second))
	}
	c.state = stateUp
}

// descCache holds the descriptors of metrics named after what the server
// returns (one per status or variable name); the fixed ones are built in the
// scrapers' constructors. The server's variable names bound its size.
type descCache struct {
	prefix string
	help   string
	labels []string

	mu    sync.Mutex
	descs map[string]*prometheus.Desc
}

func newDescCache(prefix, help string, labels ...string) *descCache {
	return &descCache{prefix: prefix, help: help, labels: labels, descs: map[string]*prometheus.Desc{}}
}

func (d *descCache) get(name string) *prometheus.Desc {
	d.mu.Lock()
	defer d.mu.Unlock()
	desc, ok := d.descs[name]
	if !ok {
		desc = prometheus.NewDesc(d.prefix+name, d.help, d.labels, nil)
		d.descs[name] = desc
	}
	return desc
}

// metricName turns a status, variable or column name into a metric name
// suffix the way mysqld_exporter does: every character outside [a-zA-Z0-9_]
// becomes '_', and everything is lower case.
func metricName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		default:
			return '_'
		}
	}, s)
}

// parseValue reads a SHOW STATUS / SHOW VARIABLES / SHOW SLAVE STATUS value
// as mysqld_exporter does: ON/YES/... are 1, OFF/NO/DISABLED/... are 0,
// dates become Unix timestamps, numbers are numbers; anything else (paths,
// names, empty values) is not a metric.
//
// Numbers, by far the most values, are tried first and without allocating:
// no string is both a number and one of the words or dates, so the order
// does not change a result.
func parseValue(raw []byte) (float64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	if c := raw[0]; c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' {
		if v, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return v, true
		}
	} else if v, ok := wordValue(raw); ok {
		return v, true
	}
	s := string(raw)
	if ts, err := time.Parse("Jan 02 15:04:05 2006 MST", s); err == nil {
		return float64(ts.Unix()), true
	}
	if ts, err := time.Parse(time.DateTime, s); err == nil {
		return float64(ts.Unix()), true
	}
	v, err := strconv.ParseFloat(s, 64) // "inf", "nan", hexadecimal
	return v, err == nil
}

// wordValue reads the words that stand for 1 or 0, in any case.
func wordValue(raw []byte) (float64, bool) {
	switch {
	case equalFoldASCII(raw, "yes"), equalFoldASCII(raw, "on"):
		return 1, true
	case equalFoldASCII(raw, "no"), equalFoldASCII(raw, "off"), equalFoldASCII(raw, "disabled"):
		return 0, true
	case equalFoldASCII(raw, "connecting"): // Slave_IO_Running while it has not connected: not running
		return 0, true
	case equalFoldASCII(raw, "primary"):
		return 1, true
	case equalFoldASCII(raw, "non-primary"), equalFoldASCII(raw, "disconnected"):
		return 0, true
	}
	return 0, false
}

// equalFoldASCII reports whether b is the lower-case ASCII word in any case.
// (No non-ASCII letter lower-cases to one of the words' letters, so this is
// strings.ToLower(string(b)) == word without the allocation.)
func equalFoldASCII(b []byte, word string) bool {
	if len(b) != len(word) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[i] {
			return false
		}
	}
	return true
}

// series is one time series named after what the server returns (a status
// variable, ...): its descriptor and label pairs are built the first time
// the name is seen and shared by every scrape after.
type series struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	labels []*dto.LabelPair // sorted, as prometheus.MakeLabelPairs makes them; never modified
}

func newSeries(desc *prometheus.Desc, kind prometheus.ValueType, labelValues ...string) *series {
	return &series{desc: desc, kind: kind, labels: prometheus.MakeLabelPairs(desc, labelValues)}
}

// sample is a series' value in one scrape. It is what prometheus.NewConstMetric
// makes, without building the label pairs again for every value: a scrape
// allocates its samples in one slice, not four to eight objects per value.
// A sample is never modified once emitted.
type sample struct {
	series *series
	value  float64
}

var _ prometheus.Metric = (*sample)(nil)

func (s *sample) Desc() *prometheus.Desc { return s.series.desc }

func (s *sample) Write(out *dto.Metric) error {
	out.Label = s.series.labels
	switch s.series.kind {
	case prometheus.CounterValue:
		out.Counter = &dto.Counter{Value: &s.value}
	case prometheus.GaugeValue:
		out.Gauge = &dto.Gauge{Value: &s.value}
	default:
		out.Untyped = &dto.Untyped{Value: &s.value}
	}
	return nil
}
