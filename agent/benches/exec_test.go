package benches

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/burner/burnerimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
)

const testLabel = "io.hybrid.test.bench"

// tickImage is the burner program laid out as a bench image (working
// directory /home/frappe/frappe-bench, user 1000:1000), so the runtime can
// exec its long-running "tick" command as a bench command.
func tickImage(ctx context.Context, t *testing.T, cli *client.Client) string {
	t.Helper()
	return dockertest.BuildStatic(ctx, t, cli, dockertest.StaticImage{
		Tag: "hybrid-test/burner-bench:latest", Package: burnerimage.Package, Binary: "burner",
		Dockerfile: "FROM scratch\nCOPY burner /usr/local/bin/burner\nCOPY --chown=1000:1000 home /home\n" +
			"ENV PATH=/usr/local/bin\nWORKDIR /home/frappe/frappe-bench\nUSER 1000:1000\nCMD [\"burner\", \"idle\"]\n",
		Dirs: []string{"home", "home/frappe", "home/frappe/frappe-bench"},
	})
}

func benchName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "rt" + hex.EncodeToString(b)
}

// tickBench runs an idle burner container as the agent's bench, its sites
// folder a host folder the test reads, and returns the runtime, the bench,
// the container's id and the sites folder.
func tickBench(ctx context.Context, t *testing.T, grace time.Duration) (*Runtime, string, string, string) {
	t.Helper()
	cli := dockertest.Client(t)
	image := tickImage(ctx, t, cli)
	bench := benchName(t)
	sites := t.TempDir()
	require.NoError(t, os.Chown(sites, Owner, Owner))
	id := dockertest.Run(ctx, t, cli, ContainerName(bench),
		&container.Config{Image: image, Labels: map[string]string{testLabel: bench}},
		&container.HostConfig{Binds: []string{sites + ":" + benchDir + "/sites"}})
	rt := New(cli, Options{Root: t.TempDir(), Label: testLabel, Command: []string{"burner"}, KillGrace: grace})
	return rt, bench, id, sites
}

// lines counts the lines of a file the command ticks into.
func lines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	return bytes.Count(data, []byte("\n"))
}

func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for lines(t, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s has fewer than %d lines after 20 s", path, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireStopsGrowing checks that nothing writes to the files any more.
func requireStopsGrowing(t *testing.T, paths ...string) {
	t.Helper()
	before := make([]int, len(paths))
	for i, p := range paths {
		before[i] = lines(t, p)
	}
	time.Sleep(600 * time.Millisecond) // six ticks
	for i, p := range paths {
		require.Equal(t, before[i], lines(t, p), "%s still grows after Exec returned", p)
	}
}

// liveProcs lists the command lines of the container's live processes, seen
// in the host's /proc by their cgroup (zombies are dead and left out).
func liveProcs(t *testing.T, containerID string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil || !bytes.Contains(cg, []byte(containerID)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		if f := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+1:]); len(f) > 0 && string(f[0]) == "Z" {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		out = append(out, strconv.Itoa(pid)+" "+strings.TrimSpace(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))))
	}
	return out
}

// requireOnlyInit checks that the container runs nothing but its own command.
func requireOnlyInit(t *testing.T, containerID string) {
	t.Helper()
	procs := liveProcs(t, containerID)
	require.Len(t, procs, 1, "processes left in the container: %v", procs)
	require.Contains(t, procs[0], "burner idle")
}

type execResult struct {
	err     error
	elapsed time.Duration
}

// startExec runs a bench command in the background; its result comes on the
// channel, with how long after the returned cancel it came.
func startExec(ctx context.Context, rt *Runtime, bench string, args ...string) (<-chan execResult, func() time.Time) {
	ctx, cancel := context.WithCancel(ctx)
	var cancelledAt time.Time
	done := make(chan execResult, 1)
	stop := make(chan struct{})
	go func() {
		err := rt.Exec(ctx, bench, &bytes.Buffer{}, args...)
		<-stop
		done <- execResult{err: err, elapsed: time.Since(cancelledAt)}
	}()
	return done, func() time.Time {
		cancelledAt = time.Now()
		cancel()
		close(stop)
		return cancelledAt
	}
}

func TestExec_ContextCancelled_EndsCommandAndItsChildrenBeforeReturning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rt, bench, id, sites := tickBench(ctx, t, 10*time.Second)

	done, stop := startExec(ctx, rt, bench, "tick", "sites/tick.log", "--child")
	waitLines(t, filepath.Join(sites, "tick.log"), 3)
	waitLines(t, filepath.Join(sites, "tick.log.child"), 3)
	require.Len(t, liveProcs(t, id), 3, "the command and its child should run beside the container's own")
	stop()

	var res execResult
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Exec did not return within a minute of its context ending")
	}
	require.ErrorIs(t, res.err, context.Canceled)
	require.Less(t, res.elapsed, 8*time.Second, "a command that honours SIGTERM ends well within the grace")
	requireOnlyInit(t, id)
	requireStopsGrowing(t, filepath.Join(sites, "tick.log"), filepath.Join(sites, "tick.log.child"))
}

