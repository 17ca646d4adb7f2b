package host

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/node_exporter/collector"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// nodeConstructors are node_exporter's own versions of the collectors this
// package reimplements with files kept open (netclass and netstat have tests
// of their own).
var nodeConstructors = map[string]func(*slog.Logger) (collector.Collector, error){
	arpName:        collector.NewARPCollector,
	conntrackName:  collector.NewConntrackCollector,
	entropyName:    collector.NewEntropyCollector,
	filefdName:     collector.NewFileFDStatCollector,
	filesystemName: collector.NewFilesystemCollector,
	loadavgName:    collector.NewLoadavgCollector,
	meminfoName:    collector.NewMeminfoCollector,
	netdevName:     collector.NewNetDevCollector,
	pressureName:   collector.NewPressureStatsCollector,
	sockstatName:   collector.NewSockStatCollector,
	softnetName:    collector.NewSoftnetCollector,
	udpQueuesName:  collector.NewUDPqueuesCollector,
	statName:       collector.NewStatCollector,
	vmstatName:     collector.NewvmStatCollector,
}

// node_exporter's own collectors read the same fixture files (the process's
// flags point them there), with the same flags.
func TestReimplemented_SameAsNodeExporter(t *testing.T) {
	for name, newNode := range nodeConstructors {
		t.Run(name, func(t *testing.T) {
			node, err := newNode(slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			want := gatherText(t, collectorFunc{t: t, c: &nodeCollector{name: name, c: node, logger: slog.New(slog.DiscardHandler)}})
			require.NotEmpty(t, want)

			ours := fixtureHost.Collectors()[name]
			require.Implements(t, (*ownCollector)(nil), ours)
			var names []string // all when empty
			if name == timeName {
				// The time moves on: hostbench checks that ours is
				// between two of node_exporter's.
				names = []string{"node_time_zone_offset_seconds",
					"node_time_clocksource_available_info", "node_time_clocksource_current_info"}
				require.Contains(t, string(want), `device="1"`) // clocksource10
			}
			if name == filesystemName {
				// The fixture's one mount is the fixture root, on this
				// machine's disk: its free space moves.
				names = []string{"node_filesystem_device_error", "node_filesystem_readonly", "node_filesystem_size_bytes",
					"node_filesystem_files", "node_filesystem_mount_info", "node_filesystem_purgeable_bytes"}
				require.Contains(t, string(want), `node_filesystem_size_bytes{device="/dev/vda1",device_error="",fstype="ext4",mountpoint="/"}`)
			}
			for range 2 { // the second update reads the files kept open
				require.NoError(t, testutil.GatherAndCompare(registryOf(t, ours), bytes.NewReader(want), names...))
			}
		})
	}
}

// procFixture writes files (path relative to the proc root: content) to a
// new proc root.
func procFixture(t *testing.T, files map[string]string) string {
	t.Helper()
	procFS := t.TempDir()
	for path, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(procFS, path)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(procFS, path), []byte(content), 0o644))
	}
	return procFS
}

func series(t *testing.T, c ownCollector) string {
	t.Helper()
	t.Cleanup(c.close)
	return netstatSeries(t, c)
}

func TestMeminfo_KiloBytesInBytes_HugePagesCounted_LastOfTwiceListed(t *testing.T) {
	c := newMeminfoCollector(procFixture(t, map[string]string{"meminfo": "MemTotal:  2 kB\nHugePages_Total:  3\n" +
		"Hugepagesize:  2048 kB\nUnknown:  5 kB\nMemFree: 1 kB\nMemFree: 4\nSecPageTables: 1 kB\n"}))
	want := "node_memory_HugePages_Total 3\nnode_memory_Hugepagesize_bytes 2.097152e+06\nnode_memory_MemFree_bytes 4\nnode_memory_MemTotal_bytes 2048"
	require.Equal(t, want, series(t, c))
	require.Equal(t, want, series(t, c))
}

