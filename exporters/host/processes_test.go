package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/process"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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
	require.Equal(t, procSample{threads: 3, start: 777, rssPages: 25, cpuTicks: 200}, s)
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
		t.cpuTicks += uint64((times.User+times.System)*userHZ + 0.5)
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

func TestOwnerIsEffectiveUID_ByKernelRelease(t *testing.T) {
	for release, want := range map[string]bool{
		"6.1.0-13-amd64\n": true, "4.11.0\n": true, "5.4.0-150-generic\n": true, "10.0\n": true,
		"4.10.17\n": false, "4.9.0-19-amd64\n": false, "3.10.0-1160.el7.x86_64\n": false, "garbage\n": false, "": false,
	} {
		procFS := t.TempDir()
		if release != "" {
			require.NoError(t, os.MkdirAll(filepath.Join(procFS, "sys/kernel"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(procFS, "sys/kernel/osrelease"), []byte(release), 0o644))
		}
		require.Equal(t, want, ownerIsEffectiveUID(procFS), "release %q", release)
	}
}

// With a kernel of 4.11 or later, the owner of /proc/<pid> is the effective
// uid and status is not read: here the fixture's status files name uid 1000,
// but the directories belong to whoever runs the test.
func TestProcesses_NewKernel_UIDFromDirectoryOwner(t *testing.T) {
	procFS := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(procFS, "sys/kernel"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(procFS, "sys/kernel/osrelease"), []byte("6.1.0-13-amd64\n"), 0o644))
	writeProc(t, procFS, 10, 1000, 500, 100)
	writeProc(t, procFS, 11, 1000, 300, 200)
	c := fixtureProcesses(procFS)
	require.True(t, c.uidFromOwner)
	c.lookupUser = func(uid string) (string, error) { return "owner-" + uid, nil }
	require.Equal(t, fmt.Sprintf(`hybrid_host_process_cpu_seconds_total{user="owner-%d"} 8`, os.Getuid()), cpuOf(t, c))
}

func TestProcesses_ExitedProcesses_FilesClosed(t *testing.T) {
	procFS := t.TempDir()
	for pid := 10; pid < 15; pid++ {
		writeProc(t, procFS, pid, 1000, 100, pid)
	}
	c := fixtureProcesses(procFS)
	defer c.close()
	cpuOf(t, c)
	require.Equal(t, 5, c.kept)
	for pid := 10; pid < 13; pid++ {
		require.NoError(t, os.RemoveAll(filepath.Join(procFS, fmt.Sprint(pid))))
	}
	cpuOf(t, c)
	require.Equal(t, 2, c.kept)
	require.Len(t, c.procs, 2)

	c.close()
	require.Equal(t, 0, c.kept)
	require.Equal(t, `hybrid_host_process_cpu_seconds_total{user="frappe"} 5`, cpuOf(t, c), "reopens after close, the counter kept")
	require.Equal(t, 2, c.kept)
}

func TestProcesses_Close_LeavesNoFileOpen(t *testing.T) {
	before := openFDs(t)
	c := newProcessesCollector(slog.New(slog.DiscardHandler), "/proc")
	c.maxKept = 10 // some kept, the others opened per scrape
	for range 3 {
		require.NoError(t, c.Update(context.Background(), make(chan prometheus.Metric, 1024)))
	}
	require.Equal(t, 10, c.kept)
	c.close()
	require.Equal(t, before, openFDs(t))
}

func TestProcesses_KeptFilesCapped_OthersOpenedPerScrape(t *testing.T) {
	procFS := t.TempDir()
	for pid := 10; pid < 15; pid++ {
		writeProc(t, procFS, pid, 1000, 100, pid)
	}
	c := fixtureProcesses(procFS)
	defer c.close()
	c.maxKept = 2
	require.Equal(t, `hybrid_host_process_cpu_seconds_total{user="frappe"} 5`, cpuOf(t, c))
	writeProc(t, procFS, 14, 1000, 200, 14)
	require.Equal(t, `hybrid_host_process_cpu_seconds_total{user="frappe"} 6`, cpuOf(t, c))
	require.Equal(t, 2, c.kept)
}

// On this machine's /proc: the owner of every /proc/<pid> is the effective
// uid its status file shows, which is what the collector relies on.
func TestProcessDirectoryOwner_IsEffectiveUID_OnThisMachine(t *testing.T) {
	if !ownerIsEffectiveUID("/proc") {
		t.Skip("kernel older than 4.11: the collector reads status")
	}
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	checked := 0
	for _, e := range entries {
		if _, ok := parsePID([]byte(e.Name())); !ok {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil {
			continue // exited
		}
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		euid, err := parseStatusUID(status)
		require.NoError(t, err)
		require.Equal(t, euid, st.Uid, "pid %s", e.Name())
		checked++
	}
	require.Positive(t, checked)
}

const setEUIDHelperEnv = "HYBRID_HOST_TEST_SETEUID_HELPER"

// setEUIDHelper is the test binary run as a child by
// TestProcesses_NonDumpableProcess_CountsUnderEffectiveUser: it takes the
// effective uid 65534 (keeping real uid 0), which makes it non-dumpable, says
// so, and waits for its stdin to close.
func setEUIDHelper() int {
	if err := syscall.Seteuid(65534); err != nil {
		fmt.Fprintln(os.Stderr, "seteuid:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// A process that changed its uids is not dumpable: the kernel then makes the
// files under /proc/<pid> root's, but not /proc/<pid> itself, whose owner
// stays the effective uid (Linux 4.11 and later).
func TestProcesses_NonDumpableProcess_CountsUnderEffectiveUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to start a process with another effective uid")
	}
	if !ownerIsEffectiveUID("/proc") {
		t.Skip("kernel older than 4.11: the collector reads status")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), setEUIDHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	pid := int32(cmd.Process.Pid)

	var st unix.Stat_t
	require.NoError(t, unix.Stat(fmt.Sprintf("/proc/%d/stat", pid), &st))
	require.Equal(t, uint32(0), st.Uid, "the files of a non-dumpable process are root's")

	c := newProcessesCollector(slog.New(slog.DiscardHandler), "/proc")
	defer c.close()
	require.NoError(t, c.listProcesses())
	c.update++
	require.NoError(t, c.readProcess(pid))
	require.Equal(t, map[uint32]userTotals{65534: c.byUID[65534]}, c.byUID)
}

// A kept /proc/<pid>/stat refers to the process: once it has exited (and
// been reaped) the read fails with ESRCH and the file is closed, even if
// the pid were reused.
func TestProcesses_KeptStatOfExitedProcess_Fails(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	pid := int32(cmd.Process.Pid)

	c := newProcessesCollector(slog.New(slog.DiscardHandler), "/proc")
	defer c.close()
	require.NoError(t, c.listProcesses())
	c.update++
	require.NoError(t, c.readProcess(pid))
	p := c.procs[pid]
	require.NotNil(t, p)
	require.GreaterOrEqual(t, p.statFD, 0)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	_, err := preadAll(p.statFD, &c.buf)
	require.ErrorIs(t, err, unix.ESRCH)
	_, _, err = c.readStat(pid, p)
	require.ErrorIs(t, err, unix.ENOENT)
	require.Equal(t, -1, p.statFD)
	require.Equal(t, 0, c.kept)
}
