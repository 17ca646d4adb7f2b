package host

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// SelfCollector reports the agent's own process_* series, as client_golang's
// process collector does (the same names, help, types and values), for a
// tenth of its cost: that one opens and parses five files on each scrape,
// among them /proc/stat for the boot time, and lists /proc/self/fd into a
// slice of names. This one keeps the files open, reads them with pread,
// counts the descriptors without listing them, and takes the start time once
// (client_golang's moves only when the wall clock is stepped, with the
// kernel's boot time). As client_golang's, it reports nothing for a file it
// cannot read. TestSelfCollector_SameAsClientGolang holds it to
// client_golang's.
type SelfCollector struct {
	cpu, openFDs, maxFDs, vsize, maxVsize, rss, start, in, out *prometheus.Desc

	mu                    sync.Mutex
	stat, limits, netstat *keptFile
	fds                   *keptDir
	startTime             float64 // 0 until known
	pageSize              float64
}

var _ prometheus.Collector = (*SelfCollector)(nil)

// NewSelfCollector returns the collector of this process, read from procFS
// (/proc when empty). Close closes its files.
func NewSelfCollector(procFS string) *SelfCollector {
	if procFS == "" {
		procFS = "/proc"
	}
	dir := filepath.Join(procFS, strconv.Itoa(os.Getpid()))
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &SelfCollector{
		cpu:      desc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
		openFDs:  desc("process_open_fds", "Number of open file descriptors."),
		maxFDs:   desc("process_max_fds", "Maximum number of open file descriptors."),
		vsize:    desc("process_virtual_memory_bytes", "Virtual memory size in bytes."),
		maxVsize: desc("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."),
		rss:      desc("process_resident_memory_bytes", "Resident memory size in bytes."),
		start:    desc("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
		in:       desc("process_network_receive_bytes_total", "Number of bytes received by the process over the network."),
		out:      desc("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network."),
		stat:     newKeptFile(filepath.Join(dir, "stat"), false),
		limits:   newKeptFile(filepath.Join(dir, "limits"), false),
		netstat:  newKeptFile(filepath.Join(dir, "net/netstat"), true),
		fds:      newKeptDir(filepath.Join(dir, "fd")),
		pageSize: float64(os.Getpagesize()),
	}
}

// Describe sends the descriptors of every series.
func (c *SelfCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.openFDs, c.maxFDs, c.vsize, c.maxVsize, c.rss, c.start, c.in, c.out} {
		ch <- d
	}
}

// Collect sends the series it can read.
func (c *SelfCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if data, err := c.stat.read(); err == nil {
		var s procSample
		if parseStat(data, &s) == nil {
			// parseStat reads what the processes collector needs; the
			// virtual size is read here.
			if vsize, ok := statVsize(data); ok {
				ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, float64(s.cpuTicks)/userHZ)
				ch <- prometheus.MustNewConstMetric(c.vsize, prometheus.GaugeValue, float64(vsize))
				ch <- prometheus.MustNewConstMetric(c.rss, prometheus.GaugeValue, float64(s.rssPages)*c.pageSize)
				if c.startTime == 0 {
					if boot, err := bootTime(filepath.Dir(filepath.Dir(c.stat.path))); err == nil {
						c.startTime = float64(boot) + float64(s.start)/userHZ
					}
				}
				if c.startTime != 0 {
					ch <- prometheus.MustNewConstMetric(c.start, prometheus.GaugeValue, c.startTime)
				}
			}
		}
	}
	if n, err := c.countFDs(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.openFDs, prometheus.GaugeValue, float64(n))
	}
	if data, err := c.limits.read(); err == nil {
		files, err1 := limitValue(data, "Max open files")
		space, err2 := limitValue(data, "Max address space")
		if err1 == nil && err2 == nil {
			ch <- prometheus.MustNewConstMetric(c.maxFDs, prometheus.GaugeValue, files)
			ch <- prometheus.MustNewConstMetric(c.maxVsize, prometheus.GaugeValue, space)
		}
	}
	if data, err := c.netstat.read(); err == nil {
		if in, out, err := ipExtOctets(data); err == nil {
			ch <- prometheus.MustNewConstMetric(c.in, prometheus.CounterValue, in)
			ch <- prometheus.MustNewConstMetric(c.out, prometheus.CounterValue, out)
		}
	}
}

// countFDs counts the entries of /proc/<pid>/fd, the folder kept open
// counting as client_golang's, opened to be listed, does. Since Linux 6.2
// the folder's size is that count, taken from the descriptor table's bitmap
// where a listing formats an entry per descriptor (the agent keeps hundreds
// open); older kernels report 0, and the folder is listed.
func (c *SelfCollector) countFDs() (int, error) {
	if c.fds.fd < 0 {
		if _, err := c.fds.list(nil, func([]byte) bool { return false }); err != nil {
			return 0, err
		}
		if c.fds.fd < 0 {
			return 0, os.ErrNotExist
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(c.fds.fd, &st); err == nil && st.Size > 0 {
		return int(st.Size), nil
	}
	n := 0
	if err := readDir(c.fds.fd, &c.fds.buf, func([]byte, uint8) { n++ }); err != nil {
		c.fds.close()
		return 0, err
	}
	return n, nil
}

// Close closes the files kept open; a later Collect opens them again.
func (c *SelfCollector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stat.close()
	c.limits.close()
	c.netstat.close()
	c.fds.close()
}

// statVsize returns the vsize field (the 23rd) of a /proc/<pid>/stat line.
func statVsize(b []byte) (uint64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	rest := b[i+1:]
	var field []byte
	for range 23 - 2 { // fields after the command start at the 3rd
		field, rest = nextField(rest)
	}
	return parseUint(field)
}

// bootTime is the btime line of <procFS>/stat, read once.
func bootTime(procFS string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(procFS, "stat"))
	if err != nil {
		return 0, err
	}
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			if n, ok := parseUint(bytes.TrimSpace(v)); ok {
				return n, nil
			}
		}
	}
	return 0, errors.New("no btime line")
}

// limitValue is the soft limit of the named line of /proc/<pid>/limits, as
// procfs reads it: "unlimited" is the largest uint64.
func limitValue(data []byte, name string) (float64, error) {
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok && len(rest) > 0 && rest[0] == ' ' {
			v, _ := nextField(rest)
			if string(v) == "unlimited" {
				return math.MaxUint64, nil
			}
			n, err := strconv.ParseUint(string(v), 10, 64)
			return float64(n), err
		}
	}
	return 0, errors.New("no " + name + " line")
}

// ipExtOctets are the IpExt InOctets and OutOctets of a netstat file, 0 when
// absent, as client_golang reports them.
func ipExtOctets(data []byte) (in, out float64, err error) {
	for len(data) > 0 {
		var names, values []byte
		names, data = cutLine(data)
		values, data = cutLine(data)
		proto, names := nextField(names)
		_, values = nextField(values)
		if string(proto) != "IpExt:" {
			continue
		}
		for {
			var name, value []byte
			name, names = nextField(names)
			value, values = nextField(values)
			if len(name) == 0 || len(value) == 0 {
				if len(name) != len(value) {
					return 0, 0, errors.New("field count mismatch in IpExt")
				}
				break
			}
			switch string(name) {
			case "InOctets":
				if in, err = parseNetstatValue(value); err != nil {
					return 0, 0, err
				}
			case "OutOctets":
				if out, err = parseNetstatValue(value); err != nil {
					return 0, 0, err
				}
			}
		}
	}
	return in, out, nil
}
