package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/hybridsuite/hybrid/exporters"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: fixed at 100 by the
// kernel's ABI whatever CONFIG_HZ is.
const userHZ = 100

// userNameTTL is how long a uid's name is trusted: long enough that the
// passwd database (or NSS) is not asked on every scrape, short enough that a
// renamed or newly created user shows up.
const userNameTTL = 10 * time.Minute

// processesCollector counts processes, threads, resident memory and CPU time
// per user. gopsutil lists the processes (under ProcFS, through its HOST_PROC
// context override); each one's two small files are then read directly,
// because building gopsutil's Process objects reads four files (status twice)
// and makes a syscall per process, several times slower (see doc.go).
type processesCollector struct {
	logger     *slog.Logger
	procFS     string
	lookupUser func(uid string) (string, error)
	now        func() time.Time
	pageSize   float64

	processesDesc, threadsDesc, rssDesc, cpuDesc *prometheus.Desc

	mu       sync.Mutex // one update at a time: they share buf and the CPU state
	buf      []byte
	procs    map[int32]procCPU  // CPU time of each process at the last update
	cpuByUID map[uint32]float64 // CPU seconds per uid, monotonic
	names    map[uint32]userName
}

var _ exporters.Collector = (*processesCollector)(nil)

// procCPU identifies a process across updates (a pid can be reused; its start
// time tells) and holds the CPU time already counted for it.
type procCPU struct {
	start   uint64
	uid     uint32
	seconds float64
}

type userName struct {
	name    string
	expires time.Time
}

// procSample is what one update reads of one process.
type procSample struct {
	uid      uint32
	threads  uint64
	rssPages uint64
	start    uint64
	seconds  float64
}

func newProcessesCollector(logger *slog.Logger, procFS string) *processesCollector {
	lookup := func(uid string) (string, error) {
		u, err := user.LookupId(uid)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	}
	labels := []string{"user"}
	return &processesCollector{
		logger:     logger,
		procFS:     procFS,
		lookupUser: lookup,
		now:        time.Now,
		pageSize:   float64(os.Getpagesize()),
		processesDesc: prometheus.NewDesc("hybrid_host_processes",
			"Processes whose effective user is the user (kernel threads count under root).", labels, nil),
		threadsDesc: prometheus.NewDesc("hybrid_host_threads",
			"Threads of the user's processes.", labels, nil),
		rssDesc: prometheus.NewDesc("hybrid_host_process_resident_memory_bytes",
			"Sum of the resident set sizes of the user's processes; a page shared by several processes counts in each.", labels, nil),
		cpuDesc: prometheus.NewDesc("hybrid_host_process_cpu_seconds_total",
			"User and system CPU time of the user's processes, counted from when the agent first saw each process; "+
				"it does not drop when a process exits.", labels, nil),
		buf:      make([]byte, 4096),
		procs:    map[int32]procCPU{},
		cpuByUID: map[uint32]float64{},
		names:    map[uint32]userName{},
	}
}

type userTotals struct {
	processes, threads float64
	rssBytes, cpu      float64
}

