package benches

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/test/bench/benchimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
)

// syncBuffer is a log the supervisor writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testSupervisorOptions are short backoffs, so a test sees several starts.
func testSupervisorOptions(log *syncBuffer) SupervisorOptions {
	return SupervisorOptions{
		Logger:     slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff: 200 * time.Millisecond, MaxBackoff: 1600 * time.Millisecond,
		StartGrace: 2 * time.Second, ResyncInterval: time.Second,
	}
}

// runSupervisor starts a supervisor of rt, closed when the test ends.
func runSupervisor(ctx context.Context, t *testing.T, rt *Runtime, opts SupervisorOptions) *Supervisor {
	t.Helper()
	s := NewSupervisor(rt, opts)
	s.Start(ctx)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// newBench makes a bench through the runtime, with its container created and,
// when start, started.
func newBench(ctx context.Context, t *testing.T, rt *Runtime, cli *client.Client, image string, start bool) Config {
	t.Helper()
	bench := benchName(t)
	c, err := rt.Prepare(bench, image, agentapi.Limits{MemoryBytes: 256 << 20})
	require.NoError(t, err)
	removeOnCleanup(t, cli, bench)
	if start {
		require.NoError(t, rt.Start(ctx, c))
	} else {
		_, err := rt.create(ctx, c)
		require.NoError(t, err)
	}
	return c
}

// counts reads the supervisor's counters of bench; a bench it does not
// export fails the test.
func counts(t *testing.T, s *Supervisor, bench string) (starts, failures float64) {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	require.NoError(t, s.Update(context.Background(), ch))
	close(ch)
	found := 0
	for m := range ch {
		var pb dto.Metric
		require.NoError(t, m.Write(&pb))
		if pb.GetLabel()[0].GetValue() != bench {
			continue
		}
		found++
		switch desc := m.Desc().String(); {
		case strings.Contains(desc, "hybrid_bench_container_agent_starts_total"):
			starts = pb.GetCounter().GetValue()
		case strings.Contains(desc, "hybrid_bench_container_agent_start_failures_total"):
			failures = pb.GetCounter().GetValue()
		}
	}
	require.Equal(t, 2, found, "both counters of bench %s", bench)
	return starts, failures
}

func inspect(ctx context.Context, t *testing.T, cli *client.Client, bench string) *container.State {
	t.Helper()
	res, err := cli.ContainerInspect(ctx, ContainerName(bench), client.ContainerInspectOptions{})
	require.NoError(t, err)
	return res.Container.State
}

// waitRunningSince waits until the bench's container runs again, started
// after before.
func waitRunningSince(ctx context.Context, t *testing.T, cli *client.Client, bench string, before string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := inspect(ctx, t, cli, bench)
		if st.Running && st.StartedAt != before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bench %s is not running again after %s: %s, exit code %d", bench, within, st.Status, st.ExitCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireStaysStopped checks for a while that the bench's container is not
// started again.
func requireStaysStopped(ctx context.Context, t *testing.T, cli *client.Client, bench string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		st := inspect(ctx, t, cli, bench)
		require.False(t, st.Running || st.Restarting, "bench %s was started again: %s", bench, st.Status)
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSupervisor_BenchKilledOrStopped_StartedAgainAndCounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := benchimage.Build(ctx, t, cli)
	rt := New(cli, Options{Root: t.TempDir(), Label: testLabel})
	c := newBench(ctx, t, rt, cli, image, true)
	var log syncBuffer
	s := runSupervisor(ctx, t, rt, testSupervisorOptions(&log))
	requireServes(t, c.Port)
	starts, failures := counts(t, s, c.Name)
	require.Zero(t, starts, "a known bench is exported at 0 from the start")
	require.Zero(t, failures)

	// docker kill, as an operator would: Docker's restart policy does not
	// bring it back.
	before := inspect(ctx, t, cli, c.Name).StartedAt
	_, err := cli.ContainerKill(ctx, ContainerName(c.Name), client.ContainerKillOptions{})
	require.NoError(t, err)
	waitRunningSince(ctx, t, cli, c.Name, before, 10*time.Second)
	requireServes(t, c.Port)
	starts, failures = counts(t, s, c.Name)
	require.Equal(t, 1.0, starts)
	require.Zero(t, failures)
	require.Contains(t, log.String(), "bench="+c.Name)
	require.Contains(t, log.String(), "exit_code=137 oom_killed=false")

	// docker stop right after: a stop is no failure of the agent's start.
	before = inspect(ctx, t, cli, c.Name).StartedAt
	timeout := 5
	_, err = cli.ContainerStop(ctx, ContainerName(c.Name), client.ContainerStopOptions{Timeout: &timeout})
	require.NoError(t, err)
	waitRunningSince(ctx, t, cli, c.Name, before, 10*time.Second)
	requireServes(t, c.Port)
	starts, failures = counts(t, s, c.Name)
	require.Equal(t, 2.0, starts)
	require.Zero(t, failures, "the start before the stop had held")
	require.Equal(t, 2, strings.Count(log.String(), "started again a bench container that stopped without the agent"),
		"one line per start:\n%s", log.String())
}

func TestSupervisor_StoppedByTheAgent_NotStartedAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := benchimage.Build(ctx, t, cli)
	rt := New(cli, Options{Root: t.TempDir(), Label: testLabel, IntentGrace: 2 * time.Second})
	var log syncBuffer
	s := runSupervisor(ctx, t, rt, testSupervisorOptions(&log))

	t.Run("removed", func(t *testing.T) {
		c := newBench(ctx, t, rt, cli, image, true)
		requireServes(t, c.Port)
		require.NoError(t, rt.Remove(ctx, c.Name))
		time.Sleep(time.Second)
		_, err := cli.ContainerInspect(ctx, ContainerName(c.Name), client.ContainerInspectOptions{})
		require.Error(t, err, "the removed bench's container is back")
		starts, _ := counts(t, s, c.Name)
		require.Zero(t, starts)
	})

	t.Run("stopped on purpose", func(t *testing.T) {
		c := newBench(ctx, t, rt, cli, image, true)
		requireServes(t, c.Port)
		done := rt.intend(c.Name) // as Restart, SetLimits or Remove do
		timeout := 5
		_, err := cli.ContainerStop(ctx, ContainerName(c.Name), client.ContainerStopOptions{Timeout: &timeout})
		require.NoError(t, err)
		done()
		// Several backoffs, within the grace.
		requireStaysStopped(ctx, t, cli, c.Name, 1500*time.Millisecond)
		starts, _ := counts(t, s, c.Name)
		require.Zero(t, starts)

		// Once the grace is over, a stop found later is the supervisor's
		// (the periodic look finds it, as after a missed event).
		before := inspect(ctx, t, cli, c.Name).StartedAt
		waitRunningSince(ctx, t, cli, c.Name, before, 10*time.Second)
		starts, _ = counts(t, s, c.Name)
		require.Equal(t, 1.0, starts)
	})
}

// A bench whose process exits at once. Its restart policy is off (made by
// hand, or by an older agent): with unless-stopped, Docker's own backoff
// restarts it, which is BenchContainerCrashLooping's case (see below).
func TestSupervisor_BenchExitsAtOnce_BacksOffAndCountsFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := tickImage(ctx, t, cli)
	// "burner serve --port 8000" is no burner mode: it exits 2 at once.
	rt := New(cli, Options{Root: t.TempDir(), Label: testLabel, Command: []string{"burner"}})

	t.Run("no restart policy", func(t *testing.T) {
		c := newBench(ctx, t, rt, cli, image, false)
		_, err := cli.ContainerUpdate(ctx, ContainerName(c.Name), client.ContainerUpdateOptions{
			RestartPolicy: &container.RestartPolicy{Name: container.RestartPolicyDisabled},
		})
		require.NoError(t, err)
		var log syncBuffer
		opts := testSupervisorOptions(&log)
		opts.MinBackoff, opts.MaxBackoff = 400*time.Millisecond, 3200*time.Millisecond
		s := runSupervisor(ctx, t, rt, opts)

		stream := cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
			Add("type", string(events.ContainerEventType)).Add("container", ContainerName(c.Name)).
			Add("event", string(events.ActionStart), string(events.ActionDie))})
		_, err = cli.ContainerStart(ctx, ContainerName(c.Name), client.ContainerStartOptions{})
		require.NoError(t, err)
		// From each exit to the supervisor's next start: at least the
		// backoff, plus what Docker takes to start a container.
		var gaps []time.Duration
		var died time.Time
		for len(gaps) < 5 {
			select {
			case msg := <-stream.Messages:
				at := time.Unix(0, msg.TimeNano)
				switch msg.Action {
				case events.ActionDie:
					died = at
				case events.ActionStart:
					if !died.IsZero() {
						gaps = append(gaps, at.Sub(died))
						died = time.Time{}
					}
				}
			case err := <-stream.Err:
				t.Fatalf("events: %v", err)
			case <-time.After(15 * time.Second):
				t.Fatalf("only %d starts again of the bench that exits at once", len(gaps))
			}
		}
		t.Logf("from exit to start again: %v", gaps)
		// 400 ms, 800 ms, 1.6 s, 3.2 s, then 3.2 s at most: the backoff
		// doubles up to the maximum. The slack for Docker (2.5 s) keeps the
		// first gap below the fourth and the last below a further doubling.
		for i, want := range []time.Duration{400, 800, 1600, 3200, 3200} {
			want *= time.Millisecond
			require.GreaterOrEqual(t, gaps[i], want, "gap %d is shorter than its backoff: %v", i, gaps)
			require.Less(t, gaps[i], want+2500*time.Millisecond, "gap %d is longer than its backoff: %v", i, gaps)
		}

		require.Eventually(t, func() bool {
			starts, failures := counts(t, s, c.Name)
			return starts >= 5 && failures >= 5
		}, 5*time.Second, 50*time.Millisecond, "every start that did not hold is a failure")
		starts, failures := counts(t, s, c.Name)
		require.LessOrEqual(t, failures, starts)
		require.Contains(t, log.String(), "stopped_by=die exit_code=2 oom_killed=false")
	})

	t.Run("restart policy takes over", func(t *testing.T) {
		c := newBench(ctx, t, rt, cli, image, true)
		var log syncBuffer
		s := runSupervisor(ctx, t, rt, testSupervisorOptions(&log))
		require.Eventually(t, func() bool {
			st := inspect(ctx, t, cli, c.Name)
			return st.Running || st.Restarting
		}, 5*time.Second, 50*time.Millisecond)
		_, err := cli.ContainerKill(ctx, ContainerName(c.Name), client.ContainerKillOptions{})
		if err != nil {
			t.Logf("kill: %v (it was between two lives)", err)
		}
		// The supervisor starts it once; it exits at once, and from there
		// Docker's policy restarts it: the supervisor does not fight it.
		require.Eventually(t, func() bool {
			starts, failures := counts(t, s, c.Name)
			return starts == 1 && failures == 1
		}, 10*time.Second, 50*time.Millisecond)
		time.Sleep(3 * time.Second)
		starts, failures := counts(t, s, c.Name)
		require.Equal(t, 1.0, starts, "the supervisor fought Docker's restart policy:\n%s", log.String())
		require.Equal(t, 1.0, failures)
		res, err := cli.ContainerInspect(ctx, ContainerName(c.Name), client.ContainerInspectOptions{})
		require.NoError(t, err)
		require.Greater(t, res.Container.RestartCount, 0, "Docker's policy restarted it")
	})
}