func TestMeminfo_BadLines_Fail(t *testing.T) {
	for name, content := range map[string]string{
		"unit":         "MemTotal: 2 MB\n",
		"not a number": "Unknown: x kB\n",
		"no value":     "MemTotal:\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := newMeminfoCollector(procFixture(t, map[string]string{"meminfo": content}))
			t.Cleanup(c.close)
			require.Error(t, c.Update(context.Background(), make(chan prometheus.Metric, 64)))
		})
	}
}

func TestPressure_MissingFull_ReportsWhatCameBefore(t *testing.T) {
	c := newPressureCollector(procFixture(t, map[string]string{
		"pressure/cpu":    "some avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\n",
		"pressure/io":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
		"pressure/memory": "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
	}))
	require.Equal(t, "node_pressure_cpu_waiting_seconds_total 2", series(t, c))
}

func TestPressure_NoFiles_NoSeries(t *testing.T) {
	c := newPressureCollector(t.TempDir())
	require.Empty(t, series(t, c))
}

func TestVmstat_FieldsFilter_BadValueFails(t *testing.T) {
	c, err := newVmstatCollector(procFixture(t, map[string]string{"vmstat": "nr_free_pages 12\npgfault 7\noom_kill 1\n"}),
		nodeFlag("collector.vmstat.fields"))
	require.NoError(t, err)
	require.Equal(t, "node_vmstat_oom_kill 1\nnode_vmstat_pgfault 7", series(t, c))

	c, err = newVmstatCollector(procFixture(t, map[string]string{"vmstat": "nr_free_pages x\npgfault 7\n"}),
		nodeFlag("collector.vmstat.fields"))
	require.NoError(t, err)
	t.Cleanup(c.close)
	require.Error(t, c.Update(context.Background(), make(chan prometheus.Metric, 64)))
}

func TestStat_MissingLines_ReportedAsZero(t *testing.T) {
	c := newStatCollector(procFixture(t, map[string]string{"stat": "cpu  1 2 3\nintr 10 1 2 3\nctxt 5\nbtime\n"}), false)
	require.Equal(t, "node_boot_time_seconds 0\nnode_context_switches_total 5\nnode_forks_total 0\nnode_intr_total 10\n"+
		"node_procs_blocked 0\nnode_procs_running 0", series(t, c))
}

// A seq_file of many records is read past its first page.
func TestKeptFile_ReadsToTheEnd_ReopensAfterError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	content := bytes.Repeat([]byte("0123456789"), 2000)
	require.NoError(t, os.WriteFile(path, content, 0o644))
	f := newKeptFile(path, true)
	t.Cleanup(f.close)
	for range 2 {
		got, err := f.read()
		require.NoError(t, err)
		require.Equal(t, content, got)
	}
	require.NoError(t, os.WriteFile(path, []byte("short"), 0o644))
	got, err := f.read()
	require.NoError(t, err)
	require.Equal(t, "short", string(got))

	f = newKeptFile(filepath.Join(dir, "missing"), false)
	_, err = f.read()
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "missing"), []byte("here"), 0o644))
	got, err = f.read()
	require.NoError(t, err)
	require.Equal(t, "here", string(got))
}

func TestCPU_OnlineOfEachCPU_WhenTheFirstHasTheFile(t *testing.T) {
	sysFS := procFixture(t, map[string]string{
		"devices/system/cpu/cpu0/online":  "1\n",
		"devices/system/cpu/cpu1/online":  "0\n",
		"devices/system/cpu/cpu10/online": "garbage\n",
		"devices/system/cpu/cpufreq/x":    "",
	})
	c, err := newCPUCollector(procFixture(t, map[string]string{"stat": "cpu  1 1 1 1\n"}), sysFS)
	require.NoError(t, err)
	require.Equal(t, `node_cpu_online{cpu="0"} 1`+"\n"+`node_cpu_online{cpu="1"} 0`+"\n"+`node_cpu_online{cpu="10"} 0`,
		series(t, c))
}

