package benches

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/test/bench/benchimage"
	"github.com/hybridsuite/hybrid/test/burner/burnerimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
)

// removeOnCleanup removes the bench's container when the test ends.
func removeOnCleanup(t *testing.T, cli *client.Client, bench string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = cli.ContainerRemove(ctx, ContainerName(bench), client.ContainerRemoveOptions{Force: true})
	})
}

func TestRuntime_ContainerWithBenchNameNotTheAgents_RefusedUntouched(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := burnerimage.Build(ctx, t, cli)

	for name, labels := range map[string]map[string]string{
		"no label":              nil,
		"another bench's label": {testLabel: "other"},
		"another agent's label": {"io.other.bench": "%s"},
	} {
		t.Run(name, func(t *testing.T) {
			bench := benchName(t)
			for k, v := range labels {
				labels[k] = fmt.Sprintf(v, bench)
			}
			id := dockertest.Run(ctx, t, cli, ContainerName(bench), &container.Config{Image: image, Labels: labels}, nil)
			before, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			require.NoError(t, err)

			rt := New(cli, Options{Root: t.TempDir(), Label: testLabel, Command: []string{"/burner"}})
			c, err := rt.Prepare(bench, image, agentapi.Limits{})
			require.NoError(t, err)
			want := fmt.Sprintf("container bench-%s exists but is not the agent's bench %s: refusing to touch it", bench, bench)
			for op, err := range map[string]error{
				"Start":     rt.Start(ctx, c),
				"Restart":   rt.Restart(ctx, bench),
				"SetLimits": rt.SetLimits(ctx, bench, agentapi.Limits{MemoryBytes: 64 << 20}),
				"Exec":      rt.Exec(ctx, bench, io.Discard, "exit", "0"),
				"Remove":    rt.Remove(ctx, bench),
			} {
				require.ErrorIs(t, err, ErrNotOurs, op)
				require.ErrorContains(t, err, want, op)
			}

			after, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			require.NoError(t, err, "the container was removed")
			require.True(t, after.Container.State.Running)
			require.Equal(t, before.Container.State.StartedAt, after.Container.State.StartedAt, "the container was restarted")
			require.Zero(t, after.Container.HostConfig.Memory, "the container's limits were changed")
			got, err := rt.ReadConfig(bench)
			require.NoError(t, err)
			require.Zero(t, got.Limits.MemoryBytes, "refused limits were recorded")
		})
	}
}

// procStatus reads a field of a host process's /proc/<pid>/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

// requireServes waits until the stand-in bench answers on its port: an
// unknown site gets its 404 JSON.
func requireServes(t *testing.T, port int) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/api/method/ping", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = "nosuch.test"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s", body)
			require.Contains(t, string(body), "DoesNotExistError")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bench does not serve on %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStart_NewContainer_HasSafeDefaultsAndServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := benchimage.Build(ctx, t, cli)

	cases := []struct {
		name       string
		opts       Options
		limits     agentapi.Limits
		wantMemory int64
		wantPids   int64
		wantCaps   []string
		wantLog    map[string]string
	}{
		{name: "defaults", wantMemory: 2 << 30, wantPids: 4096,
			wantLog: map[string]string{"max-size": "10m", "max-file": "3"}},
		{name: "request's memory limit", limits: agentapi.Limits{MemoryBytes: 512 << 20, CPUs: 0.5},
			wantMemory: 512 << 20, wantPids: 4096, wantLog: map[string]string{"max-size": "10m", "max-file": "3"}},
		{name: "configured", opts: Options{PidsLimit: 256, MemoryBytes: 1 << 30, CapAdd: []string{"CAP_NET_BIND_SERVICE"}, LogMaxSize: "1m", LogMaxFiles: 2},
			wantMemory: 1 << 30, wantPids: 256, wantCaps: []string{"CAP_NET_BIND_SERVICE"},
			wantLog: map[string]string{"max-size": "1m", "max-file": "2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bench := benchName(t)
			opts := tc.opts
			opts.Root, opts.Label = t.TempDir(), testLabel
			rt := New(cli, opts)
			c, err := rt.Prepare(bench, image, tc.limits)
			require.NoError(t, err)
			removeOnCleanup(t, cli, bench)
			require.NoError(t, rt.Start(ctx, c))
			require.NoError(t, rt.Start(ctx, c), "a second start adopts the agent's own container")

			res, err := cli.ContainerInspect(ctx, ContainerName(bench), client.ContainerInspectOptions{})
			require.NoError(t, err)
			hc := res.Container.HostConfig
			require.NotNil(t, hc.PidsLimit)
			require.Equal(t, tc.wantPids, *hc.PidsLimit)
			require.Equal(t, tc.wantMemory, hc.Memory)
			require.Equal(t, tc.wantMemory, hc.MemorySwap, "no swap beyond the memory limit")
			if tc.limits.CPUs > 0 {
				require.Equal(t, int64(tc.limits.CPUs*1e9), hc.NanoCPUs)
			}
			require.Contains(t, hc.SecurityOpt, "no-new-privileges:true")
			require.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
			require.Equal(t, tc.wantCaps, []string(hc.CapAdd))
			require.False(t, hc.Privileged)
			require.False(t, hc.ReadonlyRootfs)
			require.Equal(t, "json-file", hc.LogConfig.Type)
			require.Equal(t, tc.wantLog, hc.LogConfig.Config)
			require.Equal(t, bench, res.Container.Config.Labels[testLabel])

			// What the kernel enforces on the bench's process, seen from the host.
			pid := res.Container.State.Pid
			require.Equal(t, "1", procStatus(t, pid, "NoNewPrivs"))
			require.Equal(t, "0000000000000000", procStatus(t, pid, "CapEff"))
			wantBnd := "0000000000000000"
			if len(tc.wantCaps) > 0 {
				wantBnd = "0000000000000400" // CAP_NET_BIND_SERVICE (10)
			}
			require.Equal(t, wantBnd, procStatus(t, pid, "CapBnd"), "a dropped capability could be regained")

			requireServes(t, c.Port)
			// A bench command still runs and writes its site folder.
			var out bytes.Buffer
			err = rt.Exec(ctx, bench, &out, "--site", "nosuch.test", "migrate")
			var execErr *ExecError
			require.ErrorAs(t, err, &execErr, "a site that does not exist fails as a bench command, not as an exec")

			// Limits set later without memory fall back to the default too.
			require.NoError(t, rt.SetLimits(ctx, bench, agentapi.Limits{MemoryBytes: 300 << 20}))
			require.NoError(t, rt.SetLimits(ctx, bench, agentapi.Limits{}))
			res, err = cli.ContainerInspect(ctx, ContainerName(bench), client.ContainerInspectOptions{})
			require.NoError(t, err)
			defaultMemory := opts.MemoryBytes
			if defaultMemory == 0 {
				defaultMemory = DefaultMemoryBytes
			}
			require.Equal(t, defaultMemory, res.Container.HostConfig.Memory)

			require.NoError(t, rt.Remove(ctx, bench))
			_, err = cli.ContainerInspect(ctx, ContainerName(bench), client.ContainerInspectOptions{})
			require.Error(t, err, "Remove left the agent's own container")
			require.NoError(t, rt.Remove(ctx, bench), "Remove is idempotent")
		})
	}
}

