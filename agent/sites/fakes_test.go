package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/agent/names"
	"github.com/hybridsuite/hybrid/agent/nginx"
)

// Fakes of what the job types call, for unit tests of their steps and undo
// without Docker, MariaDB or nginx. The real ones are tested in agent/
// (lifecycle_test.go and the others); these add, never replace, them.

// events is the order of the calls every fake saw, one line each.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, fmt.Sprintf(format, args...))
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

func (e *events) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = nil
}

// fakeRuntime is a container runtime whose benches are folders under root
// and whose bench commands do what a bench would to its folders.
type fakeRuntime struct {
	root string
	ev   *events
	port int // the port Prepare gives a bench

	mu      sync.Mutex
	benches map[string]benches.Config
	// fail makes the calls named (a method, or "exec <first argument>"
	// after --site <site>) fail with the error given; one-shot unless sticky.
	fail   map[string]error
	sticky bool
	// execs are the arguments and environments of every bench command.
	execs []fakeExec
	// backupID counts the backups made, for distinct ids.
	backupID int
	// onExec, when set, runs before the bench command's own effect.
	onExec func(args []string, out io.Writer) error
}

type fakeExec struct {
	Bench string
	Args  []string
	Env   []string
}

var _ containers = (*fakeRuntime)(nil)

func newFakeRuntime(root string, ev *events) *fakeRuntime {
	return &fakeRuntime{root: root, ev: ev, benches: map[string]benches.Config{}, fail: map[string]error{}}
}

func (f *fakeRuntime) failing(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.fail[call]
	if err != nil && !f.sticky {
		delete(f.fail, call)
	}
	return err
}

func (f *fakeRuntime) Dir(bench string) string      { return filepath.Join(f.root, "benches", bench) }
func (f *fakeRuntime) SitesDir(bench string) string { return filepath.Join(f.Dir(bench), "sites") }