func TestCPU_TimesNeverGoBack_UnlessIdleJumpsBack(t *testing.T) {
	procFS := procFixture(t, map[string]string{"stat": "cpu1 100 0 0 1000 0 0 0 0 0 0\ncpu2 1 1 1 1 1 1 1 1 1 1\n"})
	sysFS := procFixture(t, map[string]string{"devices/system/cpu/cpu1/topology/core_id": "0\n"})
	c, err := newCPUCollector(procFS, sysFS)
	require.NoError(t, err)
	t.Cleanup(c.close)
	value := func(mode string) string {
		for l := range strings.Lines(series(t, c)) {
			if strings.HasPrefix(l, `node_cpu_seconds_total{cpu="1",mode="`+mode+`"}`) {
				return strings.Fields(l)[1]
			}
		}
		return "absent"
	}
	require.Equal(t, "1", value("user"))
	write := func(s string) { require.NoError(t, os.WriteFile(filepath.Join(procFS, "stat"), []byte(s), 0o644)) }
	write("cpu1 50 0 0 999 0 0 0 0 0 0\n") // user back, idle back by 0.01 s
	require.Equal(t, "1", value("user"))
	require.Equal(t, "10", value("idle"))
	write("cpu1 50 0 0 500 0 0 0 0 0 0\n") // idle back by 5 s: a hotplug
	require.Equal(t, "0.5", value("user"))
	require.Equal(t, "5", value("idle"))
	require.NotContains(t, series(t, c), `cpu="2"`) // gone
}

// netlink, which node_exporter asks by default, does not dump proxy entries;
// a device without a hardware address has its entries all the same.
func TestArp_ProxyEntriesSkipped_NoHardwareAddressCounted(t *testing.T) {
	c, err := newArpCollector(procFixture(t, map[string]string{"net/arp": "" +
		"IP address       HW type     Flags       HW address            Mask     Device\n" +
		"192.0.2.10       0x1         0x2         02:42:c0:00:02:0a     *        eth0\n" +
		"192.0.2.12       0x1         0x0         00:00:00:00:00:00     *        eth0\n" +
		"192.0.2.99       0x1         0xc         00:00:00:00:00:00     *        eth0\n" +
		"10.0.0.1         0x30a       0x6                               *        tun0\n"}), "", "^eth")
	require.NoError(t, err)
	require.Equal(t, `node_arp_entries{device="eth0"} 2`, series(t, c))
	require.Equal(t, `node_arp_entries{device="eth0"} 2`, series(t, c))
	c, err = newArpCollector(procFixture(t, map[string]string{"net/arp": "IP address       HW type     Flags       HW address            Mask     Device\n" +
		"10.0.0.1         0x30a       0x6                               *        tun0\n"}), "", "")
	require.NoError(t, err)
	require.Equal(t, `node_arp_entries{device="tun0"} 1`, series(t, c))
}

func TestArp_DeviceGone_NoSeries(t *testing.T) {
	procFS := procFixture(t, map[string]string{"net/arp": "IP address       HW type     Flags       HW address            Mask     Device\n" +
		"192.0.2.10       0x1         0x2         02:42:c0:00:02:0a     *        br-1\n"})
	c, err := newArpCollector(procFS, "", "")
	require.NoError(t, err)
	require.Equal(t, `node_arp_entries{device="br-1"} 1`, series(t, c))
	require.NoError(t, os.WriteFile(filepath.Join(procFS, "net/arp"),
		[]byte("IP address       HW type     Flags       HW address            Mask     Device\n"), 0o644))
	require.Empty(t, series(t, c))
	require.Empty(t, c.counts)
}

