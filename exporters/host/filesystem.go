package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/exporters"
)

// filesystemCollector is node_exporter's filesystem collector
// (node_filesystem_*{device,mountpoint,fstype,device_error} and
// node_filesystem_mount_info), reading /proc/1/mountinfo through a
// descriptor kept open and parsing a mount's line once, where node_exporter
// opens and parses the whole file into maps of options and starts two
// goroutines and a timer per mount on each scrape.
//
// As node_exporter's: the mounts its flags exclude are skipped; a statfs that
// fails gives device_error 1 with the error as label; a mount whose statfs
// has not returned after --collector.filesystem.mount-timeout is reported as
// "mountpoint timeout" without a new statfs until that one returns (the
// statfs are made one after the other, not by four workers: they cost a
// microsecond each); the first of two mounts with the same labels is
// reported. TestReimplemented_SameAsNodeExporter and hostbench hold it to
// node_exporter's.
type filesystemCollector struct {
	rootFS                string
	mountPoints, fsTypes  deviceFilterRE
	timeout               time.Duration
	size, free, avail     *prometheus.Desc
	files, filesFree      *prometheus.Desc
	purgeable, ro, devErr *prometheus.Desc
	mountInfo             *prometheus.Desc
	mountinfo, selfMounts *keptFile // /proc/1/mountinfo, and /proc/self/mountinfo when that is hidden
	mu                    sync.Mutex
	mounts                map[string]*mount // by mountinfo line
	seen                  uint64
	pendingMu             sync.Mutex
	pending               map[string]time.Time // mount points whose statfs has not returned, since when
	// statfsCall is unix.Statfs; tests make one hang.
	statfsCall func(path string, st *unix.Statfs_t) error
}

// deviceFilterRE is node_exporter's deviceFilter.
type deviceFilterRE struct{ exclude, include *regexp.Regexp }

func (f deviceFilterRE) ignored(name string) bool {
	return (f.exclude != nil && f.exclude.MatchString(name)) || (f.include != nil && !f.include.MatchString(name))
}

// mount is one line of mountinfo, parsed.
type mount struct {
	device, mountPoint, fsType, major, minor string
	ro                                       bool
	ignored                                  bool // by the flags
	seen                                     uint64
}

var _ exporters.Collector = (*filesystemCollector)(nil)

// newFilesystemCollector returns nil when node_exporter's flags are ones
// whose interplay it does not follow (the deprecated names, include
// patterns): node_exporter's own is used then.
func newFilesystemCollector(procFS, rootFS string) (*filesystemCollector, error) {
	for _, flag := range []string{"collector.filesystem.ignored-mount-points", "collector.filesystem.ignored-fs-types",
		"collector.filesystem.mount-points-include", "collector.filesystem.fs-types-include"} {
		if nodeFlag(flag) != "" {
			return nil, nil
		}
	}
	timeout, err := time.ParseDuration(nodeFlag("collector.filesystem.mount-timeout"))
	if err != nil {
		return nil, fmt.Errorf("filesystem mount timeout: %w", err)
	}
	c := &filesystemCollector{
		rootFS:     rootFS,
		timeout:    timeout,
		mountinfo:  newKeptFile(filepath.Join(procFS, "1/mountinfo"), true),
		selfMounts: newKeptFile(filepath.Join(procFS, "self/mountinfo"), true),
		mounts:     map[string]*mount{},
		pending:    map[string]time.Time{},
		statfsCall: unix.Statfs,
	}
	if p := nodeFlag("collector.filesystem.mount-points-exclude"); p != "" {
		if c.mountPoints.exclude, err = regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("filesystem mount points pattern: %w", err)
		}
	}
	if p := nodeFlag("collector.filesystem.fs-types-exclude"); p != "" {
		if c.fsTypes.exclude, err = regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("filesystem types pattern: %w", err)
		}
	}
	labels := []string{"device", "mountpoint", "fstype", "device_error"}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("node_filesystem_"+name, help, labels, nil)
	}
	c.size = desc("size_bytes", "Filesystem size in bytes.")
	c.free = desc("free_bytes", "Filesystem free space in bytes.")
	c.avail = desc("avail_bytes", "Filesystem space available to non-root users in bytes.")
	c.files = desc("files", "Filesystem total file nodes.")
	c.filesFree = desc("files_free", "Filesystem total free file nodes.")
	c.purgeable = desc("purgeable_bytes", "Filesystem space available including purgeable space (MacOS specific).")
	c.ro = desc("readonly", "Filesystem read-only status.")
	c.devErr = desc("device_error", "Whether an error occurred while getting statistics for the given device.")
	c.mountInfo = prometheus.NewDesc("node_filesystem_mount_info", "Filesystem mount information.",
		[]string{"device", "major", "minor", "mountpoint"}, nil)
	return c, nil
}

