package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs/sysfs"

	"github.com/hybridsuite/hybrid/exporters"
)

// cpuCollector is node_exporter's cpu collector without --collector.cpu.info
// (with it, or with its flags-include or bugs-include, New uses
// node_exporter's own): from the cpu<N> lines of /proc/stat, the seconds per
// CPU and mode (and in guests, with --collector.cpu.guest), each kept from
// going backwards and reset when idle jumps back 3 s or more (a hotplug), as
// node_exporter keeps them; the isolated CPUs, read once at start; the thermal
// throttle counts per package and core; and whether each CPU is online, if
// the first one (in name order) has an online file.
//
// node_exporter parses the whole of /proc/stat (every interrupt) and globs
// and opens the sysfs files of every CPU twice per scrape; this collector
// parses the cpu lines in place, lists the CPU directory once, and keeps the
// files open (a missing one, such as thermal_throttle on a VM, is looked up
// again on every scrape, as node_exporter does). TestReimplemented_SameAsNodeExporter
// holds it to node_exporter's.
type cpuCollector struct {
	guest                                     bool
	isolated                                  []uint16
	seconds, guestSeconds, isolatedDesc       *prometheus.Desc
	coreThrottle, packageThrottle, onlineDesc *prometheus.Desc

	mu     sync.Mutex
	stat   *keptFile
	dir    string
	listed *keptDir             // the CPU folder, listed on each scrape
	names  []string             // scratch: the cpu<N> entries of dir, sorted
	files  map[string]*cpuFiles // by entry name
	times  map[int64]*cpuTimes  // what was reported, by CPU number
	seen   map[int64]bool       // scratch
	pkgs   map[uint64]uint64    // scratch: package throttles
	cores  map[[2]uint64]uint64 // scratch: core throttles by package and core
	labels map[int64]string     // CPU numbers as labels
}

var _ exporters.Collector = (*cpuCollector)(nil)

type cpuFiles struct {
	packageID, coreID, coreThrottle, packageThrottle, online *keptFile
	listed                                                   bool
}

// cpuTimes are a CPU's seconds in user, nice, system, idle, iowait, irq,
// softirq, steal, guest and guest_nice, the order of /proc/stat.
type cpuTimes [10]float64

var cpuModes = [8]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

const (
	cpuIdle = 3
	// cpuJumpBack is how far idle may go back before the CPU's times are
	// taken afresh: node_exporter's jumpBackSeconds.
	cpuJumpBack = 3.0
)

// newCPUCollector returns nil when node_exporter's flags ask for what this
// collector does not do (the cpuinfo series).
func newCPUCollector(procFS, sysFS string) (*cpuCollector, error) {
	if nodeFlag("collector.cpu.info") == "true" || nodeFlag("collector.cpu.info.flags-include") != "" ||
		nodeFlag("collector.cpu.info.bugs-include") != "" {
		return nil, nil
	}
	fs, err := sysfs.NewFS(sysFS)
	if err != nil {
		return nil, fmt.Errorf("open sysfs: %w", err)
	}
	isolated, err := fs.IsolatedCPUs()
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("unable to get isolated cpus: %w", err)
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("node_cpu_"+name, help, labels, nil)
	}
	return &cpuCollector{
		guest:        nodeFlag("collector.cpu.guest") == "true",
		isolated:     isolated,
		seconds:      desc("seconds_total", "Seconds the CPUs spent in each mode.", "cpu", "mode"),
		guestSeconds: desc("guest_seconds_total", "Seconds the CPUs spent in guests (VMs) for each mode.", "cpu", "mode"),
		isolatedDesc: desc("isolated", "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.", "cpu"),
		coreThrottle: desc("core_throttles_total", "Number of times this CPU core has been throttled.", "package", "core"),
		packageThrottle: desc("package_throttles_total", "Number of times this CPU package has been throttled.",
			"package"),
		onlineDesc: desc("online", "CPUs that are online and being scheduled.", "cpu"),
		stat:       newKeptFile(filepath.Join(procFS, "stat"), false),
		dir:        filepath.Join(sysFS, "devices/system/cpu"),
		listed:     newKeptDir(filepath.Join(sysFS, "devices/system/cpu")),
		files:      map[string]*cpuFiles{},
		times:      map[int64]*cpuTimes{},
		seen:       map[int64]bool{},
		pkgs:       map[uint64]uint64{},
		cores:      map[[2]uint64]uint64{},
		labels:     map[int64]string{},
	}, nil
}

func (c *cpuCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.updateStat(ch); err != nil {
		return err
	}
	for _, cpu := range c.isolated {
		ch <- prometheus.MustNewConstMetric(c.isolatedDesc, prometheus.GaugeValue, 1, strconv.Itoa(int(cpu)))
	}
	if err := c.list(); err != nil {
		return fmt.Errorf("list %s: %w", c.dir, err)
	}
	c.updateThermalThrottle(ch)
	return c.updateOnline(ch)
}