// Before Linux 5.14 the CPU is not written: lines are numbered; before 4.18
// there is no flow limit column, reported as 0.
func TestSoftnet_OlderKernel_CPUsNumberedByLine_MissingColumnsZero(t *testing.T) {
	c := newSoftnetCollector(procFixture(t, map[string]string{"net/softnet_stat": "" +
		"0000000a 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000003 00000004\n" +
		"0000000b 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n"}))
	got := series(t, c)
	require.Contains(t, got, `node_softnet_processed_total{cpu="0"} 10`)
	require.Contains(t, got, `node_softnet_processed_total{cpu="1"} 11`)
	require.Contains(t, got, `node_softnet_cpu_collision_total{cpu="0"} 3`)
	require.Contains(t, got, `node_softnet_received_rps_total{cpu="0"} 4`)
	require.Contains(t, got, `node_softnet_flow_limit_count_total{cpu="0"} 0`)
	require.Contains(t, got, `node_softnet_backlog_len{cpu="1"} 0`)
}

func TestSoftnet_BadLines_Fail(t *testing.T) {
	for name, content := range map[string]string{
		"few columns":    "0000000a 00000001\n",
		"not hex":        "0000000z 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000003\n",
		"beyond 32 bits": "100000000 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000003\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := newSoftnetCollector(procFixture(t, map[string]string{"net/softnet_stat": content}))
			t.Cleanup(c.close)
			require.Error(t, c.Update(context.Background(), make(chan prometheus.Metric, 64)))
		})
	}
}

func TestUDPQueues_NoUDP6_OnlyV4_BadLineFails(t *testing.T) {
	header := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
	line := "   1: 0100007F:0035 00000000:0000 07 00000010:00000200 00:00000000 00000000   101        0 20001 2 0000000000000000 0\n"
	c := newUDPQueuesCollector(procFixture(t, map[string]string{"net/udp": header + line + line}))
	require.Equal(t, `node_udp_queues{ip="v4",queue="rx"} 1024`+"\n"+`node_udp_queues{ip="v4",queue="tx"} 32`, series(t, c))

	c = newUDPQueuesCollector(procFixture(t, map[string]string{"net/udp": header + "   1: 0100007F:0035 00000000:0000 07 00000010\n"}))
	t.Cleanup(c.close)
	require.Error(t, c.Update(context.Background(), make(chan prometheus.Metric, 64)))

	c = newUDPQueuesCollector(t.TempDir())
	require.Empty(t, series(t, c))
}

func TestEntropy_NoPoolSize_AvailableThenError(t *testing.T) {
	c := newEntropyCollector(procFixture(t, map[string]string{"sys/kernel/random/entropy_avail": "256\n"}))
	t.Cleanup(c.close)
	ch := make(chan prometheus.Metric, 4)
	require.ErrorContains(t, c.Update(context.Background(), ch), "poolsize")
	require.Len(t, ch, 1)

	c = newEntropyCollector(procFixture(t, map[string]string{"sys/kernel/random/entropy_avail": "x\n", "sys/kernel/random/poolsize": "256\n"}))
	t.Cleanup(c.close)
	require.Error(t, c.Update(context.Background(), ch))
}

// Over netlink node_exporter also reports rx_nohandler, read here from sysfs;
// a device that is gone has its file closed.
func TestNetdev_NoHandlerFromSysfs_GoneDeviceForgotten(t *testing.T) {
	head := "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
	procFS := procFixture(t, map[string]string{"net/dev": head +
		"  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n" +
		"veth12: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"})
	sysFS := procFixture(t, map[string]string{"class/net/eth0/statistics/rx_nohandler": "42\n"})
	c, err := newNetdevCollector(procFS, sysFS, false)
	require.NoError(t, err)
	got := series(t, c)
	require.Contains(t, got, `node_network_receive_nohandler_total{device="eth0"} 42`)
	require.Contains(t, got, `node_network_transmit_carrier_total{device="eth0"} 15`)
	require.NotContains(t, got, "veth12")
	require.Equal(t, 17, strings.Count(got, "\n")+1)
	require.NotNil(t, c.devices["eth0"])
	require.GreaterOrEqual(t, c.devices["eth0"].noHandler.fd, 0)

	require.NoError(t, os.WriteFile(filepath.Join(procFS, "net/dev"), []byte(head), 0o644))
	require.Empty(t, series(t, c))
	require.Empty(t, c.devices)
}

