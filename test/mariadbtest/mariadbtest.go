// Package mariadbtest runs a throwaway MariaDB server for tests: a data
// directory made by mariadb-install-db in a temporary directory, and mariadbd
// listening on a free port of 127.0.0.1 and on a socket beside its data. The
// server is small (32 MiB buffer pool, no performance_schema) and starts in
// about a second.
//
// Root logs in over the socket without a password. The server process dies
// with the test binary even if that one is killed (parent-death signal), and
// is stopped by the test's cleanup otherwise.
package mariadbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hybridsuite/hybrid/test/childproc"
)

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// Server is a running (or stopped) throwaway MariaDB server.
type Server struct {
	dir     string // holds data/, the socket, the config and the error log
	mariadb string // path of mariadbd
	port    int
	bind    string // bind-address

	mu     sync.Mutex
	proc   *childproc.Process // nil while stopped
	rootDB *sql.DB
}

// Start runs a server for the test and stops it (and removes its files) when
// the test ends, passed or failed. Missing MariaDB binaries skip the test, or
// fail it when CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartBound(t, "127.0.0.1")
}

// StartBound is Start with the server listening on bindAddress: "0.0.0.0"
// lets containers on a Docker bridge reach it through the host gateway.
func StartBound(t testing.TB, bindAddress string) *Server {
	t.Helper()
	s, err := newBound(bindAddress)
	if err != nil {
		childproc.SkipOrFatal(t, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("mariadbtest: %v", err)
		}
	})
	return s
}

// Shared is one server for a whole test package, started on first use:
//
//	var shared mariadbtest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		shared.Close()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) { srv := shared.Server(t); ... }
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
			fmt.Fprintln(os.Stderr, "mariadbtest:", err)
		}
	}
}

// New installs a data directory and starts a server; Close undoes both.
// Tests use Start or Shared, which handle cleanup and missing binaries.
func New() (*Server, error) { return newBound("127.0.0.1") }

// Where Debian puts the server's programs, and how to get them.
var binDirs = []string{"/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/local/sbin"}

const mariadbHint = "`make test` installs the MariaDB server via scripts/deps.sh"

func newBound(bindAddress string) (*Server, error) {
	mariadbd, err := childproc.FindBinary("mariadbd", mariadbHint, binDirs...)
	if err != nil {
		return nil, err
	}
	installDB, err := childproc.FindBinary("mariadb-install-db", mariadbHint, binDirs...)
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: a unix socket path must stay under 108 bytes, and test
	// names make those paths long.
	dir, err := os.MkdirTemp("", "mariadbtest-")
	if err != nil {
		return nil, fmt.Errorf("mariadbtest: %w", err)
	}
	port, err := childproc.FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{dir: dir, mariadb: mariadbd, port: port, bind: bindAddress}
	if err := s.install(installDB); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) configPath() string { return filepath.Join(s.dir, "my.cnf") }
func (s *Server) errorLog() string   { return filepath.Join(s.dir, "error.log") }

// Socket is the server's unix socket.
func (s *Server) Socket() string { return filepath.Join(s.dir, "mysqld.sock") }

// Port is the server's TCP port on 127.0.0.1; it stays the same across Stop
// and Start.
func (s *Server) Port() int { return s.port }

// Addr is "127.0.0.1:<port>".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir is the directory holding the server's data and files.
func (s *Server) Dir() string { return s.dir }

// install writes the config and runs mariadb-install-db.
func (s *Server) install(installDB string) error {
	cnf := strings.Join([]string{
		"[mariadbd]",
		"datadir=" + filepath.Join(s.dir, "data"),
		"socket=" + s.Socket(),
		"port=" + strconv.Itoa(s.port),
		"bind-address=" + s.bind,
		"pid-file=" + filepath.Join(s.dir, "mariadbd.pid"),
		"log-error=" + s.errorLog(),
		// Its own tmpdir: temporary tables in a shared /tmp can collide with
		// (or be cleaned up by) other servers and tests on the machine.
		"tmpdir=" + filepath.Join(s.dir, "tmp"),
		"skip-name-resolve",
		"performance_schema=OFF",
		"innodb_buffer_pool_size=32M",
		"innodb_log_file_size=16M",
		"innodb_flush_log_at_trx_commit=2",
		"innodb_doublewrite=0",
		"max_connections=50",
		"character-set-server=utf8mb4",
		"collation-server=utf8mb4_general_ci",
		"",
	}, "\n")
	if err := os.Mkdir(filepath.Join(s.dir, "tmp"), 0o700); err != nil {
		return fmt.Errorf("mariadbtest: %w", err)
	}
	if err := os.WriteFile(s.configPath(), []byte(cnf), 0o600); err != nil {
		return fmt.Errorf("mariadbtest: write config: %w", err)
	}
	args := []string{
		"--defaults-file=" + s.configPath(),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	out, err := exec.Command(installDB, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadbtest: mariadb-install-db: %w\n%s\nerror log:\n%s", err, tail(string(out), 1000), s.logTail())
	}
	return nil
}

// Start starts the server on its data directory and port (again, after Stop)
// and waits until root can log in.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("mariadbtest: server already running")
	}
	args := []string{"--defaults-file=" + s.configPath()}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(s.mariadb, args...)
	// The server dies with the test binary, even if that one is killed.
	proc, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("mariadbtest: start mariadbd: %w", err)
	}
	s.proc = proc
	if err := s.waitReady(); err != nil {
		_ = s.stopLocked(syscall.SIGKILL)
		return err
	}
	return nil
}