func (c *filesystemCollector) Update(_ context.Context, ch chan<- prometheus.Metric) error {
	mounts, err := c.readMounts()
	if err != nil {
		return err
	}
	type key struct{ device, mountPoint, fsType, deviceError, major, minor string }
	seen := make(map[key]bool, len(mounts))
	for _, m := range mounts {
		if c.stuck(m.mountPoint) {
			k := key{m.device, m.mountPoint, m.fsType, "mountpoint timeout", "", ""}
			if !seen[k] {
				seen[k] = true
				ch <- prometheus.MustNewConstMetric(c.devErr, prometheus.GaugeValue, 1, m.device, m.mountPoint, m.fsType, k.deviceError)
				ch <- prometheus.MustNewConstMetric(c.ro, prometheus.GaugeValue, 0, m.device, m.mountPoint, m.fsType, k.deviceError)
			}
			continue
		}
		st, err, done := c.statfsWithin(m.mountPoint)
		if !done { // hung past the mount timeout: the next scrapes skip it while it stays pending
			k := key{m.device, m.mountPoint, m.fsType, "mountpoint timeout", "", ""}
			if !seen[k] {
				seen[k] = true
				ch <- prometheus.MustNewConstMetric(c.devErr, prometheus.GaugeValue, 1, m.device, m.mountPoint, m.fsType, k.deviceError)
				ch <- prometheus.MustNewConstMetric(c.ro, prometheus.GaugeValue, 0, m.device, m.mountPoint, m.fsType, k.deviceError)
			}
			continue
		}
		k := key{m.device, m.mountPoint, m.fsType, "", m.major, m.minor}
		if err != nil {
			k.deviceError = err.Error()
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		ro := 0.0
		if m.ro {
			ro = 1
		}
		labels := []string{m.device, m.mountPoint, m.fsType, k.deviceError}
		if err != nil {
			ch <- prometheus.MustNewConstMetric(c.devErr, prometheus.GaugeValue, 1, labels...)
			ch <- prometheus.MustNewConstMetric(c.ro, prometheus.GaugeValue, ro, labels...)
			continue
		}
		bsize := float64(st.Bsize)
		for _, s := range []struct {
			desc *prometheus.Desc
			v    float64
		}{
			{c.devErr, 0}, {c.ro, ro},
			{c.size, float64(st.Blocks) * bsize}, {c.free, float64(st.Bfree) * bsize}, {c.avail, float64(st.Bavail) * bsize},
			{c.files, float64(st.Files)}, {c.filesFree, float64(st.Ffree)},
			{c.purgeable, 0}, // not a Linux notion: node_exporter reports 0
		} {
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, s.v, labels...)
		}
		ch <- prometheus.MustNewConstMetric(c.mountInfo, prometheus.GaugeValue, 1, m.device, m.major, m.minor, m.mountPoint)
	}
	return nil
}

// stuck reports whether a statfs of mountPoint has been running for the
// mount timeout.
func (c *filesystemCollector) stuck(mountPoint string) bool {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	since, ok := c.pending[mountPoint]
	return ok && time.Since(since) >= c.timeout
}

