package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/test/burner/burnerimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
)

// testLabel marks every container these tests create, so leftovers of a
// killed run can be found and removed.
const testLabel = "io.hybrid.test"

type scraped struct {
	values map[string]float64 // "<metric>/<container name>" -> value
	names  map[string]bool    // container names seen
	err    error
}

func (s scraped) get(metric, name string) (float64, bool) {
	v, ok := s.values[metric+"/"+name]
	return v, ok
}

func scrape(t *testing.T, c *Collector) scraped {
	t.Helper()
	s := scraped{values: map[string]float64{}, names: map[string]bool{}}
	ch := make(chan prometheus.Metric, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			metric, labels, v := metricValue(t, m)
			if n, ok := labels["name"]; ok {
				s.values[metric+"/"+n] = v
				s.names[n] = true
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.err = c.Update(ctx, ch)
	cancel()
	close(ch)
	<-done
	return s
}

// pollScrape scrapes every 200 ms until cond holds or timeout passes, and
// returns the last scrape.
func pollScrape(t *testing.T, c *Collector, timeout time.Duration, what string, cond func(scraped) bool) scraped {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := scrape(t, c)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last scrape error: %v; values: %v", timeout, what, s.err, s.values)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type testContainer struct {
	name   string
	bench  string // "" = not labelled
	cmd    []string
	hc     container.HostConfig
	health *container.HealthConfig
}

// runContainer runs a test container, labelled as a bench when tc.bench is set.
func runContainer(ctx context.Context, t *testing.T, cli *client.Client, image string, tc testContainer) string {
	t.Helper()
	labels := map[string]string{testLabel: "exporters-bench"}
	if tc.bench != "" {
		labels[DefaultLabel] = tc.bench
	}
	hc := tc.hc
	return dockertest.Run(ctx, t, cli, tc.name,
		&container.Config{Image: image, Cmd: tc.cmd, Labels: labels, Healthcheck: tc.health}, &hc)
}

// removeLeftovers removes containers of earlier runs of these tests that
// were killed before their cleanup ran.
func removeLeftovers(ctx context.Context, t *testing.T, cli *client.Client) {
	t.Helper()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", testLabel+"=exporters-bench"),
	})
	if err != nil {
		t.Fatalf("list leftover test containers: %v", err)
	}
	for _, c := range list.Items {
		if time.Since(time.Unix(c.Created, 0)) > 10*time.Minute {
			_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
}

func uniqueSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestDocker_BenchContainers_CPUOOMRestartsFromRealEngine(t *testing.T) {
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	removeLeftovers(ctx, t, cli)
	image := burnerimage.Build(ctx, t, cli)

	sfx := uniqueSuffix(t)
	burnName, idleName := "hybtest-burn-"+sfx, "hybtest-idle-"+sfx
	oomName, restartName, plainName := "hybtest-oom-"+sfx, "hybtest-restart-"+sfx, "hybtest-plain-"+sfx
	healthName := "hybtest-health-" + sfx

	// The agent runs before the benches start, as on a server: the collector
	// learns about them from start events.
	c, err := New(slog.New(slog.NewTextHandler(t.Output(), nil)), Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.Start(ctx)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	pollScrape(t, c, 10*time.Second, "the inventory to load", func(s scraped) bool { return s.err == nil })

	const memLimit = 24 << 20
	runContainer(ctx, t, cli, image, testContainer{name: burnName, bench: "bench-a-" + sfx, cmd: []string{"burn"}})
	runContainer(ctx, t, cli, image, testContainer{name: idleName, bench: "bench-b-" + sfx, cmd: []string{"idle"}})
	runContainer(ctx, t, cli, image, testContainer{name: oomName, bench: "bench-oom-" + sfx, cmd: []string{"alloc"},
		hc: container.HostConfig{Resources: container.Resources{Memory: memLimit, MemorySwap: memLimit}}})
	restartID := runContainer(ctx, t, cli, image, testContainer{name: restartName, bench: "bench-restart-" + sfx, cmd: []string{"idle"},
		hc: container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyAlways}}})
	runContainer(ctx, t, cli, image, testContainer{name: plainName, cmd: []string{"idle"}})
	runContainer(ctx, t, cli, image, testContainer{name: healthName, bench: "bench-health-" + sfx, cmd: []string{"idle"},
		health: &container.HealthConfig{Test: []string{"CMD", "/burner", "exit", "0"}, Interval: time.Second, Timeout: 5 * time.Second, Retries: 1}})

	s := pollScrape(t, c, 10*time.Second, "usage of the running benches", func(s scraped) bool {
		_, a := s.get("container_cpu_usage_seconds_total", burnName)
		_, b := s.get("container_cpu_usage_seconds_total", idleName)
		_, r := s.get("container_cpu_usage_seconds_total", restartName)
		return a && b && r
	})
	if v, _ := s.get("container_memory_working_set_bytes", idleName); v <= 0 {
		t.Errorf("container_memory_working_set_bytes of %s = %v, want > 0", idleName, v)
	}
	if v, _ := s.get("container_start_time_seconds", idleName); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("container_start_time_seconds of %s = %v, want about now", idleName, v)
	}

	t.Run("burning container's CPU moves, idle one's barely", func(t *testing.T) {
		first := scrape(t, c)
		a0, _ := first.get("container_cpu_usage_seconds_total", burnName)
		b0, _ := first.get("container_cpu_usage_seconds_total", idleName)
		start := time.Now()
		last := pollScrape(t, c, 10*time.Second, "burn CPU to move by 0.3 s", func(s scraped) bool {
			a, _ := s.get("container_cpu_usage_seconds_total", burnName)
			return a-a0 > 0.3
		})
		a1, _ := last.get("container_cpu_usage_seconds_total", burnName)
		b1, _ := last.get("container_cpu_usage_seconds_total", idleName)
		t.Logf("over %s: burning container used %.3f s of CPU, idle one %.3f s", time.Since(start).Round(time.Millisecond), a1-a0, b1-b0)
		if d := b1 - b0; d >= 0.1 {
			t.Errorf("idle container used %.3f s of CPU over %s, want < 0.1 s", d, time.Since(start).Round(time.Millisecond))
		}
	})

	t.Run("memory-limited alloc container counts one OOM event", func(t *testing.T) {
		s := pollScrape(t, c, 15*time.Second, "container_oom_events_total of "+oomName+" to reach 1", func(s scraped) bool {
			v, _ := s.get("container_oom_events_total", oomName)
			return v >= 1
		})
		if v, _ := s.get("container_oom_events_total", oomName); v != 1 {
			t.Errorf("container_oom_events_total of %s = %v, want 1", oomName, v)
		}
		if v, _ := s.get("container_spec_memory_limit_bytes", oomName); v != memLimit {
			t.Errorf("container_spec_memory_limit_bytes of %s = %v, want %d", oomName, v, memLimit)
		}
		pollScrape(t, c, 10*time.Second, oomName+" reported stopped with exit code 137", func(s scraped) bool {
			running, ok := s.get("hybrid_bench_container_running", oomName)
			code, _ := s.get("hybrid_bench_container_last_exit_code", oomName)
			return ok && running == 0 && code == 137
		})
	})

	t.Run("process killed from the host counts one restart", func(t *testing.T) {
		before, ok := scrape(t, c).get("hybrid_bench_container_restarts_total", restartName)
		if !ok {
			t.Fatalf("no hybrid_bench_container_restarts_total for %s", restartName)
		}
		insp, err := cli.ContainerInspect(ctx, restartID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("inspect %s: %v", restartName, err)
		}
		if err := syscall.Kill(insp.Container.State.Pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill pid %d of %s: %v", insp.Container.State.Pid, restartName, err)
		}
		pollScrape(t, c, 15*time.Second, "restarts of "+restartName+" to go +1 and the container to run again", func(s scraped) bool {
			v, _ := s.get("hybrid_bench_container_restarts_total", restartName)
			running, _ := s.get("hybrid_bench_container_running", restartName)
			_, usage := s.get("container_cpu_usage_seconds_total", restartName)
			return v == before+1 && running == 1 && usage
		})
	})

	t.Run("healthcheck reported from health_status events", func(t *testing.T) {
		if _, ok := scrape(t, c).get("hybrid_bench_container_healthy", idleName); ok {
			t.Errorf("hybrid_bench_container_healthy exported for %s, which has no healthcheck", idleName)
		}
		pollScrape(t, c, 15*time.Second, healthName+" reported healthy", func(s scraped) bool {
			v, ok := s.get("hybrid_bench_container_healthy", healthName)
			return ok && v == 1
		})
	})

	t.Run("unlabelled container is not exported", func(t *testing.T) {
		s := scrape(t, c)
		if s.names[plainName] {
			t.Errorf("unlabelled container %s exported", plainName)
		}
		if s.err != nil {
			t.Errorf("Update in steady state: %v", s.err)
		}
	})
}

