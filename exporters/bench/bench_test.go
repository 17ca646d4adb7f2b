package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedNow is the clock of the golden tests, so container_last_seen is stable.
var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeInventory serves a fixed inventory, standing in for Docker.
type fakeInventory struct {
	items []containerInfo
	err   error
}

func (f *fakeInventory) snapshot(dst []containerInfo) ([]containerInfo, error) {
	return append(dst, f.items...), f.err
}

// updateCollector adapts Update to a prometheus.Collector for testutil.
type updateCollector struct {
	t testing.TB
	c *Collector
}

func (u updateCollector) Describe(chan<- *prometheus.Desc) {}

func (u updateCollector) Collect(ch chan<- prometheus.Metric) {
	if err := u.c.Update(context.Background(), ch); err != nil {
		u.t.Errorf("Update: %v", err)
	}
}

func fixtureCollector(t testing.TB, tree string, items []containerInfo) *Collector {
	t.Helper()
	opts, err := Options{
		CgroupRoot: abs(t, filepath.Join("testdata", tree, "cgroup")),
		ProcRoot:   abs(t, filepath.Join("testdata", tree, "proc")),
	}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newCollector(nil, opts, &fakeInventory{items: items}, func() time.Time { return fixedNow })
}

func abs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// compareGolden collects c and compares with testdata/<golden>, or rewrites
// the file with -update.
func compareGolden(t *testing.T, c *Collector, golden string) {
	t.Helper()
	path := filepath.Join("testdata", golden)
	col := updateCollector{t: t, c: c}
	if *update {
		writeGolden(t, col, path)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open golden file (run with -update to create it): %v", err)
	}
	defer f.Close()
	if err := testutil.CollectAndCompare(col, f); err != nil {
		t.Errorf("metrics differ from %s (run with -update if the change is intended):\n%v", path, err)
	}
}

// writeGolden gathers col and writes it to path in the text format.
// (testutil.CollectAndFormat keeps only the metric names it is given.)
func writeGolden(t *testing.T, col prometheus.Collector, path string) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	idA = strings.Repeat("a", 64)
	idB = strings.Repeat("b", 64)
	idC = strings.Repeat("c", 64)
	idD = strings.Repeat("d", 64)
	idE = strings.Repeat("e", 64)
)

func TestUpdate_CgroupV1Tree_MatchesGolden(t *testing.T) {
	c := fixtureCollector(t, "v1", []containerInfo{
		{ // custom cgroup parent, resolved from /proc/4101/cgroup; healthy; restarted twice
			ID: idA, Name: "bench-alpha", Bench: "alpha", State: container.StateRunning, Pid: 4101,
			StartedAt: ts("2026-01-02T01:00:00Z"), FinishedAt: ts("2026-01-02T00:59:58Z"),
			Health: container.Healthy, ExitCode: 137, MemoryLimit: 536870912, Restarts: 2, OOMEvents: 1,
		},
		{ // private cgroup namespace: found at /docker/<id>; health check still starting
			ID: idB, Name: "bench-beta", Bench: "beta", State: container.StateRunning, Pid: 4102,
			StartedAt: ts("2026-01-02T02:00:00Z"), Health: container.Starting, OOMEvents: 1,
		},
		{ // stopped after an OOM kill: inventory series only
			ID: idC, Name: "bench-gamma", Bench: "gamma", State: container.StateExited,
			StartedAt: ts("2026-01-01T10:00:00Z"), FinishedAt: ts("2026-01-01T12:30:00Z"),
			ExitCode: 137, MemoryLimit: 33554432, OOMEvents: 1,
		},
	})
	compareGolden(t, c, "v1.prom")
}

func TestUpdate_CgroupV2Tree_MatchesGolden(t *testing.T) {
	c := fixtureCollector(t, "v2", []containerInfo{
		{ // custom slice, resolved from /proc/5101/cgroup; oom_kill 3 in the cgroup, 1 event seen
			ID: idD, Name: "bench-delta", Bench: "delta", State: container.StateRunning, Pid: 5101,
			StartedAt: ts("2026-01-02T00:00:00Z"), MemoryLimit: 1073741824, OOMEvents: 1,
		},
		{ // private cgroup namespace: found at the systemd driver's path; no cpu/memory/io controllers
			ID: idE, Name: "bench-epsilon", Bench: "epsilon", State: container.StateRunning, Pid: 5102,
			StartedAt: ts("2026-01-02T03:00:00Z"), Health: container.Unhealthy, Restarts: 5, ExitCode: 1,
		},
		{ // created, never started
			ID: idC, Name: "bench-zeta", Bench: "zeta", State: container.StateCreated,
		},
	})
	compareGolden(t, c, "v2.prom")
}