// statfsWithin is a statfs of the mount point under the root, marked pending
// while it runs, waited for at most the mount timeout: one hung mount (a
// stuck NFS server) costs one scrape that long, then is skipped while it
// stays pending, and the mounts after it are still reported, as
// node_exporter's workers do. done is false when it did not return in time.
func (c *filesystemCollector) statfsWithin(mountPoint string) (st unix.Statfs_t, err error, done bool) {
	c.pendingMu.Lock()
	if _, ok := c.pending[mountPoint]; !ok {
		c.pending[mountPoint] = time.Now()
	}
	c.pendingMu.Unlock()
	type answer struct {
		st  unix.Statfs_t
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		var a answer
		a.err = c.statfsCall(filepath.Join(c.rootFS, mountPoint), &a.st)
		c.pendingMu.Lock()
		delete(c.pending, mountPoint)
		c.pendingMu.Unlock()
		answered <- a
	}()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case a := <-answered:
		return a.st, a.err, true
	case <-timer.C:
		return st, nil, false
	}
}

// readMounts returns the mounts the flags do not exclude, in the order of
// mountinfo. It holds the lock only while it reads: a statfs that hangs must
// not stop the next scrape.
func (c *filesystemCollector) readMounts() ([]*mount, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := c.mountinfo.read()
	if errors.Is(err, os.ErrNotExist) { // hidepid: as node_exporter, this process's mounts
		data, err = c.selfMounts.read()
	}
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	c.seen++
	var out []*mount
	for len(data) > 0 {
		var line []byte
		line, data = cutLine(data)
		m := c.mounts[string(line)]
		if m == nil {
			if m, err = c.parseMount(string(line)); err != nil {
				return nil, err
			}
			c.mounts[string(line)] = m
		}
		m.seen = c.seen
		if !m.ignored {
			out = append(out, m)
		}
	}
	for line, m := range c.mounts {
		if m.seen != c.seen {
			delete(c.mounts, line)
		}
	}
	return out, nil
}

// parseMount parses a mountinfo line as procfs and node_exporter do.
func (c *filesystemCollector) parseMount(line string) (*mount, error) {
	f := strings.Split(line, " ")
	n := len(f)
	if n < 10 {
		return nil, fmt.Errorf("too few fields in mount string: %s", line)
	}
	if f[n-4] != "-" {
		return nil, fmt.Errorf("couldn't find separator in expected field: %s", f[n-4])
	}
	if _, err := strconv.Atoi(f[0]); err != nil {
		return nil, fmt.Errorf("mount ID: %q", f[0])
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return nil, fmt.Errorf("parent ID: %q", f[1])
	}
	majorS, minorS, ok := strings.Cut(f[2], ":")
	major, err1 := strconv.Atoi(majorS)
	minor, err2 := strconv.Atoi(minorS)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("malformed mount point MajorMinorVer: %q", f[2])
	}
	mp := strings.ReplaceAll(f[4], "\\040", " ")
	mp = strings.ReplaceAll(mp, "\\011", "\t")
	if c.rootFS != "/" {
		if mp = strings.TrimPrefix(mp, c.rootFS); mp == "" {
			mp = "/"
		}
	}
	m := &mount{
		device:     strings.ToValidUTF8(f[n-2], "\uFFFD"),
		mountPoint: strings.ToValidUTF8(mp, "\uFFFD"),
		fsType:     strings.ToValidUTF8(f[n-3], "\uFFFD"),
		major:      strconv.Itoa(major),
		minor:      strconv.Itoa(minor),
		ro:         hasOption(f[5], "ro") || hasOption(f[n-1], "ro") || hasOption(f[n-1], "emergency_ro"),
	}
	m.ignored = c.mountPoints.ignored(m.mountPoint) || c.fsTypes.ignored(m.fsType)
	return m, nil
}

// hasOption reports whether a comma-separated option list sets name with no
// value, as node_exporter reads it (through procfs's map of options).
func hasOption(options, name string) bool {
	found := false
	for opt := range strings.SplitSeq(options, ",") {
		key, value, _ := strings.Cut(opt, "=")
		value, _, _ = strings.Cut(value, "=")
		if key == name {
			found = value == "" // the last one wins, as in a map
		}
	}
	return found
}

func (c *filesystemCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mountinfo.close()
	c.selfMounts.close()
}
