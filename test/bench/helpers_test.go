package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/mariadbtest"
)

var shared mariadbtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// testBench is a bench folder in a temp dir with an injected environment and
// a clock that moves one second per reading, so backups get distinct names.
type testBench struct {
	*Bench
	env map[string]string
}

func newTestBench(t *testing.T) *testBench {
	t.Helper()
	tb := &testBench{env: map[string]string{}}
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tb.Bench = &Bench{
		Dir:    t.TempDir(),
		Getenv: func(k string) string { return tb.env[k] },
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Second)
			return now
		},
	}
	return tb
}

// run runs a command line and returns its exit status, stdout and stderr.
func (tb *testBench) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	b := *tb.Bench
	b.Stdout, b.Stderr = &stdout, &stderr
	code := b.Run(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

func (tb *testBench) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := tb.run(t, args...)
	require.Equalf(t, 0, code, "bench %s failed:\nstdout: %s\nstderr: %s", strings.Join(args, " "), stdout, stderr)
	return stdout
}

// serve starts the bench's handler on a test server.
func (tb *testBench) serve(t *testing.T) *httptest.Server {
	t.Helper()
	b := *tb.Bench
	b.Stdout, b.Stderr = io.Discard, io.Discard
	h := b.Handler(slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
	})
	return srv
}

// siteDB is a database and its user made the way the agent makes them
// before new-site: user named as the database, all privileges on it.
type siteDB struct {
	srv            *mariadbtest.Server
	name, password string
}

func createSiteDB(t *testing.T, name string) siteDB {
	t.Helper()
	srv := shared.Server(t)
	password := "pw-" + name + "'\"x"
	account := "'" + name + "'@'%'"
	srv.Exec(t,
		"CREATE DATABASE `"+name+"`",
		"CREATE USER "+account+" IDENTIFIED BY "+quoteString(password),
		"GRANT ALL PRIVILEGES ON `"+name+"`.* TO "+account,
	)
	t.Cleanup(func() {
		srv.Exec(t, "DROP DATABASE IF EXISTS `"+name+"`", "DROP USER IF EXISTS "+account)
	})
	return siteDB{srv: srv, name: name, password: password}
}

func (d siteDB) newSiteArgs(site string) []string {
	return []string{"new-site", site, "--db-name", d.name, "--db-password", d.password,
		"--db-host", "127.0.0.1", "--db-port", strconv.Itoa(d.srv.Port()),
		"--admin-password", "admin", "--mariadb-root-username", "root", "--mariadb-root-password", "unused"}
}

// schemaVersion reads tabSchema as root.
func (d siteDB) schemaVersion(t *testing.T) int {
	t.Helper()
	var v int
	require.NoError(t, d.srv.Root(t).QueryRowContext(context.Background(),
		"SELECT `version` FROM `"+d.name+"`.`tabSchema` WHERE `app` = 'kv'").Scan(&v))
	return v
}

func (d siteDB) hasColumn(t *testing.T, table, column string) bool {
	t.Helper()
	var n int
	require.NoError(t, d.srv.Root(t).QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
		d.name, table, column).Scan(&n))
	return n == 1
}

func (d siteDB) tableCount(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, d.srv.Root(t).QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", d.name).Scan(&n))
	return n
}

// request sends a request to the site named by host and returns the status
// and body.
func request(t *testing.T, srv *httptest.Server, host, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Host = host
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}
