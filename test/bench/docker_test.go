package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/bench/benchimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
)

// dockerExec runs a command in the container as `docker exec` does and
// returns its exit code, stdout and stderr.
func dockerExec(ctx context.Context, t *testing.T, cli *client.Client, id string, cmd ...string) (int, string, string) {
	t.Helper()
	created, err := cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	require.NoError(t, err)
	att, err := cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	require.NoError(t, err)
	defer att.Close()
	var stdout, stderr bytes.Buffer
	_, err = stdcopy.StdCopy(&stdout, &stderr, att.Reader)
	require.NoError(t, err)
	for {
		res, err := cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
		require.NoError(t, err)
		if !res.Running {
			return res.ExitCode, stdout.String(), stderr.String()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestImage_ExecNewSiteThenServeByHost runs the image as the agent runs a
// bench: sites bind-mounted, the CLI through docker exec, requests by Host
// header. The container uses the host's network to reach the test MariaDB on
// 127.0.0.1; the agent instead puts benches on a bridge network and passes
// the host gateway's address as --db-host.
func TestImage_ExecNewSiteThenServeByHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := benchimage.Build(ctx, t, cli)
	db := createSiteDB(t, "dockerdb")

	sites := filepath.Join(t.TempDir(), "sites")
	require.NoError(t, os.Mkdir(sites, 0o755))
	user := benchimage.User
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(sites, 1000, 1000)) // as the agent's layout is owned
	} else {
		user = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	port := freePort(t)
	id := dockertest.Run(ctx, t, cli, fmt.Sprintf("hybrid-test-bench-%d", time.Now().UnixNano()),
		&container.Config{
			Image: image,
			User:  user,
			Cmd:   []string{"bench", "serve", "--port", strconv.Itoa(port)},
		},
		&container.HostConfig{
			NetworkMode: "host",
			Binds:       []string{sites + ":" + benchimage.SitesDir},
		})

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	get := func(host, path string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		require.NoError(t, err)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	require.Eventually(t, func() bool {
		code, _ := get("nosuch.test", "/api/method/ping")
		return code == http.StatusNotFound
	}, 20*time.Second, 50*time.Millisecond, "the container never served")

	const site = "docker.example.test"
	args := append([]string{"bench"}, db.newSiteArgs(site)...)
	code, stdout, stderr := dockerExec(ctx, t, cli, id, args...)
	require.Equalf(t, 0, code, "new-site:\nstdout: %s\nstderr: %s", stdout, stderr)
	require.FileExists(t, filepath.Join(sites, site, "site_config.json"))

	code, body := get(site, "/api/method/ping")
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"message":"pong"}`, body)

	code, _, stderr = dockerExec(ctx, t, cli, id, args...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "already exists")

	code, stdout, stderr = dockerExec(ctx, t, cli, id, "bench", "--site", site, "backup", "--with-files")
	require.Equalf(t, 0, code, "backup: %s", stderr)
	require.Contains(t, stdout, "Database: ./"+site+"/private/backups/")
	dumps, err := filepath.Glob(filepath.Join(sites, site, "private/backups/*-database.sql.gz"))
	require.NoError(t, err)
	require.Len(t, dumps, 1)

	code, _, stderr = dockerExec(ctx, t, cli, id, "bench", "--site", site, "set-maintenance-mode", "on")
	require.Equalf(t, 0, code, "set-maintenance-mode: %s", stderr)
	code, _ = get(site, "/api/method/ping")
	require.Equal(t, http.StatusServiceUnavailable, code)

	// Archived within the container's bench folder, across the bind mount.
	code, stdout, stderr = dockerExec(ctx, t, cli, id, "bench", "drop-site", site, "--no-backup")
	require.Equalf(t, 0, code, "drop-site: %s", stderr)
	require.True(t, strings.Contains(stdout, benchimage.BenchDir+"/archived_sites/"+site+"-"), stdout)
	require.NoDirExists(t, filepath.Join(sites, site))
	code, _ = get(site, "/api/method/ping")
	require.Equal(t, http.StatusNotFound, code)
}