func TestSupervisor_AgentStartsWhileBenchStopped_StartsIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	image := benchimage.Build(ctx, t, cli)
	rt := New(cli, Options{Root: t.TempDir(), Label: testLabel})
	stopped := newBench(ctx, t, rt, cli, image, true)
	requireServes(t, stopped.Port)
	timeout := 5
	_, err := cli.ContainerStop(ctx, ContainerName(stopped.Name), client.ContainerStopOptions{Timeout: &timeout})
	require.NoError(t, err)
	// Being created by a job: never started, not the supervisor's.
	creating := newBench(ctx, t, rt, cli, image, false)
	// Archived: no longer in the agent's records.
	archived := newBench(ctx, t, rt, cli, image, true)
	_, err = cli.ContainerStop(ctx, ContainerName(archived.Name), client.ContainerStopOptions{Timeout: &timeout})
	require.NoError(t, err)
	_, err = rt.Archive(archived.Name, time.Now())
	require.NoError(t, err)
	before := inspect(ctx, t, cli, stopped.Name).StartedAt

	var log syncBuffer
	s := runSupervisor(ctx, t, rt, testSupervisorOptions(&log))
	waitRunningSince(ctx, t, cli, stopped.Name, before, 10*time.Second)
	requireServes(t, stopped.Port)
	starts, failures := counts(t, s, stopped.Name)
	require.Equal(t, 1.0, starts)
	require.Zero(t, failures)
	require.Contains(t, log.String(), "stopped_by=\"found stopped\" exit_code=0")

	require.Equal(t, container.StateCreated, inspect(ctx, t, cli, creating.Name).Status, "a bench being created was started")
	starts, _ = counts(t, s, creating.Name)
	require.Zero(t, starts)
	requireStaysStopped(ctx, t, cli, archived.Name, time.Second)
}
