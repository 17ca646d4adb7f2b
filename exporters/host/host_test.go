package host

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/exporters"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureHost is the test binary's Host. node_exporter's flags are parsed once
// per process, so every test here sees node_exporter reading the fixture trees
// under testdata/ (made by testdata/snapshot.sh).
var fixtureHost *Host

func fixtureOptions() Options {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			panic(err)
		}
		return a
	}
	return Options{
		ProcFS:           abs("testdata/proc"),
		SysFS:            abs("testdata/sys"),
		RootFS:           abs("testdata/rootfs"),
		NetdevFromProcFS: true, // netlink would ask this machine's kernel
		Root:             abs("testdata/no-server-root"),
		MariaDBDataDir:   abs("testdata/no-datadir"),
		// Its files' mtimes depend on the checkout: checked apart from the golden file.
		TextfileDirectory: abs("testdata/textfile"),
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(setEUIDHelperEnv) != "" {
		os.Exit(setEUIDHelper())
	}
	flag.Parse()
	h, err := New(slog.New(slog.DiscardHandler), fixtureOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, "host fixture:", err)
		os.Exit(1)
	}
	fixtureHost = h
	os.Exit(m.Run())
}

// goldenCollectors are the default collectors whose output follows from the
// fixture files alone. filesystem (statfs), time, timex (clock syscalls) and
// uname (uname syscall) depend on the machine running the test; see
// TestHost_MachineDependentCollectors_Succeed.
var goldenCollectors = []string{
	"arp", "conntrack", "cpu", "diskstats", "entropy", "filefd", "loadavg", "mdadm", "meminfo", "netclass",
	"netdev", "netstat", "os", "pressure", "sockstat", "softnet", "stat", "udp_queues", "vmstat",
}

// collectorFunc runs one of our collectors as a prometheus.Collector, failing
// the test when it returns an error.
type collectorFunc struct {
	t *testing.T
	c exporters.Collector
}

func (collectorFunc) Describe(chan<- *prometheus.Desc) {}

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	if err := f.c.Update(context.Background(), ch); err != nil {
		f.t.Errorf("update: %v", err)
	}
}

func registryOf(t *testing.T, cs ...exporters.Collector) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		reg.MustRegister(collectorFunc{t: t, c: c})
	}
	return reg
}

// compareGolden compares what g gathers with the golden file, after rewriting
// it when the test runs with -update.
func compareGolden(t *testing.T, g prometheus.Gatherer, golden string) {
	t.Helper()
	if *update {
		mfs, err := g.Gather()
		require.NoError(t, err)
		var out bytes.Buffer
		enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			require.NoError(t, enc.Encode(mf))
		}
		require.NoError(t, os.WriteFile(golden, out.Bytes(), 0o644))
	}
	f, err := os.Open(golden)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, testutil.GatherAndCompare(g, f), "run go test ./exporters/host -update to accept the new output")
}

func TestHost_FixtureTrees_MatchGolden(t *testing.T) {
	cs := fixtureHost.Collectors()
	var golden []exporters.Collector
	for _, name := range goldenCollectors {
		require.Contains(t, cs, name)
		golden = append(golden, cs[name])
	}
	compareGolden(t, registryOf(t, golden...), "testdata/host.prom")
}

func TestHost_MachineDependentCollectors_Succeed(t *testing.T) {
	want := map[string]string{
		"filesystem": "node_filesystem_size_bytes",
		"time":       "node_time_seconds",
		"timex":      "node_timex_offset_seconds",
		"uname":      "node_uname_info",
		// the fixture's textfile directory holds one .prom file
		"textfile": "cron_backup_last_success_timestamp_seconds",
	}
	cs := fixtureHost.Collectors()
	for name, metric := range want {
		t.Run(name, func(t *testing.T) {
			mfs, err := registryOf(t, cs[name]).Gather()
			require.NoError(t, err)
			require.True(t, slices.ContainsFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == metric }),
				"%s reports no %s", name, metric)
		})
	}
}

