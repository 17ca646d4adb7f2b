package host

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/node_exporter/collector"
	"github.com/stretchr/testify/require"
)

// gatherText is what c reports, in the text format.
func gatherText(t *testing.T, c prometheus.Collector) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var out bytes.Buffer
	enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		require.NoError(t, enc.Encode(mf))
	}
	return out.Bytes()
}

// The fixture sysfs has this machine's devices, Docker's (ignored) and two
// synthetic ones with odd values (see testdata/snapshot.sh). node_exporter's
// own netclass collector reads the same tree: the process's flags point it
// there, with the same ignored devices.
func TestNetClass_SameAsNodeExporter(t *testing.T) {
	node, err := collector.NewNetClassCollector(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	want := gatherText(t, collectorFunc{t: t, c: &nodeCollector{name: netclassName, c: node, logger: slog.New(slog.DiscardHandler)}})
	require.Contains(t, string(want), `device="synth0"`)

	ours := fixtureHost.Collectors()[netclassName]
	require.IsType(t, &netclassCollector{}, ours)
	require.NoError(t, testutil.GatherAndCompare(registryOf(t, ours), bytes.NewReader(want)))
}

// fixtureNetclass is a netclass collector of sysFS, configured as the
// fixture Host's.
func fixtureNetclass(t *testing.T, sysFS string) *netclassCollector {
	t.Helper()
	c, err := newNetclassCollector(slog.New(slog.DiscardHandler), sysFS, skipDevices, false)
	require.NoError(t, err)
	return c
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
}

func netclassText(t *testing.T, c *netclassCollector) string {
	t.Helper()
	out, err := testutil.GatherAndFormat(registryOf(t, c), expfmt.TypeTextPlain, "node_network_mtu_bytes", "node_network_up")
	require.NoError(t, err)
	return string(out)
}

func TestNetClass_ValuesChangeBetweenScrapes_ReadAfresh(t *testing.T) {
	sys := t.TempDir()
	copyTree(t, "testdata/sys/class/net/eth0", filepath.Join(sys, "class/net/eth0"))
	c := fixtureNetclass(t, sys)
	defer c.close()
	require.Contains(t, netclassText(t, c), `node_network_mtu_bytes{device="eth0"} 1400`)

	// Rewritten in place, as the kernel regenerates the attribute: the
	// kept-open file sees the new value.
	f, err := os.OpenFile(filepath.Join(sys, "class/net/eth0/mtu"), os.O_WRONLY|os.O_TRUNC, 0)
	require.NoError(t, err)
	_, err = f.WriteString("9000\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Contains(t, netclassText(t, c), `node_network_mtu_bytes{device="eth0"} 9000`)
}

func TestNetClass_DeviceReplacedOrRemoved_FollowsTheName(t *testing.T) {
	sys := t.TempDir()
	dev := filepath.Join(sys, "class/net/eth0")
	copyTree(t, "testdata/sys/class/net/eth0", dev)
	c := fixtureNetclass(t, sys)
	defer c.close()
	require.Contains(t, netclassText(t, c), `node_network_up{device="eth0"} 1`)

	// Another device under the same name (a new directory, made while the
	// old one exists, so that its inode differs): its files are opened, not
	// the old ones read.
	next := filepath.Join(sys, "next")
	require.NoError(t, os.MkdirAll(next, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(next, "operstate"), []byte("down\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(next, "mtu"), []byte("1280\n"), 0o644))
	require.NoError(t, os.RemoveAll(dev))
	require.NoError(t, os.Rename(next, dev))
	got := netclassText(t, c)
	require.Contains(t, got, `node_network_up{device="eth0"} 0`)
	require.Contains(t, got, `node_network_mtu_bytes{device="eth0"} 1280`)

	// Gone: no series, and its files are closed.
	require.NoError(t, os.RemoveAll(dev))
	require.Empty(t, netclassText(t, c))
	require.Empty(t, c.devices)
}

func TestNetClass_NoClassNet_SucceedsWithoutSeries(t *testing.T) {
	c := fixtureNetclass(t, t.TempDir())
	ch := make(chan prometheus.Metric, 16)
	require.NoError(t, c.Update(context.Background(), ch))
	require.Empty(t, ch)
}

func TestParseSysInt_AsStrconvBase0(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "42": 42, "-1": -1, "0x1003": 4099, "010": 8, "+7": 7, "1_000": 1000,
		"": 0, "none": 0, "99999999999999999999": 0, "-9223372036854775808": -9223372036854775808,
		"999999999999999999": 999999999999999999,
	} {
		require.Equal(t, want, parseSysInt([]byte(in)), in)
	}
}

// openFDs counts the test process's open files.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

func TestNetClass_OverKeptFilesLimit_OpensPerScrape(t *testing.T) {
	want := gatherText(t, collectorFunc{t: t, c: fixtureHost.Collectors()[netclassName]})
	before := openFDs(t)
	c := fixtureNetclass(t, "testdata/sys")
	c.maxKept = 2
	for range 2 {
		require.Equal(t, string(want), string(gatherText(t, collectorFunc{t: t, c: c})))
		require.Len(t, c.devices, 2)
	}
	c.close()
	require.Equal(t, before, openFDs(t), "files left open")
}

func TestNetClass_IgnoreInvalidSpeed_LeavesUnknownSpeedOut(t *testing.T) {
	c, err := newNetclassCollector(slog.New(slog.DiscardHandler), "testdata/sys", skipDevices, true)
	require.NoError(t, err)
	defer c.close()
	out, err := testutil.GatherAndFormat(registryOf(t, c), expfmt.TypeTextPlain, "node_network_speed_bytes")
	require.NoError(t, err)
	require.NotContains(t, string(out), `device="eth0"`, "eth0 answers -1")
	require.Contains(t, string(out), `node_network_speed_bytes{device="synth0"} 1.25e+09`)
}
