package nginx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/nginx"
)

// requireNginx returns the nginx binary, or skips (fails on CI) without it.
func requireNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not found: install the Debian package \"nginx\"")
	}
	t.Skip("nginx not found (Debian package \"nginx\")")
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// backend stands in for a bench container: it names itself in a header.
func backend(t *testing.T, name string) (*httptest.Server, int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s host=%s xff=%s proto=%s", name, r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(srv.Close)
	return srv, srv.Listener.Addr().(*net.TCPAddr).Port
}

type fixture struct {
	m      *nginx.Manager
	dir    string
	listen string
	opts   nginx.Options
}

func startOwned(t *testing.T) *fixture {
	t.Helper()
	bin := requireNginx(t)
	dir := t.TempDir()
	opts := nginx.Options{
		Dir:          dir,
		Binary:       bin,
		Listen:       freeAddr(t),
		ProbeListen:  freeAddr(t),
		ProbeTimeout: 5 * time.Second,
	}
	if os.Geteuid() == 0 {
		// Workers as nobody could not enter the test's 0700 folder.
		opts.User = "root"
	}
	m, err := nginx.New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	require.NoError(t, m.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &fixture{m: m, dir: dir, listen: opts.Listen, opts: opts}
}

// get asks nginx for host on a new connection and returns the backend that
// answered.
func get(t *testing.T, listen, host string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+listen+"/", nil)
	require.NoError(t, err)
	req.Host = host
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.Header.Get("X-Backend"), string(body)
}

// snapshot is every regular file and link under dir with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "logs") || strings.HasPrefix(rel, "run") || strings.HasPrefix(rel, "tmp") {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			files[rel] = "-> " + target
			return err
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			files[rel] = string(data)
			return err
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// includedSnippets is what nginx would load now: the files behind <dir>/benches.
func includedSnippets(t *testing.T, dir string) map[string]string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "benches", "*.conf"))
	require.NoError(t, err)
	files := map[string]string{}
	for _, p := range matches {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		files[filepath.Base(p)] = string(data)
	}
	return files
}

func TestApply_TwoBenches_RoutesByHost(t *testing.T) {
	f := startOwned(t)
	_, portA := backend(t, "A")
	_, portB := backend(t, "B")

	err := f.m.Apply(t.Context(),
		[]nginx.Bench{{Name: "bench-a", Port: portA}, {Name: "bench-b", Port: portB}},
		[]nginx.Site{{Name: "a.example.com", Bench: "bench-a"}, {Name: "b.example.com", Bench: "bench-b"}})
	require.NoError(t, err)

	who, body := get(t, f.listen, "a.example.com")
	require.Equal(t, "A", who)
	require.Contains(t, body, "host=a.example.com")
	require.Contains(t, body, "xff=127.0.0.1")
	require.Contains(t, body, "proto=http")
	who, _ = get(t, f.listen, "b.example.com")
	require.Equal(t, "B", who)
	who, _ = get(t, f.listen, "unknown.example.com")
	require.Empty(t, who, "a host no bench serves must not reach a bench")
	require.Equal(t, uint64(1), f.m.Generation())
}

func TestApply_CheckFails_KeepsOldConfigServing(t *testing.T) {
	f := startOwned(t)
	_, portA := backend(t, "A")
	_, portB := backend(t, "B")
	benches := []nginx.Bench{{Name: "bench-a", Port: portA}, {Name: "bench-b", Port: portB}}
	sites := []nginx.Site{{Name: "a.example.com", Bench: "bench-a"}, {Name: "b.example.com", Bench: "bench-b"}}
	require.NoError(t, f.m.Apply(t.Context(), benches, sites))
	before := includedSnippets(t, f.dir)

	nginx.SetExtraDirectives(f.m, func(bench string) string {
		if bench == "bench-b" {
			return "hybrid_no_such_directive on;"
		}
		return ""
	})
	err := f.m.Apply(t.Context(), benches, []nginx.Site{
		{Name: "a.example.com", Bench: "bench-b"}, {Name: "b.example.com", Bench: "bench-b"}})
	require.ErrorIs(t, err, nginx.ErrConfigRejected)
	require.ErrorContains(t, err, `unknown directive "hybrid_no_such_directive"`)

	require.Equal(t, before, includedSnippets(t, f.dir), "the included files must be the old ones")
	who, _ := get(t, f.listen, "a.example.com")
	require.Equal(t, "A", who)
	who, _ = get(t, f.listen, "b.example.com")
	require.Equal(t, "B", who)
	require.Equal(t, uint64(1), f.m.Generation())

	// The next good Apply works and gets a fresh generation number.
	nginx.SetExtraDirectives(f.m, nil)
	require.NoError(t, f.m.Apply(t.Context(), benches, sites))
	require.Equal(t, uint64(3), f.m.Generation())
}

