package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// cgroupStats is one reading of a container's cgroup. The has* flags say which
// optional groups of values the kernel offered (a v2 controller that is not
// enabled for the container, a v1 controller that is not mounted); only the
// groups present are exported.
type cgroupStats struct {
	cpuUsageNs uint64

	hasThrottled bool
	throttledNs  uint64

	hasMemory       bool
	memUsage        uint64
	memInactiveFile uint64

	hasOOM   bool
	oomKills uint64 // resets when the cgroup is recreated, i.e. on every container start

	hasIO        bool
	ioReadBytes  uint64
	ioWriteBytes uint64
}

// workingSet is usage minus inactive file pages, floored at zero, as cAdvisor
// computes container_memory_working_set_bytes.
func (s *cgroupStats) workingSet() uint64 {
	if s.memInactiveFile > s.memUsage {
		return 0
	}
	return s.memUsage - s.memInactiveFile
}

// cgroupReader reads one container's cgroup. It is resolved once per
// container run and then called on every scrape with a scratch buffer, so
// reading does no path building and little allocation.
type cgroupReader interface {
	read(buf []byte, s *cgroupStats) error
}

var (
	_ cgroupReader = (*cgroupV1)(nil)
	_ cgroupReader = (*cgroupV2)(nil)
)

// errCgroupGone is returned when the container's cgroup directory has
// disappeared, which happens when the container stops between the inventory
// snapshot and the read.
var errCgroupGone = errors.New("cgroup no longer exists")

// cgroupMode says which hierarchy the host uses.
type cgroupMode int

const (
	cgroupModeV1 cgroupMode = 1 // legacy or hybrid: controllers on per-controller v1 hierarchies
	cgroupModeV2 cgroupMode = 2 // unified: one v2 hierarchy with every controller
)

// detectCgroupMode reports v2 when the root itself is a cgroup2 mount (it has
// cgroup.controllers), and v1 otherwise. A hybrid host (v1 controllers plus a
// controller-less v2 mount at <root>/unified) is v1 here.
func detectCgroupMode(root string) cgroupMode {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return cgroupModeV2
	}
	return cgroupModeV1
}

// resolveCgroup finds the cgroup of the container id whose init process is
// pid. It trusts /proc/<pid>/cgroup first, which works for any cgroup driver
// and parent, and falls back to the conventional Docker paths (cgroupfs
// "/docker/<id>", systemd "/system.slice/docker-<id>.scope"), which is what
// is left when the agent runs in its own cgroup namespace and sees "/".
func resolveCgroup(mode cgroupMode, cgroupRoot, procRoot, id string, pid int) (cgroupReader, error) {
	own, err := procCgroups(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	conventional := []string{"/docker/" + id, "/system.slice/docker-" + id + ".scope"}

	if mode == cgroupModeV2 {
		candidates := conventional
		if p, ok := own[""]; ok && plausible(p, id) {
			candidates = append([]string{p}, conventional...)
		}
		for _, rel := range candidates {
			dir := filepath.Join(cgroupRoot, rel)
			if isDir(dir) {
				return newCgroupV2(dir), nil
			}
		}
		return nil, fmt.Errorf("find cgroup v2 directory of container %s under %s: tried %v", shortID(id), cgroupRoot, candidates)
	}

	dirs := map[string]string{}
	for _, ctrl := range []string{"cpuacct", "cpu", "memory", "blkio"} {
		candidates := conventional
		if p, ok := own[ctrl]; ok && plausible(p, id) {
			candidates = append([]string{p}, conventional...)
		}
		for _, rel := range candidates {
			dir := filepath.Join(cgroupRoot, ctrl, rel)
			if isDir(dir) {
				dirs[ctrl] = dir
				break
			}
		}
	}
	if dirs["cpuacct"] == "" {
		return nil, fmt.Errorf("find cgroup v1 cpuacct directory of container %s under %s", shortID(id), filepath.Join(cgroupRoot, "cpuacct"))
	}
	return newCgroupV1(dirs), nil
}

// procCgroups parses /proc/<pid>/cgroup into controller -> path. The v2 entry
// ("0::/path") is stored under the empty controller name; comma-joined v1
// controllers ("cpu,cpuacct") are stored under each name.
func procCgroups(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	out := map[string]string{}
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		parts := bytes.SplitN(line, []byte{':'}, 3)
		if len(parts) != 3 {
			continue
		}
		p := string(parts[2])
		if len(parts[1]) == 0 {
			out[""] = p
			continue
		}
		for ctrl := range bytes.SplitSeq(parts[1], []byte{','}) {
			out[string(bytes.TrimPrefix(ctrl, []byte("name=")))] = p
		}
	}
	return out, nil
}