func TestUpdate_ContainerStoppedSinceSnapshot_SkipsUsageWithoutError(t *testing.T) {
	// Pid 4999 and container f... exist nowhere in the fixture: the container
	// stopped between the inventory snapshot and the read.
	c := fixtureCollector(t, "v1", []containerInfo{{
		ID: strings.Repeat("f", 64), Name: "bench-gone", Bench: "gone", State: container.StateRunning, Pid: 4999,
	}})
	n, err := collect(t, c)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if _, ok := n["container_cpu_usage_seconds_total"]; ok {
		t.Errorf("usage exported for a container whose cgroup is gone")
	}
	if n["hybrid_bench_container_running"] != 1 {
		t.Errorf("inventory series missing: %v", n)
	}
}

func TestUpdate_CgroupMissingWhileProcessRuns_ReturnsErrorNamingContainer(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "proc", "77", "cgroup"), "4:cpuacct:/nowhere\n")
	opts, _ := Options{CgroupRoot: filepath.Join(root, "cgroup"), ProcRoot: filepath.Join(root, "proc")}.withDefaults()
	c := newCollector(nil, opts, &fakeInventory{items: []containerInfo{{
		ID: idA, Name: "bench-lost", Bench: "lost", State: container.StateRunning, Pid: 77,
	}}}, func() time.Time { return fixedNow })

	_, err := collect(t, c)
	if err == nil || !strings.Contains(err.Error(), "bench-lost") {
		t.Fatalf("Update error = %v, want one naming container bench-lost", err)
	}
}

func TestUpdate_DockerUnreachable_SendsLastKnownAndReturnsUnreachableError(t *testing.T) {
	inv := &fakeInventory{
		items: []containerInfo{{ID: idC, Name: "bench-gamma", Bench: "gamma", State: container.StateExited}},
		err:   &UnreachableError{Host: "unix:///x.sock", Since: fixedNow, Err: errors.New("connection refused")},
	}
	opts, _ := Options{}.withDefaults()
	c := newCollector(nil, opts, inv, func() time.Time { return fixedNow })

	n, err := collect(t, c)
	var unreachable *UnreachableError
	if !errors.As(err, &unreachable) {
		t.Fatalf("Update error = %v, want an *UnreachableError", err)
	}
	if _, ok := n["hybrid_bench_container_running"]; !ok {
		t.Errorf("last known inventory not sent while Docker is unreachable")
	}
}

func TestUpdate_OOMKillsAcrossRuns_CountMonotonic(t *testing.T) {
	root := t.TempDir()
	cg := filepath.Join(root, "cgroup", "memory", "docker", idA)
	write(t, filepath.Join(root, "cgroup", "cpuacct", "docker", idA, "cpuacct.usage"), "1\n")
	write(t, filepath.Join(cg, "memory.usage_in_bytes"), "1\n")
	write(t, filepath.Join(cg, "memory.stat"), "total_inactive_file 0\n")
	setOOM := func(n string) { write(t, filepath.Join(cg, "memory.oom_control"), "oom_kill "+n+"\n") }
	inv := &fakeInventory{items: []containerInfo{{
		ID: idA, Name: "bench-a", Bench: "a", State: container.StateRunning, Pid: 1, StartedAt: ts("2026-01-01T00:00:00Z"),
	}}}
	opts, _ := Options{CgroupRoot: filepath.Join(root, "cgroup"), ProcRoot: filepath.Join(root, "proc")}.withDefaults()
	c := newCollector(nil, opts, inv, func() time.Time { return fixedNow })

	steps := []struct {
		desc      string
		startedAt string
		oomKill   string
		events    uint64
		want      float64
	}{
		{"two kills in the first run", "2026-01-01T00:00:00Z", "2", 0, 2},
		{"new run, fresh cgroup", "2026-01-01T01:00:00Z", "0", 0, 2},
		{"one kill in the second run", "2026-01-01T01:00:00Z", "1", 0, 3},
		{"events seen fewer than kills", "2026-01-01T01:00:00Z", "1", 2, 3},
		{"events seen more than kills", "2026-01-01T01:00:00Z", "1", 5, 5},
	}
	for _, s := range steps {
		setOOM(s.oomKill)
		inv.items[0].StartedAt = ts(s.startedAt)
		inv.items[0].OOMEvents = s.events
		n, err := collect(t, c)
		if err != nil {
			t.Fatalf("%s: Update: %v", s.desc, err)
		}
		if got := n["container_oom_events_total"]; got != s.want {
			t.Errorf("%s: container_oom_events_total = %v, want %v", s.desc, got, s.want)
		}
	}
}

func TestNew_BadOptions_ReturnsEveryProblem(t *testing.T) {
	_, err := New(nil, Options{Label: "a=b", CgroupRoot: "rel/cgroup", ProcRoot: "proc"})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, field := range []string{"label", "cgroup root", "proc root"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name the field %q", err, field)
		}
	}
}

// collect runs Update once and returns the value of each metric by name
// (tests using it have one container).
func collect(t testing.TB, c *Collector) (map[string]float64, error) {
	t.Helper()
	ch := make(chan prometheus.Metric)
	out := map[string]float64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			name, _, v := metricValue(t, m)
			out[name] = v
		}
	}()
	err := c.Update(context.Background(), ch)
	close(ch)
	<-done
	return out, err
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