func (f *fakeRuntime) List() ([]benches.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []benches.Config
	for _, c := range f.benches {
		if f.present(c.Name) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b benches.Config) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Exists says whether the bench has its folder, as the real one reads its
// configuration there: an undo that removed the folder removed the bench.
func (f *fakeRuntime) Exists(bench string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.benches[bench]
	return ok && f.present(bench)
}

func (f *fakeRuntime) present(bench string) bool {
	_, err := os.Stat(f.Dir(bench))
	return err == nil
}

func (f *fakeRuntime) addBench(t *testing.T, bench string) {
	require.NoError(t, os.MkdirAll(f.SitesDir(bench), 0o755))
	f.mu.Lock()
	f.benches[bench] = benches.Config{Name: bench, Image: "img", Port: f.port}
	f.mu.Unlock()
}

func (f *fakeRuntime) Prepare(bench, image string, limits agentapi.Limits) (benches.Config, error) {
	f.ev.add("prepare %s", bench)
	if err := f.failing("prepare"); err != nil {
		return benches.Config{}, err
	}
	if err := os.MkdirAll(f.SitesDir(bench), 0o755); err != nil {
		return benches.Config{}, err
	}
	c := benches.Config{Name: bench, Image: image, Limits: limits, Port: f.port}
	f.mu.Lock()
	f.benches[bench] = c
	f.mu.Unlock()
	return c, nil
}

func (f *fakeRuntime) ReadConfig(bench string) (benches.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.benches[bench]
	if !ok || !f.present(bench) {
		return c, fmt.Errorf("bench %s: %w", bench, os.ErrNotExist)
	}
	return c, nil
}

func (f *fakeRuntime) Start(ctx context.Context, c benches.Config) error {
	f.ev.add("start %s", c.Name)
	return f.failing("start")
}

// Remove removes the container, not the folder (as the real one).
func (f *fakeRuntime) Remove(ctx context.Context, bench string) error {
	f.ev.add("remove %s", bench)
	if err := f.failing("remove"); err != nil {
		return err
	}
	return nil
}

func (f *fakeRuntime) Restart(ctx context.Context, bench string) error {
	f.ev.add("restart %s", bench)
	return f.failing("restart")
}

func (f *fakeRuntime) SetLimits(ctx context.Context, bench string, limits agentapi.Limits) error {
	f.ev.add("limits %s", bench)
	return f.failing("limits")
}

func (f *fakeRuntime) Archive(bench string, now time.Time) (string, error) {
	f.ev.add("archive %s", bench)
	return "", f.failing("archive")
}

func (f *fakeRuntime) Exec(ctx context.Context, bench string, out io.Writer, args ...string) error {
	return f.ExecWith(ctx, bench, out, benches.ExecOptions{}, args...)
}

// ExecWith records the command and does what the bench would: new-site
// makes the site's folder, drop-site removes it, backup writes backup files
// and prints their summary.
func (f *fakeRuntime) ExecWith(ctx context.Context, bench string, out io.Writer, opts benches.ExecOptions, args ...string) error {
	f.mu.Lock()
	f.execs = append(f.execs, fakeExec{Bench: bench, Args: slices.Clone(args), Env: slices.Clone(opts.Env)})
	onExec := f.onExec
	f.mu.Unlock()
	f.ev.add("exec %s", strings.Join(args, " "))
	if onExec != nil {
		if err := onExec(args, out); err != nil {
			return err
		}
	}
	site, cmd := "", args
	if len(args) >= 2 && args[0] == "--site" {
		site, cmd = args[1], args[2:]
	}
	if err := f.failing("exec " + cmd[0]); err != nil {
		return err
	}
	switch cmd[0] {
	case "new-site":
		dir := filepath.Join(f.SitesDir(bench), cmd[1])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "site_config.json"), []byte(`{}`), 0o644)
	case "drop-site":
		return os.RemoveAll(filepath.Join(f.SitesDir(bench), cmd[1]))
	case "backup":
		f.mu.Lock()
		f.backupID++
		id := fmt.Sprintf("20250102_0304%02d", f.backupID)
		f.mu.Unlock()
		dir := filepath.Join(f.SitesDir(bench), site, "private", "backups")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		name := id + "-" + strings.ReplaceAll(site, ".", "_") + "-database.sql"
		if err := os.WriteFile(filepath.Join(dir, name), []byte("CREATE TABLE t (x int);\n"), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "Backup Summary for %s\nDatabase: ./%s/private/backups/%s 24B\n", site, site, name)
	}
	return nil
}

// execsOf are the recorded commands whose arguments hold word.
func (f *fakeRuntime) execsOf(word string) []fakeExec {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeExec
	for _, e := range f.execs {
		if slices.Contains(e.Args, word) {
			out = append(out, e)
		}
	}
	return out
}

// fakeDatabases keeps databases in a map, and what it was given.
type fakeDatabases struct {
	ev *events

	mu     sync.Mutex
	dbs    map[string]string // database -> password hash
	hashes []string
	fail   map[string]error // "create", "drop", "exists": one-shot
}

var _ databaseAdmin = (*fakeDatabases)(nil)

func newFakeDatabases(ev *events) *fakeDatabases {
	return &fakeDatabases{ev: ev, dbs: map[string]string{}, fail: map[string]error{}}
}

func (f *fakeDatabases) failing(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.fail[call]
	delete(f.fail, call)
	return err
}