func TestDocker_EngineUnreachable_NewSucceedsAndUpdateNamesHost(t *testing.T) {
	const host = "unix:///nonexistent.sock"
	c, err := New(nil, Options{DockerHost: host})
	if err != nil {
		t.Fatalf("New with an unreachable engine: %v", err)
	}
	defer c.Close()

	start := time.Now()
	c.Start(context.Background())
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Start took %s, want it to return at once", d)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		s := scrape(t, c)
		var unreachable *UnreachableError
		if s.err != nil && errors.As(s.err, &unreachable) && strings.Contains(s.err.Error(), "unreachable") {
			t.Logf("Update error: %v", s.err)
			if !strings.Contains(s.err.Error(), host) {
				t.Errorf("Update error %q does not name the host %s", s.err, host)
			}
			if len(s.names) != 0 {
				t.Errorf("containers exported without ever reaching Docker: %v", s.names)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Update error = %v, want one saying %s is unreachable", s.err, host)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNew_DockerHostMalformed_Fails(t *testing.T) {
	if _, err := New(nil, Options{DockerHost: "not a url"}); err == nil {
		t.Fatal("New accepted a malformed Docker host")
	} else if !strings.Contains(err.Error(), "docker host") {
		t.Errorf("error %q does not name the docker host option", err)
	}
}