func TestHost_Collectors_NodeExporterNamesAndOurs(t *testing.T) {
	want := append(DefaultCollectors(), directoriesName, processesName)
	slices.Sort(want)
	got := slices.Sorted(maps.Keys(fixtureHost.Collectors()))
	require.Equal(t, want, got)
}

func TestHost_Collectors_ReturnsCallersOwnMap(t *testing.T) {
	cs := fixtureHost.Collectors()
	delete(cs, "cpu")
	require.Contains(t, fixtureHost.Collectors(), "cpu")
}

func TestNew_UnknownCollectors_ErrorNamesThem(t *testing.T) {
	opts := fixtureOptions()
	opts.Collectors = []string{"cpu", "nosuch", "cpu.info", "meminfo"}
	_, err := New(slog.New(slog.DiscardHandler), opts)
	require.ErrorContains(t, err, `unknown node_exporter collectors "cpu.info", "nosuch"`)
}

func TestNew_NodeProcessesCollector_Refused(t *testing.T) {
	opts := fixtureOptions()
	opts.Collectors = []string{"cpu", "processes"}
	_, err := New(slog.New(slog.DiscardHandler), opts)
	require.ErrorContains(t, err, `"processes"`)
}

func TestNew_SameNodeSettingsAgain_Succeeds(t *testing.T) {
	opts := fixtureOptions()
	opts.Root = t.TempDir() // not a node_exporter setting
	// Same collectors in another order, with a duplicate: the same settings.
	opts.Collectors = DefaultCollectors()
	slices.Reverse(opts.Collectors)
	opts.Collectors = append(opts.Collectors, "cpu")
	h, err := New(slog.New(slog.DiscardHandler), opts)
	require.NoError(t, err)
	require.Len(t, h.Collectors(), len(DefaultCollectors())+2)
}

func TestNew_OtherNodeSettingsInSameProcess_Fails(t *testing.T) {
	for name, change := range map[string]func(*Options){
		"procfs":     func(o *Options) { o.ProcFS = "/proc" },
		"collectors": func(o *Options) { o.Collectors = []string{"cpu"} },
		"netlink":    func(o *Options) { o.NetdevFromProcFS = false },
	} {
		t.Run(name, func(t *testing.T) {
			opts := fixtureOptions()
			change(&opts)
			_, err := New(slog.New(slog.DiscardHandler), opts)
			require.ErrorContains(t, err, "set once per process")
		})
	}
}

func TestNew_NegativeInterval_Fails(t *testing.T) {
	opts := fixtureOptions()
	opts.DirectoryInterval = -1
	_, err := New(slog.New(slog.DiscardHandler), opts)
	require.ErrorContains(t, err, "DirectoryInterval")
}

type panickingCollector struct{}

func (panickingCollector) Update(chan<- prometheus.Metric) error {
	panic("index out of range [0] with length 0")
}

func TestNodeCollector_Panics_ReturnsError(t *testing.T) {
	c := &nodeCollector{name: "cpu", c: panickingCollector{}, logger: slog.New(slog.DiscardHandler)}
	err := c.Update(context.Background(), make(chan prometheus.Metric, 1))
	require.ErrorContains(t, err, "node_exporter collector cpu panicked: index out of range")
}

func TestNodeCollector_NoData_SucceedsWithoutSeries(t *testing.T) {
	// The fixture has no /proc/mdstat: mdadm reports no data.
	c := fixtureHost.Collectors()["mdadm"]
	ch := make(chan prometheus.Metric, 16)
	require.NoError(t, c.Update(context.Background(), ch))
	require.Empty(t, ch)
}

func TestHost_Close_ClosesTheFilesKeptOpen(t *testing.T) {
	before := openFDs(t)
	h, err := New(slog.New(slog.DiscardHandler), fixtureOptions())
	require.NoError(t, err)
	for _, name := range []string{netclassName, netstatName, processesName} {
		require.NoError(t, h.Collectors()[name].Update(context.Background(), make(chan prometheus.Metric, 1024)))
	}
	require.Greater(t, openFDs(t), before)
	require.NoError(t, h.Close())
	require.Equal(t, before, openFDs(t))
}