func TestFilesystem_ErrorsReadOnlyEscapesAndStuckMounts(t *testing.T) {
	rootFS := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(rootFS, "data dir"), 0o755))
	procFS := procFixture(t, map[string]string{"1/mountinfo": "" +
		"24 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n" +
		"25 24 254:2 / /data\\040dir ro,relatime - ext4 /dev/vdb1 rw\n" +
		"26 24 0:5 / /gone rw - ext4 /dev/vdc1 emergency_ro\n" +
		"27 24 0:21 / /proc rw,relatime - proc proc rw\n" +
		"28 24 0:22 / /stuck rw - nfs server:/x rw\n"})
	c, err := newFilesystemCollector(procFS, rootFS)
	require.NoError(t, err)
	c.pending["/stuck"] = time.Now().Add(-c.timeout)
	got := series(t, c)
	for _, want := range []string{
		`node_filesystem_readonly{device="/dev/vda1",device_error="",fstype="ext4",mountpoint="/"} 0`,
		`node_filesystem_readonly{device="/dev/vdb1",device_error="",fstype="ext4",mountpoint="/data dir"} 1`,
		`node_filesystem_mount_info{device="/dev/vdb1",major="254",minor="2",mountpoint="/data dir"} 1`,
		`node_filesystem_device_error{device="/dev/vdc1",device_error="no such file or directory",fstype="ext4",mountpoint="/gone"} 1`,
		`node_filesystem_readonly{device="/dev/vdc1",device_error="no such file or directory",fstype="ext4",mountpoint="/gone"} 1`,
		`node_filesystem_device_error{device="server:/x",device_error="mountpoint timeout",fstype="nfs",mountpoint="/stuck"} 1`,
	} {
		require.Contains(t, got, want)
	}
	require.NotContains(t, got, `mountpoint="/proc"`)
	require.NotContains(t, got, `node_filesystem_size_bytes{device="/dev/vdc1"`)
	require.Equal(t, 2*9+2+2, strings.Count(got, "\n")+1) // two mounts with all nine, one failed, one stuck

	delete(c.pending, "/stuck")
	require.Contains(t, series(t, c), `device_error="no such file or directory",fstype="nfs",mountpoint="/stuck"`)
}

// A statfs that hangs (a stuck NFS server) is waited for at most the mount
// timeout: that mount is reported "mountpoint timeout", the mounts after it
// as usual, and later scrapes skip it while it stays pending.
func TestFilesystem_HangingStatfs_OtherMountsStillReported(t *testing.T) {
	rootFS := t.TempDir()
	procFS := procFixture(t, map[string]string{"1/mountinfo": "" +
		"24 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n" +
		"28 24 0:22 / /stuck rw - nfs server:/x rw\n" +
		"29 24 254:3 / /after rw - ext4 /dev/vdd1 rw\n"})
	require.NoError(t, os.MkdirAll(filepath.Join(rootFS, "after"), 0o755))
	c, err := newFilesystemCollector(procFS, rootFS)
	require.NoError(t, err)
	c.timeout = 200 * time.Millisecond
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c.statfsCall = func(path string, st *unix.Statfs_t) error {
		if strings.HasSuffix(path, "/stuck") {
			<-release
		}
		return unix.Statfs(path, st)
	}
	start := time.Now()
	got := series(t, c)
	require.Less(t, time.Since(start), 2*time.Second, "the hung mount held the scrape")
	require.Contains(t, got, `node_filesystem_device_error{device="server:/x",device_error="mountpoint timeout",fstype="nfs",mountpoint="/stuck"} 1`)
	require.Contains(t, got, `node_filesystem_readonly{device="/dev/vdd1",device_error="",fstype="ext4",mountpoint="/after"} 0`)
	start = time.Now()
	require.Contains(t, series(t, c), `mountpoint="/stuck"} 1`)
	require.Less(t, time.Since(start), 150*time.Millisecond, "a pending mount is skipped, not waited for again")
}