func (c *processesCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	envCtx := context.WithValue(ctx, common.EnvKey, common.EnvMap{common.HostProcEnvKey: c.procFS})
	pids, err := process.PidsWithContext(envCtx)
	if err != nil {
		return fmt.Errorf("list processes in %s: %w", c.procFS, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()

	byUID := map[uint32]*userTotals{}
	seen := make(map[int32]procCPU, len(pids))
	deltas := map[uint32]float64{}
	var lastErr error
	for i, pid := range pids {
		if i%128 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		s, err := c.readProcess(pid)
		if err != nil {
			// Gone since it was listed: normal. Anything else is odd
			// but must not hide every other process.
			if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESRCH) {
				lastErr = err
				c.logger.Debug("skip unreadable process", "pid", pid, "err", err)
			}
			continue
		}
		t := byUID[s.uid]
		if t == nil {
			t = &userTotals{}
			byUID[s.uid] = t
		}
		t.processes++
		t.threads += float64(s.threads)
		t.rssBytes += float64(s.rssPages) * c.pageSize

		// A process's CPU time counts once: all of it when first seen,
		// then what it used since the last update. The sum over live
		// processes would drop whenever one exits.
		delta := s.seconds
		if prev, ok := c.procs[pid]; ok && prev.start == s.start {
			delta = max(s.seconds-prev.seconds, 0)
		}
		deltas[s.uid] += delta
		seen[pid] = procCPU{start: s.start, uid: s.uid, seconds: s.seconds}
	}
	if len(seen) == 0 && lastErr != nil {
		return fmt.Errorf("read processes in %s: %w", c.procFS, lastErr)
	}
	c.procs = seen
	for uid, d := range deltas {
		c.cpuByUID[uid] += d
	}

	// Two uids may share a name; their series are one.
	byName := make(map[string]*userTotals, len(byUID))
	for uid, t := range byUID {
		name := c.userName(uid)
		n := byName[name]
		if n == nil {
			n = &userTotals{}
			byName[name] = n
		}
		n.processes += t.processes
		n.threads += t.threads
		n.rssBytes += t.rssBytes
		n.cpu += c.cpuByUID[uid]
	}
	for name, t := range byName {
		ch <- prometheus.MustNewConstMetric(c.processesDesc, prometheus.GaugeValue, t.processes, name)
		ch <- prometheus.MustNewConstMetric(c.threadsDesc, prometheus.GaugeValue, t.threads, name)
		ch <- prometheus.MustNewConstMetric(c.rssDesc, prometheus.GaugeValue, t.rssBytes, name)
		ch <- prometheus.MustNewConstMetric(c.cpuDesc, prometheus.CounterValue, t.cpu, name)
	}
	return nil
}

// userName resolves uid through the passwd database, falling back to the uid
// itself (a uid used only inside a container has no name on the host).
func (c *processesCollector) userName(uid uint32) string {
	now := c.now()
	if n, ok := c.names[uid]; ok && now.Before(n.expires) {
		return n.name
	}
	id := strconv.FormatUint(uint64(uid), 10)
	name, err := c.lookupUser(id)
	if err != nil || name == "" {
		name = id
	}
	c.names[uid] = userName{name: name, expires: now.Add(userNameTTL)}
	return name
}

// readProcess reads /proc/<pid>/stat (threads, RSS, CPU times, start time) and
// the Uid line of /proc/<pid>/status.
func (c *processesCollector) readProcess(pid int32) (procSample, error) {
	dir := filepath.Join(c.procFS, strconv.FormatInt(int64(pid), 10))
	var s procSample

	stat, err := c.readFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	if err := parseStat(stat, &s); err != nil {
		return s, fmt.Errorf("parse %s/stat: %w", dir, err)
	}

	status, err := c.readFile(dir + "/status")
	if err != nil {
		return s, err
	}
	uid, err := parseStatusUID(status)
	if err != nil {
		return s, fmt.Errorf("parse %s/status: %w", dir, err)
	}
	s.uid = uid
	return s, nil
}

// readFile reads a small proc file into c.buf (valid until the next call),
// with plain syscalls: an *os.File would also try to register each one with
// the runtime's poller.
func (c *processesCollector) readFile(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	n := 0
	for {
		if n == len(c.buf) {
			c.buf = append(c.buf, make([]byte, len(c.buf))...)
		}
		m, err := syscall.Read(fd, c.buf[n:])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return c.buf[:n], nil
		}
		n += m
	}
}

// parseStat reads the fields of /proc/<pid>/stat that matter here. The command
// name (2nd field) is in parentheses and may itself hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte, s *procSample) error {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return errors.New("no ')' after the command name")
	}
	// Fields after the command name, numbered from 0 (state):
	// 11 utime, 12 stime, 17 num_threads, 19 starttime, 21 rss.
	var utime, stime uint64
	field := 0
	rest := b[i+1:]
	for field <= 21 {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			return fmt.Errorf("%d fields after the command name, want at least 22", field)
		}
		end := bytes.IndexAny(rest, " \n")
		if end < 0 {
			end = len(rest)
		}
		tok := rest[:end]
		rest = rest[end:]
		var dst *uint64
		switch field {
		case 11:
			dst = &utime
		case 12:
			dst = &stime
		case 17:
			dst = &s.threads
		case 19:
			dst = &s.start
		case 21:
			dst = &s.rssPages
		}
		if dst != nil {
			v, ok := parseUint(tok)
			if !ok {
				return fmt.Errorf("field %d %q is not a number", field, tok)
			}
			*dst = v
		}
		field++
	}
	s.seconds = float64(utime+stime) / userHZ
	return nil
}

var uidLine = []byte("\nUid:")

// parseStatusUID returns the effective uid (the second of real, effective,
// saved, filesystem), the one ps and top show.
func parseStatusUID(b []byte) (uint32, error) {
	i := bytes.Index(b, uidLine)
	if i < 0 {
		return 0, errors.New("no Uid line")
	}
	line := b[i+len(uidLine):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	fields := bytes.Fields(line)
	if len(fields) < 2 {
		return 0, fmt.Errorf("Uid line %q has no effective uid", line)
	}
	v, ok := parseUint(fields[1])
	if !ok || v > 1<<32-1 {
		return 0, fmt.Errorf("effective uid %q is not a uid", fields[1])
	}
	return uint32(v), nil
}

// parseUint parses a decimal without the allocation strconv would make for
// the string conversion.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + uint64(ch-'0')
	}
	return v, true
}
