// Package pgtest runs a throwaway PostgreSQL server for tests: a cluster made
// by initdb in a temporary directory, and postgres listening on a free port of
// 127.0.0.1 and on a socket in that directory. Durability is off (fsync,
// full_page_writes, synchronous_commit), so it starts in about a second and
// writes little.
//
// The superuser "postgres" logs in without a password (trust authentication,
// loopback and socket only). Each test gets a database of its own
// (Server.Database). Postgres refuses to run as root: under root, initdb and
// postgres run as the "postgres" user (or "nobody"), owner of the directory.
// The server dies with the test binary even if that one is killed
// (parent-death signal), and is stopped by Close otherwise.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/hybridsuite/hybrid/test/childproc"
)

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
	superuser    = "postgres"
)

// binGlob is where Debian's postgresql packages put initdb and postgres
// (they are not on PATH there).
const binGlob = "/usr/lib/postgresql/*/bin"

// Server is a running (or stopped) throwaway PostgreSQL server.
type Server struct {
	dir      string // holds data/, the socket and the log
	postgres string // path of the postgres binary
	port     int
	cred     *syscall.Credential // nil when not root

	mu    sync.Mutex
	proc  *childproc.Process // nil while stopped
	admin *sql.DB
}

// Shared is one server for a whole test package, started on first use:
//
//	var shared pgtest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		shared.Close()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) { dsn := shared.Server(t).Database(t); ... }
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Server returns the package's server, starting it the first time. If it
// cannot start, every test that asks for it is skipped (binaries missing,
// outside CI) or fails.
func (sh *Shared) Server(t testing.TB) *Server {
	t.Helper()
	sh.once.Do(func() { sh.srv, sh.err = New() })
	if sh.err != nil {
		childproc.SkipOrFatal(t, sh.err)
	}
	return sh.srv
}

// Close stops the server if it was started.
func (sh *Shared) Close() {
	if sh.srv != nil {
		if err := sh.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
}

// Start runs a server for the test and stops it (and removes its files) when
// the test ends. Missing binaries skip the test, or fail it when CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		childproc.SkipOrFatal(t, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// New makes a cluster and starts a server; Close undoes both. Tests use
// Start or Shared, which handle cleanup and missing binaries.
func New() (*Server, error) {
	initdb, err := findBinary("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := findBinary("postgres")
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: a unix socket path must stay under 108 bytes, and test
	// names make those paths long.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, postgres: postgres}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if os.Geteuid() == 0 {
		if s.cred, err = unprivileged(); err != nil {
			return fail(err)
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fail(fmt.Errorf("pgtest: hand %s to uid %d: %w", dir, s.cred.Uid, err))
		}
	}
	if s.port, err = childproc.FreePort(); err != nil {
		return fail(err)
	}
	if err := s.initdb(initdb); err != nil {
		return fail(err)
	}
	if err := s.Start(); err != nil {
		return fail(err)
	}
	return s, nil
}

// unprivileged is the user postgres runs as under root: the package's
// "postgres" user, else "nobody".
func unprivileged() (*syscall.Credential, error) {
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("user %s: uid %q gid %q not numeric", name, u.Uid, u.Gid))
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, fmt.Errorf("pgtest: running as root and no unprivileged user to run postgres as: %w", errors.Join(errs...))
}

// findBinary looks on PATH, then in the newest /usr/lib/postgresql/<ver>/bin.
func findBinary(name string) (string, error) {
	dirs, _ := filepath.Glob(binGlob)
	// Newest major version first: "17" before "15", numerically.
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	return childproc.FindBinary(name, "`make test` installs Debian's postgresql package via scripts/deps.sh", dirs...)
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

// Port is the server's TCP port on 127.0.0.1; it stays the same across Stop
// and Start.
func (s *Server) Port() int { return s.port }

// Addr is "127.0.0.1:<port>".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// SocketDir is the directory holding the server's unix socket.
func (s *Server) SocketDir() string { return s.dir }

// Dir is the directory holding the server's data and files.
func (s *Server) Dir() string { return s.dir }

// command runs as the unprivileged user under root, with none of the
// caller's PG* variables (PGHOST, PGUSER...) leaking into it.
func (s *Server) command(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"LC_ALL=C", "TZ=UTC", "PATH=/usr/bin:/bin"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

func (s *Server) initdb(initdb string) error {
	cmd := s.command(initdb,
		"--pgdata="+s.dataDir(),
		"--username="+superuser,
		"--auth=trust",
		"--encoding=UTF8",
		"--no-locale",
		"--no-sync",
		"--no-instructions",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, tail(string(out), 2000))
	}
	return nil
}

// Start starts the server on its data directory and port (again, after
// Stop) and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("pgtest: server already running")
	}
	logFile, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: open log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := s.command(s.postgres,
		"-D", s.dataDir(),
		"-p", strconv.Itoa(s.port),
		"-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "synchronous_commit=off",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=100",
		"-c", "logging_collector=off",
		"-c", "log_min_messages=warning",
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// The server dies with the test binary, even if that one is killed.
	proc, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.proc = proc
	if err := s.waitReady(); err != nil {
		_ = s.stopLocked(syscall.SIGKILL)
		return err
	}
	return nil
}

func (s *Server) waitReady() error {
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer db.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("pgtest: postgres exited during start-up:\n%s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not ready after %s: %w\n%s", readyTimeout, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(string(b), 3000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Stop shuts the server down (SIGINT: fast shutdown, which ends open
// sessions; SIGKILL after 20 s) and waits for it to exit. The data
// directory stays for Start.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGINT)
}

func (s *Server) stopLocked(sig syscall.Signal) error {
	if s.proc == nil {
		return nil
	}
	proc := s.proc
	s.proc = nil
	if proc.Stop(sig, stopTimeout) {
		return fmt.Errorf("pgtest: postgres ignored %s for %s and was killed", sig, stopTimeout)
	}
	return nil
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.admin != nil {
		s.admin.Close()
		s.admin = nil
	}
	s.mu.Unlock()
	err := s.Stop()
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: remove %s: %w", s.dir, rerr))
	}
	return err
}

// DSN is a postgres:// URL for the superuser over TCP to database.
func (s *Server) DSN(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     s.Addr(),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Admin returns a superuser connection pool to the "postgres" database,
// shared by the server's callers.
func (s *Server) Admin(t testing.TB) *sql.DB {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		db, err := sql.Open("pgx", s.DSN("postgres"))
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		db.SetMaxOpenConns(4)
		s.admin = db
	}
	return s.admin
}

// Database creates an empty database t_<random> for the test and returns
// its DSN; the database is dropped (its sessions ended) when the test ends.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	admin := s.Admin(t)
	ctx := context.Background()
	// name is ours (hex), safe to put in the statement as an identifier.
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			// The server may be stopped by the test itself.
			if s.running() {
				t.Errorf("pgtest: drop database %s: %v", name, err)
			}
		}
	})
	return s.DSN(name)
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}