func (f *fakeDatabases) CreateDatabase(ctx context.Context, db, hash string) error {
	f.ev.add("create database %s", db)
	if err := f.failing("create"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dbs[db] = hash
	f.hashes = append(f.hashes, hash)
	return nil
}

func (f *fakeDatabases) DropDatabase(ctx context.Context, db string) error {
	f.ev.add("drop database %s", db)
	if err := f.failing("drop"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.dbs, db)
	return nil
}

func (f *fakeDatabases) DatabaseExists(ctx context.Context, db string) (bool, error) {
	if err := f.failing("exists"); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.dbs[db]
	return ok, nil
}

func (f *fakeDatabases) Datadir(ctx context.Context) (string, string, error) {
	return "", "", errors.New("datadir is not known to the fake")
}

func (f *fakeDatabases) has(db string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.dbs[db]
	return ok
}

// fakeRouter records the sites of every Apply.
type fakeRouter struct {
	ev *events

	mu   sync.Mutex
	fail []error // the next Applies' errors, in order
	last []nginx.Site
	// onApply, when set, runs at each Apply (before it fails or not).
	onApply func()
}

func (f *fakeRouter) Apply(ctx context.Context, bs []nginx.Bench, ss []nginx.Site) error {
	var names []string
	for _, s := range ss {
		names = append(names, s.Name)
	}
	f.ev.add("route %s", strings.Join(names, ","))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onApply != nil {
		f.onApply()
	}
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		if err != nil {
			return err
		}
	}
	f.last = slices.Clone(ss)
	return nil
}

// fixture is an Operations on fakes, with its job queue.
type fixture struct {
	t      *testing.T
	ops    *Operations
	rt     *fakeRuntime
	db     *fakeDatabases
	router *fakeRouter
	ev     *events
	q      *jobs.Queue
	n      int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	ev := &events{}
	f := &fixture{t: t, ev: ev, rt: newFakeRuntime(root, ev), db: newFakeDatabases(ev), router: &fakeRouter{ev: ev}}
	f.ops = &Operations{Root: root, Runtime: f.rt, Admin: f.db, Router: f.router, DBHost: "db.internal", DBPort: 3306}
	return f
}

// start opens the job queue on the job types, once the fixture is set up.
func (f *fixture) start() {
	f.t.Helper()
	q, err := jobs.Open(context.Background(), jobs.Options{Path: filepath.Join(f.t.TempDir(), "jobs.db"),
		Types: f.ops.Types(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(f.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	q.Start(ctx)
	f.t.Cleanup(func() { cancel(); q.Close() })
	f.q = q
}

// run runs a job of type typ on request and returns it ended.
func (f *fixture) run(typ string, request any) agentapi.Job {
	f.t.Helper()
	if f.q == nil {
		f.start()
	}
	raw, err := json.Marshal(request)
	require.NoError(f.t, err)
	f.n++
	id := "job-" + strconv.Itoa(f.n)
	ctx := context.Background()
	_, _, err = f.q.Submit(ctx, jobs.Submission{ID: id, Type: typ, Request: raw})
	require.NoError(f.t, err)
	var job agentapi.Job
	require.Eventually(f.t, func() bool {
		list, err := f.q.Get(ctx, id)
		require.NoError(f.t, err)
		job = list[0]
		return job.Status.Ended()
	}, 20*time.Second, 5*time.Millisecond)
	return job
}

// result decodes the undo's record in a job's result.
func undoneOf(t *testing.T, job agentapi.Job) undoResult {
	t.Helper()
	var r undoResult
	require.NoError(t, json.Unmarshal(job.Result, &r), "result %s", job.Result)
	return r
}

// servingPort is the port of an HTTP server answering every request, for
// bench.new's "wait until serving".
func servingPort(t *testing.T) int {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	n, _ := strconv.Atoi(port)
	return n
}

// makeSite puts a site on a bench as site.new leaves it: recorded, with its
// folder, database and password file.
func (f *fixture) makeSite(bench, site string) string {
	f.t.Helper()
	f.rt.addBench(f.t, bench)
	require.NoError(f.t, os.MkdirAll(f.ops.siteDir(bench, site), 0o755))
	require.NoError(f.t, os.WriteFile(f.ops.siteConfig(bench, site), []byte(`{}`), 0o644))
	require.NoError(f.t, f.ops.recordSite(site, bench))
	pw, err := f.ops.sitePassword(site)
	require.NoError(f.t, err)
	require.NoError(f.t, f.db.CreateDatabase(context.Background(), names.DatabaseName(site), nativePasswordHash(pw)))
	f.ev.reset()
	return pw
}

// closedPort is a port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}