// plausible says whether a path from /proc/<pid>/cgroup can be the
// container's own cgroup. Docker's cgroup names always carry the container ID
// (<parent>/<id> with cgroupfs, <slice>/docker-<id>.scope with systemd); a
// path without it, such as "/" or "/../.." seen from inside a cgroup
// namespace, is relative to some other root and must not be joined to ours.
func plausible(p, id string) bool {
	return strings.Contains(p, id) && !strings.Contains(p, "..")
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// cgroupV1 reads the per-controller directories of a v1 (or hybrid) host. An
// empty path means the controller was not found and its values are skipped.
type cgroupV1 struct {
	usage      string // cpuacct.usage, ns
	cpuStat    string // cpu.stat, throttled_time in ns
	memUsage   string // memory.usage_in_bytes
	memStat    string // memory.stat, total_inactive_file
	oomControl string // memory.oom_control, oom_kill (kernels >= 4.13)
	blkio      string // blkio.throttle.io_service_bytes[_recursive]
}

func newCgroupV1(dirs map[string]string) *cgroupV1 {
	c := &cgroupV1{usage: filepath.Join(dirs["cpuacct"], "cpuacct.usage")}
	if d := dirs["cpu"]; d != "" {
		c.cpuStat = filepath.Join(d, "cpu.stat")
	}
	if d := dirs["memory"]; d != "" {
		c.memUsage = filepath.Join(d, "memory.usage_in_bytes")
		c.memStat = filepath.Join(d, "memory.stat")
		c.oomControl = filepath.Join(d, "memory.oom_control")
	}
	if d := dirs["blkio"]; d != "" {
		// The _recursive file is the one the kernel fills for a container's
		// own cgroup on most kernels; the plain one is often all zeros.
		c.blkio = filepath.Join(d, "blkio.throttle.io_service_bytes_recursive")
		if _, err := os.Stat(c.blkio); err != nil {
			c.blkio = filepath.Join(d, "blkio.throttle.io_service_bytes")
		}
	}
	return c
}

func (c *cgroupV1) read(buf []byte, s *cgroupStats) error {
	*s = cgroupStats{}
	b, err := readFile(c.usage, buf)
	if err != nil {
		return gone(err)
	}
	if s.cpuUsageNs, err = parseUintBytes(b); err != nil {
		return fmt.Errorf("parse %s: %w", c.usage, err)
	}

	if c.cpuStat != "" {
		b, err := readOptional(c.cpuStat, buf)
		if err != nil {
			return err
		}
		s.throttledNs, s.hasThrottled = lookupKey(b, "throttled_time")
	}

	if c.memUsage != "" {
		b, err := readOptional(c.memUsage, buf)
		if err != nil {
			return err
		}
		if b != nil {
			if s.memUsage, err = parseUintBytes(b); err != nil {
				return fmt.Errorf("parse %s: %w", c.memUsage, err)
			}
			s.hasMemory = true
			b, err = readOptional(c.memStat, buf)
			if err != nil {
				return err
			}
			s.memInactiveFile, _ = lookupKey(b, "total_inactive_file")
		}
		b, err = readOptional(c.oomControl, buf)
		if err != nil {
			return err
		}
		s.oomKills, s.hasOOM = lookupKey(b, "oom_kill")
	}

	if c.blkio != "" {
		b, err := readOptional(c.blkio, buf)
		if err != nil {
			return err
		}
		if b != nil {
			s.ioReadBytes, s.ioWriteBytes = parseBlkioServiceBytes(b)
			s.hasIO = true
		}
	}
	return nil
}

// parseBlkioServiceBytes sums the Read and Write lines ("8:0 Read 4096") of a
// v1 blkio io_service_bytes file over all devices.
func parseBlkioServiceBytes(b []byte) (read, write uint64) {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		f1, rest := nextField(line)
		if len(f1) == 0 || bytes.Equal(f1, []byte("Total")) {
			continue
		}
		op, rest := nextField(rest)
		val, _ := nextField(rest)
		v, err := parseUintBytes(val)
		if err != nil {
			continue
		}
		switch string(op) {
		case "Read":
			read += v
		case "Write":
			write += v
		}
	}
	return read, write
}

