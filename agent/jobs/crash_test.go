//go:build unix

package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// The crash test runs a Queue in a child process (this test binary, running
// TestHelperProcess) and kills it with SIGKILL in the middle of steps, again
// and again, then lets it finish. Each step of the "crash" type
//   - takes an flock on a file of its own, and records a violation if it is
//     held: two copies of the step running at once;
//   - appends "start <attempt>" to its log, prints "START" for the parent,
//     sleeps 50-150 ms, and appends "done".
//
// After each kill the parent reads which steps the store has as Success and
// how many times each had started; a step Success then must never start
// again.
const (
	helperEnv    = "HYBRID_JOBS_HELPER_DIR"
	crashKills   = 20
	crashOnce    = 2 // jobs of a type that does not resume
	crashMinStep = 50 * time.Millisecond
)

// crashJobs is the resumable jobs submitted: enough work that every kill
// lands before the last one ends, also under the race detector, where a
// child starts slower and so gets further between kills.
var crashJobs = map[bool]int{false: 16, true: 48}[raceEnabled]

func crashTypes(dir string) []Type {
	steps := func(json.RawMessage) ([]Step, error) {
		var out []Step
		for _, name := range []string{"s1", "s2", "s3"} {
			out = append(out, Step{Name: name, Run: func(ctx context.Context, run *Run) error {
				return crashStep(ctx, dir, run, name)
			}})
		}
		return out, nil
	}
	return []Type{
		{Name: "crash", Steps: steps},
		{Name: "crash.once", Steps: steps, NotResumable: true},
	}
}

func crashStep(ctx context.Context, dir string, run *Run, step string) error {
	base := filepath.Join(dir, run.JobID()+"."+step)
	lock, err := os.OpenFile(base+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("VIOLATION.%s.%d", filepath.Base(base), time.Now().UnixNano())), nil, 0o600)
		return fmt.Errorf("step already running: %w", err)
	}
	appendLine := func(line string) error {
		f, err := os.OpenFile(base+".log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintln(f, line)
		return err
	}
	if err := appendLine(fmt.Sprintf("start %d", run.Attempt())); err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "START %s %s\n", run.JobID(), step)
	run.Log("attempt %d", run.Attempt())
	select {
	case <-time.After(crashMinStep + rand.N(2*crashMinStep)):
	case <-ctx.Done():
		return ctx.Err()
	}
	return appendLine("done")
}

