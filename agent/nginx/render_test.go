package nginx_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/nginx"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The rendered files, reviewable in testdata/. nginx is not running, so
// Apply checks them with nginx -t and stops there.
func TestApply_RenderedFiles_MatchGolden(t *testing.T) {
	bin := requireNginx(t)
	dir := t.TempDir()
	m, err := nginx.New(nginx.Options{Dir: dir, Binary: bin, Listen: "80", ProbeListen: "127.0.0.1:9471"})
	require.NoError(t, err)
	require.NoError(t, m.Apply(t.Context(),
		[]nginx.Bench{{Name: "bench-a", Port: 8001}, {Name: "idle", Port: 8002}},
		[]nginx.Site{{Name: "b.example.com", Bench: "bench-a"}, {Name: "a.example.com", Bench: "bench-a"}}))

	for golden, path := range map[string]string{
		"bench-a.conf": filepath.Join(dir, "benches", "bench-a.conf"),
		"idle.conf":    filepath.Join(dir, "benches", "idle.conf"),
		"_hybrid.conf": filepath.Join(dir, "benches", "_hybrid.conf"),
		"nginx.conf":   filepath.Join(dir, "nginx.conf"),
	} {
		t.Run(golden, func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			got := strings.ReplaceAll(string(data), dir, "/home/frappe/agent/nginx")
			want := filepath.Join("testdata", golden)
			if *update {
				require.NoError(t, os.WriteFile(want, []byte(got), 0o644))
			}
			expected, err := os.ReadFile(want)
			require.NoError(t, err)
			require.Equal(t, string(expected), got)
		})
	}
}

// With request metrics on, the site servers and the owned default server
// send their lines to the agent's socket, and keep the file log.
func TestApply_RequestMetrics_RenderedFilesMatchGolden(t *testing.T) {
	bin := requireNginx(t)
	dir := t.TempDir()
	var told [][]string
	m, err := nginx.New(nginx.Options{Dir: dir, Binary: bin, Listen: "80", ProbeListen: "127.0.0.1:9471",
		AccessLogSocket: "/home/frappe/agent/run/nginx-access.sock",
		SitesServed:     func(sites []string) { told = append(told, sites) }})
	require.NoError(t, err)
	require.NoError(t, m.Apply(t.Context(),
		[]nginx.Bench{{Name: "bench-a", Port: 8001}},
		[]nginx.Site{{Name: "b.example.com", Bench: "bench-a"}, {Name: "a.example.com", Bench: "bench-a"}}))
	require.Equal(t, [][]string{nil, {"a.example.com", "b.example.com"}, {"a.example.com", "b.example.com"}}, told,
		"told at New (none yet), before the reload (old and new) and after it")

	for golden, path := range map[string]string{
		"bench-a.conf": filepath.Join(dir, "benches", "bench-a.conf"),
		"_hybrid.conf": filepath.Join(dir, "benches", "_hybrid.conf"),
	} {
		t.Run(golden, func(t *testing.T) {
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			got := strings.ReplaceAll(string(data), dir, "/home/frappe/agent/nginx")
			want := filepath.Join("testdata", "request-metrics", golden)
			if *update {
				require.NoError(t, os.MkdirAll(filepath.Dir(want), 0o755))
				require.NoError(t, os.WriteFile(want, []byte(got), 0o644))
			}
			expected, err := os.ReadFile(want)
			require.NoError(t, err)
			require.Equal(t, string(expected), got)
		})
	}

	// A restarted agent knows the served sites before any Apply.
	told = nil
	_, err = nginx.New(nginx.Options{Dir: dir, Binary: bin, Listen: "80", ProbeListen: "127.0.0.1:9471",
		AccessLogSocket: "/home/frappe/agent/run/nginx-access.sock",
		SitesServed:     func(sites []string) { told = append(told, sites) }})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"a.example.com", "b.example.com"}}, told)
}

func TestNew_BadAccessLogSocket_Named(t *testing.T) {
	for _, sock := range []string{"relative.sock", "/run/a,b.sock", "/run/a b.sock", "/" + strings.Repeat("x", 120)} {
		_, err := nginx.New(nginx.Options{Dir: t.TempDir(), AccessLogSocket: sock})
		require.ErrorContains(t, err, fmt.Sprintf("access log socket %q", sock))
	}
}