func (s *Server) waitReady() error {
	db, err := s.openRoot()
	if err != nil {
		return err
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
			return fmt.Errorf("mariadbtest: mariadbd exited during start-up:\n%s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbtest: mariadbd not ready after %s: %w\n%s", readyTimeout, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.errorLog())
	if err != nil {
		return "(no error log: " + err.Error() + ")"
	}
	return tail(string(b), 3000)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 20 s) and waits
// for it to exit. The data directory stays for Start.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGTERM)
}

func (s *Server) stopLocked(sig syscall.Signal) error {
	if s.proc == nil {
		return nil
	}
	proc := s.proc
	s.proc = nil
	if proc.Stop(sig, stopTimeout) {
		return fmt.Errorf("mariadbtest: mariadbd ignored %s for %s and was killed", sig, stopTimeout)
	}
	return nil
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	err := s.Stop()
	s.mu.Lock()
	if s.rootDB != nil {
		s.rootDB.Close()
		s.rootDB = nil
	}
	s.mu.Unlock()
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("mariadbtest: remove %s: %w", s.dir, rerr))
	}
	return err
}

// rootConfig logs in as root over the socket.
func (s *Server) rootConfig() *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = s.Socket()
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	return cfg
}

func (s *Server) openRoot() (*sql.DB, error) {
	connector, err := mysql.NewConnector(s.rootConfig())
	if err != nil {
		return nil, fmt.Errorf("mariadbtest: %w", err)
	}
	return sql.OpenDB(connector), nil
}

// RootDSN is a go-sql-driver DSN for root over the socket.
func (s *Server) RootDSN() string { return s.rootConfig().FormatDSN() }

// DSN is a go-sql-driver DSN for user over TCP.
func (s *Server) DSN(user, password string) string {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = s.Addr()
	return cfg.FormatDSN()
}

// Root returns a root connection pool over the socket, shared by the
// server's callers; it reconnects by itself after a Stop and Start.
func (s *Server) Root(t testing.TB) *sql.DB {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rootDB == nil {
		db, err := s.openRoot()
		if err != nil {
			t.Fatal(err)
		}
		s.rootDB = db
	}
	return s.rootDB
}

// Exec runs statements as root, failing the test on the first error.
func (s *Server) Exec(t testing.TB, statements ...string) {
	t.Helper()
	db := s.Root(t)
	for _, q := range statements {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("mariadbtest: %s: %v", q, err)
		}
	}
}

// WriteCredentials creates (or re-creates) user with password and the
// privileges an exporter needs — mysqld_exporter's PROCESS, REPLICATION
// CLIENT and SELECT, plus SLAVE MONITOR, which MariaDB 10.5.9 and later
// require for SHOW ALL SLAVES STATUS — and writes a my.cnf style credentials
// file of mode 0600 for it, returning its path.
func (s *Server) WriteCredentials(t testing.TB, user, password string) string {
	t.Helper()
	account := quote(user) + "@'%'"
	s.Exec(t,
		"CREATE OR REPLACE USER "+account+" IDENTIFIED BY "+quote(password),
		"GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO "+account,
	)
	return WriteCredentialsFile(t, user, password, "127.0.0.1", s.port)
}

// WriteCredentialsFile writes a my.cnf style credentials file of mode 0600
// without touching the server (for a wrong password, say).
func WriteCredentialsFile(t testing.TB, user, password, host string, port int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exporter.cnf")
	content := fmt.Sprintf("[client]\nuser = %s\npassword = %s\nhost = %s\nport = %d\n",
		user, cnfQuote(password), host, port)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("mariadbtest: write credentials: %v", err)
	}
	return path
}

// quote makes s an SQL string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// cnfQuote makes s a double-quoted my.cnf value.
func cnfQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(s) + `"`
}