// TestHelperProcess is the child of the crash test; it does nothing alone.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("the crash test's child process")
	}
	ctx := context.Background()
	q, err := Open(ctx, Options{Path: filepath.Join(dir, "jobs.db"), Types: crashTypes(dir), Workers: 2, MaxAttempts: 1000})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	q.Start(ctx)
	for {
		pending, err1 := q.List(ctx, agentapi.Pending, 1)
		running, err2 := q.List(ctx, agentapi.Running, 1)
		if err1 != nil || err2 != nil {
			fmt.Fprintln(os.Stderr, err1, err2)
			os.Exit(2)
		}
		if len(pending)+len(running) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := q.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

type crashChild struct {
	cmd   *exec.Cmd
	lines chan string // closed when the child closes its stdout
}

func startCrashChild(t *testing.T, dir string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &crashChild{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

// waitStarts waits for the child's n-th step start; false when it exited first.
func (c *crashChild) waitStarts(t *testing.T, n int) bool {
	timeout := time.After(10 * time.Second)
	for n > 0 {
		select {
		case line, ok := <-c.lines:
			if !ok {
				return false
			}
			if strings.HasPrefix(line, "START ") {
				n--
			}
		case <-timeout:
			t.Fatal("no step started in 10s")
		}
	}
	return true
}

type stepKey struct{ job, step string }

// crashSnapshot reads step states from the store of a dead child, and how
// many times each step has started by its log.
func crashSnapshot(t *testing.T, dir string) map[stepKey]agentapi.Status {
	t.Helper()
	w, r, err := openDB(t.Context(), filepath.Join(dir, "jobs.db"))
	require.NoError(t, err)
	defer w.Close()
	defer r.Close()
	rows, err := r.QueryContext(t.Context(), `SELECT j.id, s.name, s.status FROM steps s JOIN jobs j ON j.seq = s.job_seq`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[stepKey]agentapi.Status{}
	for rows.Next() {
		var k stepKey
		var s agentapi.Status
		require.NoError(t, rows.Scan(&k.job, &k.step, &s))
		out[k] = s
	}
	require.NoError(t, rows.Err())
	return out
}

func stepStarts(t *testing.T, dir string, k stepKey) (starts, dones int) {
	b, err := os.ReadFile(filepath.Join(dir, k.job+"."+k.step+".log"))
	if os.IsNotExist(err) {
		return 0, 0
	}
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "start "):
			starts++
		case line == "done":
			dones++
		}
	}
	return starts, dones
}

func TestCrash_KilledMidStep_EveryJobEndsNoStepTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a child process 20 times")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	ctx := t.Context()

	// Jobs submitted before the first child starts: Start must pick them up.
	q, err := Open(ctx, Options{Path: filepath.Join(dir, "jobs.db"), Types: crashTypes(dir)})
	require.NoError(t, err)
	var ids []string
	for i := range crashJobs + crashOnce {
		typ := "crash"
		if i%9 == 1 { // the 2nd and 11th
			typ = "crash.once"
		}
		id := fmt.Sprintf("%s-%02d", typ, i)
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: typ})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	require.NoError(t, q.Close())

	started := time.Now()
	doneAt := map[stepKey]int{} // starts of a step when the store first had it Success
	record := func() (running int) {
		for k, s := range crashSnapshot(t, dir) {
			if s == agentapi.Running {
				running++
			}
			if _, seen := doneAt[k]; !seen && s == agentapi.Success {
				doneAt[k], _ = stepStarts(t, dir, k)
			}
		}
		return running
	}
	kills, interrupted, topUps := 0, 0, 0
	for kills < crashKills {
		child := startCrashChild(t, dir)
		if !child.waitStarts(t, 1+rng.IntN(6)) {
			// Every job ended before this kill (a slow or busy machine gets
			// further between kills): more work, so that every kill lands.
			require.NoError(t, child.cmd.Wait())
			q, err := Open(ctx, Options{Path: filepath.Join(dir, "jobs.db"), Types: crashTypes(dir)})
			require.NoError(t, err)
			for range 8 {
				id := fmt.Sprintf("crash-more-%02d", topUps)
				topUps++
				_, _, err := q.Submit(ctx, Submission{ID: id, Type: "crash"})
				require.NoError(t, err)
				ids = append(ids, id)
			}
			require.NoError(t, q.Close())
			continue
		}
		time.Sleep(time.Duration(rng.Int64N(int64(crashMinStep)))) // within the step: it lasts at least crashMinStep
		require.NoError(t, child.cmd.Process.Signal(unix.SIGKILL))
		err := child.cmd.Wait()
		require.Error(t, err, "killed")
		kills++
		interrupted += record()
	}

	child := startCrashChild(t, dir)
	go func() {
		for range child.lines {
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- child.cmd.Wait() }()
	select {
	case err := <-exited:
		require.NoError(t, err, "the last child")
	case <-time.After(30 * time.Second):
		child.cmd.Process.Kill()
		t.Fatal("the last child did not finish in 30s")
	}
	record()

	violations, err := filepath.Glob(filepath.Join(dir, "VIOLATION.*"))
	require.NoError(t, err)
	assert.Empty(t, violations, "steps that ran twice at once")

	q = openTestQueue(t, Options{Path: filepath.Join(dir, "jobs.db"), Types: crashTypes(dir)})
	jobs, err := q.Get(ctx, ids...)
	require.NoError(t, err)
	resumed, reruns, failedOnce := 0, 0, 0
	for _, j := range jobs {
		if j.Type == "crash" {
			assert.Equal(t, agentapi.Success, j.Status, "job %s: %s", j.ID, j.Error)
		} else if j.Status == agentapi.Failure {
			assert.Equal(t, "interrupted", j.Error, j.ID)
			failedOnce++
		}
		assert.True(t, j.Status.Ended(), j.ID)
		if j.Attempts > 1 {
			resumed++
		}
		for _, s := range j.Steps {
			k := stepKey{j.ID, s.Name}
			starts, dones := stepStarts(t, dir, k)
			assert.NotEqual(t, agentapi.Running, s.Status, "%v", k)
			assert.GreaterOrEqual(t, s.Attempts, starts, "%v: every start recorded", k)
			if s.Status == agentapi.Success {
				assert.GreaterOrEqual(t, dones, 1, "%v", k)
			}
			if starts > 1 {
				reruns += starts - 1
			}
			if n, ok := doneAt[k]; ok {
				assert.Equal(t, n, starts, "%v started again after the store had it Success", k)
			}
		}
	}
	running, err := q.List(ctx, agentapi.Running, 0)
	require.NoError(t, err)
	assert.Empty(t, running)
	t.Logf("%d kills in %s (%d steps Running in the store at a kill), %d of %d jobs resumed, %d steps re-run, "+
		"%d of %d non-resumable jobs interrupted", kills, time.Since(started).Round(time.Millisecond), interrupted,
		resumed, len(jobs), reruns, failedOnce, crashOnce)
	assert.Equal(t, crashKills, kills, "jobs ended before every kill landed")
	assert.Positive(t, resumed)
}