// cgroupV2 reads one directory of the unified hierarchy.
type cgroupV2 struct {
	cpuStat   string // usage_usec, throttled_usec
	memCur    string // memory.current
	memStat   string // inactive_file
	memEvents string // oom_kill
	ioStat    string // rbytes=, wbytes= per device
}

func newCgroupV2(dir string) *cgroupV2 {
	return &cgroupV2{
		cpuStat:   filepath.Join(dir, "cpu.stat"),
		memCur:    filepath.Join(dir, "memory.current"),
		memStat:   filepath.Join(dir, "memory.stat"),
		memEvents: filepath.Join(dir, "memory.events"),
		ioStat:    filepath.Join(dir, "io.stat"),
	}
}

func (c *cgroupV2) read(buf []byte, s *cgroupStats) error {
	*s = cgroupStats{}
	b, err := readFile(c.cpuStat, buf)
	if err != nil {
		return gone(err)
	}
	usec, ok := lookupKey(b, "usage_usec")
	if !ok {
		return fmt.Errorf("parse %s: no usage_usec", c.cpuStat)
	}
	s.cpuUsageNs = usec * 1000
	if t, ok := lookupKey(b, "throttled_usec"); ok {
		s.throttledNs, s.hasThrottled = t*1000, true
	}

	if b, err = readOptional(c.memCur, buf); err != nil {
		return err
	}
	if b != nil {
		if s.memUsage, err = parseUintBytes(b); err != nil {
			return fmt.Errorf("parse %s: %w", c.memCur, err)
		}
		s.hasMemory = true
		if b, err = readOptional(c.memStat, buf); err != nil {
			return err
		}
		s.memInactiveFile, _ = lookupKey(b, "inactive_file")
		if b, err = readOptional(c.memEvents, buf); err != nil {
			return err
		}
		s.oomKills, s.hasOOM = lookupKey(b, "oom_kill")
	}

	if b, err = readOptional(c.ioStat, buf); err != nil {
		return err
	}
	if b != nil {
		s.ioReadBytes, s.ioWriteBytes = parseIOStat(b)
		s.hasIO = true
	}
	return nil
}

// parseIOStat sums rbytes= and wbytes= of a v2 io.stat over all devices
// ("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0").
func parseIOStat(b []byte) (read, write uint64) {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		_, rest := nextField(line) // device
		for len(rest) > 0 {
			var kv []byte
			kv, rest = nextField(rest)
			i := bytes.IndexByte(kv, '=')
			if i < 0 {
				continue
			}
			switch string(kv[:i]) {
			case "rbytes":
				if v, err := parseUintBytes(kv[i+1:]); err == nil {
					read += v
				}
			case "wbytes":
				if v, err := parseUintBytes(kv[i+1:]); err == nil {
					write += v
				}
			}
		}
	}
	return read, write
}

// gone turns a missing required file into errCgroupGone.
func gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", errCgroupGone, err)
	}
	return err
}

// readOptional is readFile for files whose absence only means "not offered":
// it returns nil data and no error when the file does not exist.
func readOptional(path string, buf []byte) ([]byte, error) {
	b, err := readFile(path, buf)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// readFile reads a small pseudo-file into buf without the allocations of
// os.ReadFile (an *os.File and a fresh buffer per call), which matters at a
// dozen files per container and hundreds of containers per scrape.
func readFile(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
	return nil, fmt.Errorf("read %s: larger than the %d-byte buffer", path, len(buf))
}

// lookupKey finds "key value" in a flat-keyed file (cpu.stat, memory.stat,
// memory.events, memory.oom_control).
func lookupKey(b []byte, key string) (uint64, bool) {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		k, rest := nextField(line)
		if string(k) != key {
			continue
		}
		v, _ := nextField(rest)
		n, err := parseUintBytes(v)
		return n, err == nil
	}
	return 0, false
}

// parseUintBytes parses a decimal integer surrounded by optional white space.
func parseUintBytes(b []byte) (uint64, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, errors.New("empty value")
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not an unsigned integer: %q", b)
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, fmt.Errorf("out of range: %q", b)
		}
		n = n*10 + d
	}
	return n, nil
}

func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// nextField returns the first run of non-blank bytes and what follows it.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}
