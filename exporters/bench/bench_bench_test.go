package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/prometheus/client_golang/prometheus"
)

// v1MemoryStat is a full memory.stat as a v1 kernel writes it, so the
// benchmark parses a realistic amount of text.
const v1MemoryStat = `cache 1736704
rss 712704
rss_huge 0
shmem 0
mapped_file 1650688
dirty 0
writeback 0
workingset_refault_anon 0
workingset_refault_file 0
swap 0
swapcached 0
pgpgin 1424
pgpgout 826
pgfault 1335
pgmajfault 25
inactive_anon 708608
active_anon 4096
inactive_file 1736704
active_file 0
unevictable 0
hierarchical_memory_limit 33554432
hierarchical_memsw_limit 67108864
total_cache 1736704
total_rss 712704
total_rss_huge 0
total_shmem 0
total_mapped_file 1650688
total_dirty 0
total_writeback 0
total_workingset_refault_anon 0
total_workingset_refault_file 0
total_swap 0
total_swapcached 0
total_pgpgin 1424
total_pgpgout 826
total_pgfault 1335
total_pgmajfault 25
total_inactive_anon 708608
total_active_anon 4096
total_inactive_file 1736704
total_active_file 0
total_unevictable 0
`

const netDevHeader = "Inter-|   Receive                                                |  Transmit\n" +
	" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"

// syntheticTree writes n running containers into a fresh v1 or v2 tree and
// returns their inventory and options.
func syntheticTree(b *testing.B, v2 bool, n int) ([]containerInfo, Options) {
	b.Helper()
	root := b.TempDir()
	cgRoot, procRoot := filepath.Join(root, "cgroup"), filepath.Join(root, "proc")
	if v2 {
		write(b, filepath.Join(cgRoot, "cgroup.controllers"), "cpu io memory pids\n")
	}
	items := make([]containerInfo, n)
	for i := range items {
		id := fmt.Sprintf("%064x", i+1)
		pid := 10000 + i
		p := filepath.Join(procRoot, strconv.Itoa(pid))
		write(b, filepath.Join(p, "net", "dev"), netDevHeader+
			"    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n"+
			"  eth0: 1500000    1200    0    0    0     0          0         0   250000     900    0    0    0     0       0          0\n")
		if v2 {
			rel := "/system.slice/docker-" + id + ".scope"
			write(b, filepath.Join(p, "cgroup"), "0::"+rel+"\n")
			d := filepath.Join(cgRoot, rel)
			write(b, filepath.Join(d, "cpu.stat"), "usage_usec 98765432\nuser_usec 80000000\nsystem_usec 18765432\nnr_periods 100\nnr_throttled 7\nthrottled_usec 1250000\n")
			write(b, filepath.Join(d, "memory.current"), "536870912\n")
			write(b, filepath.Join(d, "memory.stat"), "anon 402653184\nfile 134217728\nkernel 0\nactive_file 33554432\ninactive_file 100663296\n")
			write(b, filepath.Join(d, "memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
			write(b, filepath.Join(d, "io.stat"), "8:0 rbytes=4194304 wbytes=8388608 rios=100 wios=200 dbytes=0 dios=0\n")
		} else {
			rel := "/docker/" + id
			var sb strings.Builder
			for _, c := range []string{"name=systemd", "pids", "blkio", "memory", "cpu,cpuacct", "cpuset"} {
				fmt.Fprintf(&sb, "1:%s:%s\n", c, rel)
			}
			write(b, filepath.Join(p, "cgroup"), sb.String())
			write(b, filepath.Join(cgRoot, "cpuacct", rel, "cpuacct.usage"), "1063613070\n")
			write(b, filepath.Join(cgRoot, "cpu", rel, "cpu.stat"), "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n")
			write(b, filepath.Join(cgRoot, "memory", rel, "memory.usage_in_bytes"), "3149824\n")
			write(b, filepath.Join(cgRoot, "memory", rel, "memory.stat"), v1MemoryStat)
			write(b, filepath.Join(cgRoot, "memory", rel, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
			write(b, filepath.Join(cgRoot, "blkio", rel, "blkio.throttle.io_service_bytes_recursive"),
				"8:0 Read 1048576\n8:0 Write 2097152\n8:0 Sync 2097152\n8:0 Async 1048576\n8:0 Discard 0\n8:0 Total 3145728\nTotal 3145728\n")
		}
		items[i] = containerInfo{
			ID: id, Name: fmt.Sprintf("bench-%03d", i), Bench: fmt.Sprintf("b%03d", i),
			State: container.StateRunning, Pid: pid, StartedAt: fixedNow.Add(-time.Hour),
			Health: container.Healthy, MemoryLimit: 1 << 30, Restarts: 1,
		}
	}
	opts, err := Options{CgroupRoot: cgRoot, ProcRoot: procRoot}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	return items, opts
}

// BenchmarkUpdate_200Containers measures one scrape of 200 running bench
// containers (cgroup readers already resolved, as in steady state). Besides
// ns/op and allocs/op it reports cpu-ns/op: user+system CPU of the whole
// process per scrape, the consumer of the metric channel included. The
// target is under 100 ms of CPU per scrape.
func BenchmarkUpdate_200Containers(b *testing.B) {
	for _, v := range []struct {
		name string
		v2   bool
	}{{"cgroup_v1", false}, {"cgroup_v2", true}} {
		b.Run(v.name, func(b *testing.B) {
			items, opts := syntheticTree(b, v.v2, 200)
			c := newCollector(nil, opts, &fakeInventory{items: items}, func() time.Time { return fixedNow })
			ch := make(chan prometheus.Metric, 256)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range ch {
				}
			}()
			defer func() { close(ch); <-done }()
			ctx := context.Background()
			if err := c.Update(ctx, ch); err != nil { // resolve the cgroups once
				b.Fatal(err)
			}

			cpu0 := cpuTime(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Update(ctx, ch); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