func TestApply_InvalidNames_NamesValueAndWritesNothing(t *testing.T) {
	f := startOwned(t)
	_, port := backend(t, "A")
	long := strings.Repeat("x", 300)
	label64 := strings.Repeat("y", 64) + ".example.com"

	cases := []struct {
		name    string
		benches []nginx.Bench
		sites   []nginx.Site
		value   string
	}{
		{"site with semicolon", []nginx.Bench{{"a", port}}, []nginx.Site{{"a;b", "a"}}, "a;b"},
		{"site with slashes", []nginx.Bench{{"a", port}}, []nginx.Site{{"../x", "a"}}, "../x"},
		// names clips a long value in its message
		{"site too long", []nginx.Bench{{"a", port}}, []nginx.Site{{long, "a"}}, long[:77] + "..."},
		{"site label too long", []nginx.Bench{{"a", port}}, []nginx.Site{{label64, "a"}}, label64},
		{"site upper case", []nginx.Bench{{"a", port}}, []nginx.Site{{"A.example.com", "a"}}, "A.example.com"},
		{"site with space", []nginx.Bench{{"a", port}}, []nginx.Site{{"a b", "a"}}, "a b"},
		{"site with brace", []nginx.Bench{{"a", port}}, []nginx.Site{{"a}b", "a"}}, "a}b"},
		{"bench with semicolon", []nginx.Bench{{"a;b", port}}, nil, "a;b"},
		{"bench traversal", []nginx.Bench{{"../x", port}}, nil, "../x"},
		{"bench too long", []nginx.Bench{{long, port}}, nil, long[:77] + "..."},
		{"bench upper case", []nginx.Bench{{"Bench", port}}, nil, "Bench"},
		{"bench with space", []nginx.Bench{{"a b", port}}, nil, "a b"},
		{"bench port", []nginx.Bench{{"a", 70000}}, nil, "70000"},
		{"site on unknown bench", []nginx.Bench{{"a", port}}, []nginx.Site{{"a.example.com", "zz"}}, `"zz"`},
		{"site twice", []nginx.Bench{{"a", port}}, []nginx.Site{{"a.example.com", "a"}, {"a.example.com", "a"}}, "a.example.com"},
	}
	before := snapshot(t, f.dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := f.m.Apply(t.Context(), tc.benches, tc.sites)
			require.ErrorIs(t, err, nginx.ErrInvalid)
			require.ErrorContains(t, err, tc.value)
			require.Equal(t, before, snapshot(t, f.dir), "nothing may be written")
		})
	}
}

func TestApply_InvalidNames_ReportsEveryProblem(t *testing.T) {
	requireNginx(t)
	m, err := nginx.New(nginx.Options{Dir: t.TempDir(), ProbeListen: freeAddr(t)})
	require.NoError(t, err)
	err = m.Apply(t.Context(), []nginx.Bench{{"B1", 1}, {"ok", 0}}, []nginx.Site{{"x_y.com", "ok"}})
	require.ErrorContains(t, err, `"B1"`)
	require.ErrorContains(t, err, "port 0")
	require.ErrorContains(t, err, `"x_y.com"`)
}

func TestApply_SiteMovesToOtherBench_ReachesNewBench(t *testing.T) {
	f := startOwned(t)
	_, portA := backend(t, "A")
	_, portB := backend(t, "B")
	benches := []nginx.Bench{{Name: "bench-a", Port: portA}, {Name: "bench-b", Port: portB}}
	require.NoError(t, f.m.Apply(t.Context(), benches, []nginx.Site{
		{Name: "a.example.com", Bench: "bench-a"}, {Name: "b.example.com", Bench: "bench-b"}}))
	who, _ := get(t, f.listen, "a.example.com")
	require.Equal(t, "A", who)

	require.NoError(t, f.m.Apply(t.Context(), benches, []nginx.Site{
		{Name: "a.example.com", Bench: "bench-b"}, {Name: "b.example.com", Bench: "bench-b"}}))
	// No retry: Apply returned only after the probe showed the new generation.
	who, body := get(t, f.listen, "a.example.com")
	require.Equal(t, "B", who)
	require.Contains(t, body, "host=a.example.com")
	require.NotContains(t, includedSnippets(t, f.dir)["bench-a.conf"], "server_name")
}

// The known pain: `nginx -t` passes, the reload does not take (here the new
// listen address is taken, which -t does not check). Apply must say so, and
// the old routing and files must stay.
func TestApply_ReloadFailsAfterCheckPassed_ReportsAndRollsBack(t *testing.T) {
	f := startOwned(t)
	_, portA := backend(t, "A")
	benches := []nginx.Bench{{Name: "bench-a", Port: portA}}
	sites := []nginx.Site{{Name: "a.example.com", Bench: "bench-a"}}
	require.NoError(t, f.m.Apply(t.Context(), benches, sites))
	before := includedSnippets(t, f.dir)

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	opts := f.opts
	opts.Listen = taken.Addr().String()
	opts.ProbeTimeout = 2 * time.Second
	m2, err := nginx.New(opts) // the agent restarted with another listen address
	require.NoError(t, err)

	err = m2.Apply(t.Context(), benches, sites)
	require.ErrorIs(t, err, nginx.ErrReloadNotTaken)
	require.ErrorContains(t, err, "want generation 2")
	require.ErrorContains(t, err, "Address already in use")
	require.Equal(t, before, includedSnippets(t, f.dir))
	who, _ := get(t, f.listen, "a.example.com")
	require.Equal(t, "A", who)
	require.Equal(t, uint64(1), m2.Generation())
}