func (c *cpuCollector) updateStat(ch chan<- prometheus.Metric) error {
	data, err := c.stat.read()
	if err != nil {
		return fmt.Errorf("read %s: %w", c.stat.path, err)
	}
	clear(c.seen)
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		key, rest := nextField(line)
		if len(key) <= 3 || !bytes.HasPrefix(key, []byte("cpu")) {
			continue // the total, and other lines
		}
		if first, _ := nextField(rest); len(first) == 0 {
			continue // node_exporter skips lines of one field
		}
		id, err := strconv.ParseInt(string(key[3:]), 10, 64)
		if err != nil {
			return fmt.Errorf("parse %s: cpu number %q: %w", c.stat.path, key, err)
		}
		var n cpuTimes
		for i := range n {
			var f []byte
			if f, rest = nextField(rest); len(f) == 0 {
				break // older kernels have fewer; they stay 0
			}
			v, ok := parseUint(f)
			if !ok {
				return fmt.Errorf("parse %s: %q", c.stat.path, line)
			}
			n[i] = float64(v) / userHZ
		}
		c.seen[id] = true
		t := c.times[id]
		if t == nil {
			t = &cpuTimes{}
			c.times[id] = t
			c.labels[id] = strconv.FormatInt(id, 10)
		}
		if t[cpuIdle]-n[cpuIdle] >= cpuJumpBack { // a hotplug
			*t = cpuTimes{}
		}
		for i, v := range n {
			if v >= t[i] { // counters do not go back
				t[i] = v
			}
		}
	}
	for id := range c.times {
		if !c.seen[id] { // gone offline
			delete(c.times, id)
		}
	}
	for id, t := range c.times {
		cpu := c.labels[id]
		for i, mode := range cpuModes {
			ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.CounterValue, t[i], cpu, mode)
		}
		if c.guest {
			ch <- prometheus.MustNewConstMetric(c.guestSeconds, prometheus.CounterValue, t[8], cpu, "user")
			ch <- prometheus.MustNewConstMetric(c.guestSeconds, prometheus.CounterValue, t[9], cpu, "nice")
		}
	}
	return nil
}

// list sets names to the cpu<digit>... entries of the CPU directory, in the
// order filepath.Glob returns them, and keeps their files.
func (c *cpuCollector) list() error {
	var err error
	c.names, err = c.listed.list(c.names[:0], func(name []byte) bool {
		return len(name) > 3 && bytes.HasPrefix(name, []byte("cpu")) && name[3] >= '0' && name[3] <= '9'
	})
	if err != nil {
		return err
	}
	for _, f := range c.files {
		f.listed = false
	}
	for _, name := range c.names {
		f := c.files[name]
		if f == nil {
			file := func(path string) *keptFile { return newKeptFile(filepath.Join(c.dir, name, path), false) }
			f = &cpuFiles{
				packageID:       file("topology/physical_package_id"),
				coreID:          file("topology/core_id"),
				coreThrottle:    file("thermal_throttle/core_throttle_count"),
				packageThrottle: file("thermal_throttle/package_throttle_count"),
				online:          file("online"),
			}
			c.files[name] = f
		}
		f.listed = true
	}
	for name, f := range c.files {
		if !f.listed {
			f.close()
			delete(c.files, name)
		}
	}
	return nil
}

// updateThermalThrottle reports the throttle count of each package and core
// from the first CPU of it that has one, as node_exporter does.
func (c *cpuCollector) updateThermalThrottle(ch chan<- prometheus.Metric) {
	clear(c.pkgs)
	clear(c.cores)
	for _, name := range c.names {
		f := c.files[name]
		pkg, err := readUintFile(f.packageID)
		if err != nil {
			continue
		}
		core, err := readUintFile(f.coreID)
		if err != nil {
			continue
		}
		if _, ok := c.cores[[2]uint64{pkg, core}]; !ok {
			if n, err := readUintFile(f.coreThrottle); err == nil {
				c.cores[[2]uint64{pkg, core}] = n
			}
		}
		if _, ok := c.pkgs[pkg]; !ok {
			if n, err := readUintFile(f.packageThrottle); err == nil {
				c.pkgs[pkg] = n
			}
		}
	}
	for pkg, n := range c.pkgs {
		ch <- prometheus.MustNewConstMetric(c.packageThrottle, prometheus.CounterValue, float64(n),
			strconv.FormatUint(pkg, 10))
	}
	for pc, n := range c.cores {
		ch <- prometheus.MustNewConstMetric(c.coreThrottle, prometheus.CounterValue, float64(n),
			strconv.FormatUint(pc[0], 10), strconv.FormatUint(pc[1], 10))
	}
}

// updateOnline reports whether each CPU is online, unless the first has no
// online file (cpu0 often has none): then none is reported.
func (c *cpuCollector) updateOnline(ch chan<- prometheus.Metric) error {
	if len(c.names) == 0 {
		return errors.New("no cpu in " + c.dir) // node_exporter's panics
	}
	for i, name := range c.names {
		data, err := c.files[name].online.read()
		if i == 0 && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		online := 0.0
		if err == nil && string(bytes.TrimSpace(data[:min(len(data), 128)])) == "1" {
			online = 1
		}
		ch <- prometheus.MustNewConstMetric(c.onlineDesc, prometheus.GaugeValue, online, name[3:])
	}
	return nil
}

// readUintFile reads a decimal as node_exporter's readUintFromFile does:
// surrounded by white space or not.
func readUintFile(f *keptFile) (uint64, error) {
	data, err := f.read()
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
}

func (f *cpuFiles) close() {
	for _, k := range []*keptFile{f.packageID, f.coreID, f.coreThrottle, f.packageThrottle, f.online} {
		k.close()
	}
}

func (c *cpuCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stat.close()
	c.listed.close()
	for _, f := range c.files {
		f.close()
	}
}