// dialFrom connects to addr from the network namespace of the process pid
// (a container's), as that container would.
func dialFrom(t *testing.T, pid int, addr string) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, in the
		// container's namespace.
		runtime.LockOSThread()
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns: %w", err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	return <-errc
}

// TestStart_TwoBenches_CannotReachEachOther_ReachTheHost: on Docker's
// default bridge a bench reached every other bench's ports directly, past
// nginx. Bench containers join a network whose containers cannot reach each
// other; they still reach the host and serve on their published port.
func TestStart_TwoBenches_CannotReachEachOther_ReachTheHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := benchimage.Build(ctx, t, cli)
	rt := New(cli, Options{Root: t.TempDir(), Label: testLabel})

	type started struct {
		pid  int
		ip   string
		port int
	}
	var benches []started
	for range 2 {
		bench := benchName(t) + fmt.Sprint(len(benches))
		c, err := rt.Prepare(bench, image, agentapi.Limits{})
		require.NoError(t, err)
		removeOnCleanup(t, cli, bench)
		require.NoError(t, rt.Start(ctx, c))
		res, err := cli.ContainerInspect(ctx, ContainerName(bench), client.ContainerInspectOptions{})
		require.NoError(t, err)
		require.Equal(t, DefaultNetwork, string(res.Container.HostConfig.NetworkMode))
		ep := res.Container.NetworkSettings.Networks[DefaultNetwork]
		require.NotNil(t, ep, "on the benches' network")
		requireServes(t, c.Port)
		benches = append(benches, started{pid: res.Container.State.Pid, ip: ep.IPAddress.String(), port: c.Port})
	}
	a, b := benches[0], benches[1]
	require.NoError(t, dialFrom(t, b.pid, net.JoinHostPort(b.ip, "8000")), "a bench reaches its own port")
	require.Error(t, dialFrom(t, a.pid, net.JoinHostPort(b.ip, "8000")), "a bench reaches another bench's port")
	require.Error(t, dialFrom(t, b.pid, net.JoinHostPort(a.ip, "8000")), "a bench reaches another bench's port")

	// The host, on the network's gateway, as MariaDB is reached.
	nw, err := cli.NetworkInspect(ctx, DefaultNetwork, client.NetworkInspectOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, nw.Network.IPAM.Config)
	l, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	gw := nw.Network.IPAM.Config[0].Gateway.String()
	require.NoError(t, dialFrom(t, a.pid, net.JoinHostPort(gw, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))), "a bench reaches the host")
}

// A bench's folder is closed to the host's other users: its sites'
// site_config.json hold their database passwords, readable by all as Frappe
// writes them.
func TestPrepare_BenchFolder_ClosedToOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("bench folders are owned by uid 1000: run as root")
	}
	rt := New(nil, Options{Root: t.TempDir(), Label: testLabel})
	_, err := rt.Prepare("closed", "image", agentapi.Limits{})
	require.NoError(t, err)
	fi, err := os.Stat(rt.Dir("closed"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o750), fi.Mode().Perm())
}