func TestNew_InterruptedApply_RestoresServedGeneration(t *testing.T) {
	requireNginx(t)
	dir := t.TempDir()
	opts := nginx.Options{Dir: dir, ProbeListen: freeAddr(t), Listen: freeAddr(t)}
	m, err := nginx.New(opts)
	require.NoError(t, err)
	// Not running: Apply checks and commits without a reload.
	require.NoError(t, m.Apply(t.Context(), []nginx.Bench{{"a", 8000}}, []nginx.Site{{"a.example.com", "a"}}))
	require.Equal(t, uint64(1), m.Generation())

	// A crash after the link moved to generation 2 but before it was proven.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "generations", "2", "benches"), 0o755))
	require.NoError(t, os.Remove(filepath.Join(dir, "benches")))
	require.NoError(t, os.Symlink("generations/2/benches", filepath.Join(dir, "benches")))

	m, err = nginx.New(opts)
	require.NoError(t, err)
	target, err := os.Readlink(filepath.Join(dir, "benches"))
	require.NoError(t, err)
	require.Equal(t, "generations/1/benches", target)
	require.Contains(t, includedSnippets(t, dir), "a.conf")
	// Generation numbers are not reused.
	require.NoError(t, m.Apply(t.Context(), []nginx.Bench{{"a", 8000}}, nil))
	require.Equal(t, uint64(3), m.Generation())
}

func TestNew_BadOptions_NamesEachField(t *testing.T) {
	_, err := nginx.New(nginx.Options{Dir: "relative", Listen: "80; evil", ClientMaxBodySize: "1 g", ProbeListen: "9471"})
	require.Error(t, err)
	for _, want := range []string{`dir "relative"`, `listen "80; evil"`, `client max body size "1 g"`, `probe listen "9471"`} {
		require.ErrorContains(t, err, want)
	}
	require.False(t, errors.Is(err, nginx.ErrInvalid))
}

// A system nginx the operator runs, whose main file includes our snippets:
// Apply reloads it with `nginx -c <main> -s reload`.
func TestApply_SystemNginx_ReloadsThroughMainConfig(t *testing.T) {
	bin := requireNginx(t)
	sys := t.TempDir()
	dir := filepath.Join(sys, "agent", "nginx")
	listen := freeAddr(t)
	main := filepath.Join(sys, "nginx.conf")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	require.NoError(t, os.WriteFile(main, []byte(fmt.Sprintf(`%s
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events {}
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    server { listen %[3]s default_server; return 404; }
    include %[4]s/benches/*.conf;
}
`, user, sys, listen, dir)), 0o644))

	m, err := nginx.New(nginx.Options{Dir: dir, Binary: bin, MainConfig: main, Listen: listen, ProbeListen: freeAddr(t), ProbeTimeout: 5 * time.Second})
	require.NoError(t, err)
	require.ErrorContains(t, m.Start(t.Context()), "not the agent's to start")

	cmd := exec.Command(bin, "-e", filepath.Join(sys, "error.log"), "-c", main)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	// Wait until it listens.
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)

	_, portA := backend(t, "A")
	_, portB := backend(t, "B")
	benches := []nginx.Bench{{Name: "bench-a", Port: portA}, {Name: "bench-b", Port: portB}}
	require.NoError(t, m.Apply(t.Context(), benches, []nginx.Site{{Name: "a.example.com", Bench: "bench-a"}}))
	who, _ := get(t, listen, "a.example.com")
	require.Equal(t, "A", who)
	require.NoError(t, m.Apply(t.Context(), benches, []nginx.Site{{Name: "a.example.com", Bench: "bench-b"}}))
	who, _ = get(t, listen, "a.example.com")
	require.Equal(t, "B", who)
}

// An agent restart finds its nginx still running and adopts it; the sites
// stay up throughout.
func TestStart_MasterAlreadyRunning_Adopts(t *testing.T) {
	f := startOwned(t)
	_, portA := backend(t, "A")
	require.NoError(t, f.m.Apply(t.Context(), []nginx.Bench{{"bench-a", portA}}, []nginx.Site{{"a.example.com", "bench-a"}}))

	m2, err := nginx.New(f.opts)
	require.NoError(t, err)
	require.NoError(t, m2.Start(t.Context()))
	who, _ := get(t, f.listen, "a.example.com")
	require.Equal(t, "A", who)
	require.NoError(t, m2.Apply(t.Context(), []nginx.Bench{{"bench-a", portA}}, []nginx.Site{{"a.example.com", "bench-a"}, {"b.example.com", "bench-a"}}))
	who, _ = get(t, f.listen, "b.example.com")
	require.Equal(t, "A", who)
}