func TestExec_CommandIgnoresSIGTERM_KilledAfterGrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const grace = 1500 * time.Millisecond
	rt, bench, id, sites := tickBench(ctx, t, grace)

	done, stop := startExec(ctx, rt, bench, "tick", "sites/tick.log", "--ignore-term", "--child")
	waitLines(t, filepath.Join(sites, "tick.log.child"), 3)
	stop()

	res := <-done
	require.ErrorIs(t, res.err, context.Canceled)
	require.GreaterOrEqual(t, res.elapsed, grace, "SIGKILL came before the grace ended")
	require.Less(t, res.elapsed, grace+8*time.Second)
	requireOnlyInit(t, id)
	requireStopsGrowing(t, filepath.Join(sites, "tick.log"), filepath.Join(sites, "tick.log.child"))
}

func TestExec_CommandClosesOutputButRuns_WaitedForUntilTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rt, bench, id, sites := tickBench(ctx, t, 10*time.Second)

	timeout := 2 * time.Second
	execCtx, cancelExec := context.WithTimeoutCause(ctx, timeout, errors.New("job timed out"))
	defer cancelExec()
	start := time.Now()
	err := rt.Exec(execCtx, bench, &bytes.Buffer{}, "tick", "sites/tick.log", "--close-output")
	elapsed := time.Since(start)

	require.GreaterOrEqual(t, elapsed, timeout, "Exec returned when the output closed, with the command still running")
	require.EqualError(t, err, "job timed out", "Exec returns its context's cause")
	require.Greater(t, lines(t, filepath.Join(sites, "tick.log")), 5)
	requireOnlyInit(t, id)
	requireStopsGrowing(t, filepath.Join(sites, "tick.log"))
}

func TestExec_CommandFails_ExecErrorWithExitCodeAndOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rt, bench, _, _ := tickBench(ctx, t, time.Second)

	err := rt.ExecWith(ctx, bench, &bytes.Buffer{}, ExecOptions{Env: []string{"DB_PASSWORD=s3cret-in-env"}}, "tick")
	var execErr *ExecError
	require.ErrorAs(t, err, &execErr)
	require.Equal(t, 2, execErr.ExitCode)
	require.Contains(t, execErr.Output, "usage: burner")
	require.NotContains(t, err.Error(), "s3cret-in-env")
	require.NoError(t, rt.Exec(ctx, bench, &bytes.Buffer{}, "exit", "0"))
}

func TestExecError_OutputHoldsEnvValues_TextNeverHoldsThem(t *testing.T) {
	env := []string{"DB_PASSWORD=hunter2-long-secret", "S3_SECRET=AKIAxyz/with=equals", "FLAG=1", "EMPTY="}
	t.Run("whole output", func(t *testing.T) {
		var tail tailBuffer
		_, _ = tail.Write([]byte("connecting with hunter2-long-secret\nkey AKIAxyz/with=equals refused\nFLAG is 1\n"))
		err := newExecError([]string{"new-site", "a.test"}, 1, &tail, env)
		text := err.Error()
		require.NotContains(t, text, "hunter2-long-secret")
		require.NotContains(t, text, "AKIAxyz/with=equals")
		require.Contains(t, text, "[redacted]")
		require.Contains(t, text, "[new-site a.test] exited 1")
		require.Contains(t, text, "FLAG is 1", "short values are flags, left as they are")
	})
	t.Run("secret cut by the tail's start", func(t *testing.T) {
		var tail tailBuffer
		_, _ = tail.Write([]byte("password hunter2-long-secret\n"))
		_, _ = tail.Write(bytes.Repeat([]byte("x"), 4096-len("-long-secret\n")-len("end\n")))
		_, _ = tail.Write([]byte("end\n"))
		require.True(t, bytes.HasPrefix(tail.b, []byte("-long-secret\n")), "the tail should start inside the secret")
		text := newExecError([]string{"backup"}, 1, &tail, env).Error()
		require.NotContains(t, text, "long-secret")
		require.NotContains(t, text, "hunter2")
		require.Contains(t, text, "end")
	})
	t.Run("env never formatted", func(t *testing.T) {
		text := (&ExecError{Args: []string{"migrate"}, ExitCode: 1, Output: "failed"}).Error()
		for _, kv := range env {
			_, v, _ := strings.Cut(kv, "=")
			if len(v) >= minRedacted {
				require.NotContains(t, text, v)
			}
		}
	})
}

func TestTailBuffer_HugeOutput_KeepsOnlyLast4KiB(t *testing.T) {
	var tail tailBuffer
	for range 100 {
		_, _ = tail.Write(bytes.Repeat([]byte("a"), 10000))
	}
	_, _ = tail.Write([]byte("the end"))
	require.Len(t, tail.b, 4096)
	require.True(t, strings.HasSuffix(tail.String(), "the end"))
	require.True(t, tail.cut)
}

func TestOpenTree_ProcessNotTheContainers_RefusedAsMayStillRun(t *testing.T) {
	// The test's own process stands for a pid that, seen from an agent in
	// another pid namespace, belongs to something else.
	_, err := openTree(os.Getpid(), strings.Repeat("ab", 32))
	require.ErrorContains(t, err, "is not visible to the agent as a process of container abababababab")
	_, err = openTree(0, strings.Repeat("ab", 32))
	require.ErrorContains(t, err, "no process id")
}
