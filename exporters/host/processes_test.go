package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/process"
	"github.com/stretchr/testify/require"
)

// fakeUsers is the passwd database of the fixtures.
func fakeUsers(uid string) (string, error) {
	if name, ok := map[string]string{"0": "root", "101": "mysql", "1000": "frappe"}[uid]; ok {
		return name, nil
	}
	return "", errors.New("unknown uid " + uid)
}

func fixtureProcesses(procFS string) *processesCollector {
	c := newProcessesCollector(slog.New(slog.DiscardHandler), procFS)
	c.lookupUser = fakeUsers
	c.pageSize = 4096 // as on the machine the fixtures describe, whatever runs the test
	return c
}

// testdata/procs holds, by hand: systemd and kthreadd (root), mariadbd (mysql,
// 14 threads), four frappe processes (one a zombie, one named "(sd-pam)" with
// parentheses, one "redis-server *:" with a space), sudo run by frappe
// (effective user root) and a node process of uid 4242, which has no name.
func TestProcesses_FixtureTree_MatchesGolden(t *testing.T) {
	c := fixtureProcesses("testdata/procs")
	compareGolden(t, registryOf(t, c), "testdata/processes.prom")
}

// writeProc writes /proc/<pid>/{stat,status} for a process of uid using
// cpuTicks of CPU (user+system), started at start.
func writeProc(t *testing.T, procFS string, pid, uid, cpuTicks, start int) {
	t.Helper()
	dir := filepath.Join(procFS, fmt.Sprint(pid))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	stat := fmt.Sprintf("%d (worker) S 1 %d %d 0 -1 4194560 0 0 0 0 %d 0 0 0 20 0 1 0 %d 1000000 100 "+
		"18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", pid, pid, pid, cpuTicks, start)
	status := fmt.Sprintf("Name:\tworker\nState:\tS (sleeping)\nUid:\t%d\t%d\t%d\t%d\n", uid, uid, uid, uid)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644))
}

func cpuOf(t *testing.T, c *processesCollector) string {
	t.Helper()
	out, err := testutil.GatherAndFormat(registryOf(t, c), expfmt.TypeTextPlain, "hybrid_host_process_cpu_seconds_total")
	require.NoError(t, err)
	var lines []string
	for l := range strings.Lines(string(out)) {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "\n")
}

func TestProcesses_ProcessExitsOrPidReused_CPUCounterNeverDrops(t *testing.T) {
	procFS := t.TempDir()
	c := fixtureProcesses(procFS)
	writeProc(t, procFS, 10, 1000, 500, 100) // 5 s
	writeProc(t, procFS, 11, 1000, 300, 200) // 3 s
	require.Equal(t, `hybrid_host_process_cpu_seconds_total{user="frappe"} 8`, cpuOf(t, c))

	// 11 exits; 10 uses one more second.
	require.NoError(t, os.RemoveAll(filepath.Join(procFS, "11")))
	writeProc(t, procFS, 10, 1000, 600, 100)
	require.Equal(t, `hybrid_host_process_cpu_seconds_total{user="frappe"} 9`, cpuOf(t, c))

	// pid 11 comes back as a new process (another start time) with 0.5 s.
	writeProc(t, procFS, 11, 1000, 50, 900)
	require.Equal(t, `hybrid_host_process_cpu_seconds_total{user="frappe"} 9.5`, cpuOf(t, c))

	// The user's last process exits: no series; the counter resumes, not
	// restarts, when the user has a process again.
	require.NoError(t, os.RemoveAll(filepath.Join(procFS, "10")))
	require.NoError(t, os.RemoveAll(filepath.Join(procFS, "11")))
	writeProc(t, procFS, 12, 0, 100, 1000)
	require.Equal(t, `hybrid_host_process_cpu_seconds_total{user="root"} 1`, cpuOf(t, c))
	writeProc(t, procFS, 13, 1000, 100, 1100)
	require.Equal(t, "hybrid_host_process_cpu_seconds_total{user=\"frappe\"} 10.5\n"+
		"hybrid_host_process_cpu_seconds_total{user=\"root\"} 1", cpuOf(t, c))
}

func TestProcesses_ProcFSMissing_Fails(t *testing.T) {
	c := fixtureProcesses(filepath.Join(t.TempDir(), "nothing"))
	err := c.Update(context.Background(), make(chan prometheus.Metric, 64))
	require.ErrorContains(t, err, "list processes")
}

func TestParseStat_CommandWithSpacesAndParentheses(t *testing.T) {
	var s procSample
	line := "42 (a) b (c) S 1 42 42 0 -1 4194560 0 0 0 0 150 50 0 0 20 0 3 0 777 1000000 25 18446744073709551615\n"
	require.NoError(t, parseStat([]byte(line), &s))
	require.Equal(t, procSample{threads: 3, start: 777, rssPages: 25, seconds: 2}, s)
}

func TestParseStat_Truncated_Fails(t *testing.T) {
	var s procSample
	require.ErrorContains(t, parseStat([]byte("42 (a) S 1 42 42 0 -1 4194560 0 0 0 0 150"), &s), "want at least 22")
}

// gopsutilSnapshot is the same measurement made with gopsutil's Process
// objects, for BenchmarkProcesses.
func gopsutilSnapshot(ctx context.Context) (map[uint32]*userTotals, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return nil, err
	}
	out := map[uint32]*userTotals{}
	for _, pid := range pids {
		p := &process.Process{Pid: pid}
		uids, err := p.UidsWithContext(ctx)
		if err != nil || len(uids) < 2 {
			continue
		}
		threads, err := p.NumThreadsWithContext(ctx)
		if err != nil {
			continue
		}
		mem, err := p.MemoryInfoWithContext(ctx)
		if err != nil {
			continue
		}
		times, err := p.TimesWithContext(ctx)
		if err != nil {
			continue
		}
		t := out[uids[1]]
		if t == nil {
			t = &userTotals{}
			out[uids[1]] = t
		}
		t.processes++
		t.threads += float64(threads)
		t.rssBytes += float64(mem.RSS)
		t.cpu += times.User + times.System
	}
	return out, nil
}

// BenchmarkProcesses compares reading this machine's /proc directly (what the
// collector does) with gopsutil's Process objects.
func BenchmarkProcesses(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		c := newProcessesCollector(slog.New(slog.DiscardHandler), "/proc")
		ch := make(chan prometheus.Metric, 1024)
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Update(context.Background(), ch); err != nil {
				b.Fatal(err)
			}
			for len(ch) > 0 {
				<-ch
			}
		}
	})
	b.Run("gopsutil", func(b *testing.B) {
		ctx := context.WithValue(context.Background(), common.EnvKey, common.EnvMap{common.HostProcEnvKey: "/proc"})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := gopsutilSnapshot(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
