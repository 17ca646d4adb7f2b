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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/exporters"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: fixed at 100 by the
// kernel's ABI whatever CONFIG_HZ is.
const userHZ = 100

// userNameTTL is how long a uid's name is trusted: long enough that the
// passwd database (or NSS) is not asked on every scrape, short enough that a
// renamed or newly created user shows up.
const userNameTTL = 10 * time.Minute

// maxKeptStatFiles caps how many /proc/<pid>/stat files stay open between
// scrapes (and a quarter of the open-file limit does); processes beyond have
// theirs opened on every scrape.
const maxKeptStatFiles = 8192

// processesCollector counts processes, threads, resident memory and CPU time
// per user. It lists <ProcFS> and, per process, reads /proc/<pid>/stat
// (threads, RSS, CPU times, start time), kept open between scrapes (see
// procfiles.go), and takes the effective uid from the owner of the
// /proc/<pid> directory (see doc.go).
type processesCollector struct {
	logger     *slog.Logger
	procFS     string
	lookupUser func(uid string) (string, error)
	now        func() time.Time
	pageSize   float64
	// uidFromOwner: the owner of /proc/<pid> is the process's effective uid
	// (Linux 4.11 and later). Otherwise each process's status file is read.
	uidFromOwner bool
	maxKept      int

	processesDesc, threadsDesc, rssDesc, cpuDesc *prometheus.Desc

	mu       sync.Mutex // one update at a time: they share the buffers, the open files and the CPU state
	dir      int        // <ProcFS>, open; -1 until the first update
	dirBuf   []byte
	buf      []byte
	pids     []int32
	procs    map[int32]*procState
	kept     int               // stat files kept open
	update   uint64            // counts updates, to find the processes that are gone
	cpuByUID map[uint32]uint64 // CPU time per uid, in ticks (exact, unlike float sums), monotonic
	byUID    map[uint32]userTotals
	names    map[uint32]userName
}

var _ exporters.Collector = (*processesCollector)(nil)

// procState is what an update leaves of a process for the next: its stat
// file, and the CPU time already counted. A pid can be reused: the start time
// tells one process from the next.
type procState struct {
	statFD   int // -1 when not kept open
	start    uint64
	cpuTicks uint64
	seen     uint64 // the last update that listed the process
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
	cpuTicks uint64 // user and system time, in 1/userHZ s
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
		logger:       logger,
		procFS:       procFS,
		lookupUser:   lookup,
		now:          time.Now,
		pageSize:     float64(os.Getpagesize()),
		uidFromOwner: ownerIsEffectiveUID(procFS),
		maxKept:      keptFiles(maxKeptStatFiles, 0.25),
		processesDesc: prometheus.NewDesc("hybrid_host_processes",
			"Processes whose effective user is the user (kernel threads count under root).", labels, nil),
		threadsDesc: prometheus.NewDesc("hybrid_host_threads",
			"Threads of the user's processes.", labels, nil),
		rssDesc: prometheus.NewDesc("hybrid_host_process_resident_memory_bytes",
			"Sum of the resident set sizes of the user's processes; a page shared by several processes counts in each.", labels, nil),
		cpuDesc: prometheus.NewDesc("hybrid_host_process_cpu_seconds_total",
			"User and system CPU time of the user's processes, counted from when the agent first saw each process; "+
				"it does not drop when a process exits.", labels, nil),
		dir:      -1,
		buf:      make([]byte, 1024),
		procs:    map[int32]*procState{},
		cpuByUID: map[uint32]uint64{},
		byUID:    map[uint32]userTotals{},
		names:    map[uint32]userName{},
	}
}

// ownerIsEffectiveUID reports whether the kernel behind procFS makes each
// /proc/<pid> directory owned by the process's effective uid. Since Linux 4.11
// it does for every process; before, a process that is not dumpable (one that
// changed its uids, as a daemon dropping root does) had it owned by root. A
// kernel release that cannot be read or parsed counts as old.
func ownerIsEffectiveUID(procFS string) bool {
	b, err := os.ReadFile(filepath.Join(procFS, "sys/kernel/osrelease"))
	if err != nil {
		return false
	}
	major, rest, _ := bytes.Cut(bytes.TrimSpace(b), []byte("."))
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	maj, ok1 := parseUint(major)
	minor, ok2 := parseUint(rest[:i])
	return ok1 && ok2 && (maj > 4 || maj == 4 && minor >= 11)
}

type userTotals struct {
	processes, threads float64
	rssBytes           float64
	cpuTicks           uint64
}

func (c *processesCollector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if err := c.listProcesses(); err != nil {
		return fmt.Errorf("list processes in %s: %w", c.procFS, err)
	}
	c.update++
	clear(c.byUID)
	read := 0
	var lastErr error
	for i, pid := range c.pids {
		if i%128 == 0 && ctx.Err() != nil {
			// The CPU time counted so far stays counted; the processes
			// not reached count from their last reading next time.
			return ctx.Err()
		}
		if err := c.readProcess(pid); err != nil {
			// Gone since it was listed: normal. Anything else is odd
			// but must not hide every other process.
			if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
				lastErr = err
				c.logger.Debug("skip unreadable process", "pid", pid, "err", err)
			}
			continue
		}
		read++
	}
	// Forget the processes that have exited.
	for pid, p := range c.procs {
		if p.seen != c.update {
			c.forget(pid, p)
		}
	}
	if read == 0 && lastErr != nil {
		return fmt.Errorf("read processes in %s: %w", c.procFS, lastErr)
	}

	// Two uids may share a name; their series are one.
	byName := make(map[string]*userTotals, len(c.byUID))
	for uid, t := range c.byUID {
		name := c.userName(uid)
		n := byName[name]
		if n == nil {
			n = &userTotals{}
			byName[name] = n
		}
		n.processes += t.processes
		n.threads += t.threads
		n.rssBytes += t.rssBytes
		n.cpuTicks += c.cpuByUID[uid]
	}
	for name, t := range byName {
		ch <- prometheus.MustNewConstMetric(c.processesDesc, prometheus.GaugeValue, t.processes, name)
		ch <- prometheus.MustNewConstMetric(c.threadsDesc, prometheus.GaugeValue, t.threads, name)
		ch <- prometheus.MustNewConstMetric(c.rssDesc, prometheus.GaugeValue, t.rssBytes, name)
		ch <- prometheus.MustNewConstMetric(c.cpuDesc, prometheus.CounterValue, float64(t.cpuTicks)/userHZ, name)
	}
	return nil
}

// listProcesses fills c.pids from <ProcFS>, opened on first use.
func (c *processesCollector) listProcesses() error {
	if c.dir < 0 {
		fd, err := openAt(unix.AT_FDCWD, c.procFS, unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		c.dir = fd
	}
	c.pids = c.pids[:0]
	return readDir(c.dir, &c.dirBuf, func(name []byte, _ uint8) {
		if pid, ok := parsePID(name); ok {
			c.pids = append(c.pids, pid)
		}
	})
}

// readProcess reads one process and adds it to its user's totals.
func (c *processesCollector) readProcess(pid int32) error {
	var s procSample
	if c.uidFromOwner {
		var st unix.Stat_t
		if err := unix.Fstatat(c.dir, strconv.FormatInt(int64(pid), 10), &st, 0); err != nil {
			return err
		}
		s.uid = st.Uid
	}
	p := c.procs[pid]
	if p == nil {
		p = &procState{statFD: -1}
	}
	stat, fd, err := c.readStat(pid, p)
	if err != nil {
		return err
	}
	if fd != p.statFD {
		// Opened for this update: kept if there is room, once the
		// process has been read.
		defer func() {
			if p.statFD != fd {
				closeFD(fd)
			}
		}()
	}
	if err := parseStat(stat, &s); err != nil {
		return fmt.Errorf("parse %s/%d/stat: %w", c.procFS, pid, err)
	}
	if !c.uidFromOwner {
		status, err := c.readOnce(pidPath(pid, "status"))
		if err != nil {
			return err
		}
		if s.uid, err = parseStatusUID(status); err != nil {
			return fmt.Errorf("parse %s/%d/status: %w", c.procFS, pid, err)
		}
	}

	t := c.byUID[s.uid]
	t.processes++
	t.threads += float64(s.threads)
	t.rssBytes += float64(s.rssPages) * c.pageSize
	c.byUID[s.uid] = t

	// A process's CPU time counts once: all of it when first seen, then what
	// it used since the last update. The sum over live processes would drop
	// whenever one exits.
	delta := s.cpuTicks
	if p.seen != 0 && p.start == s.start {
		delta = 0
		if s.cpuTicks > p.cpuTicks {
			delta = s.cpuTicks - p.cpuTicks
		}
	}
	c.cpuByUID[s.uid] += delta
	p.start, p.cpuTicks, p.seen = s.start, s.cpuTicks, c.update
	c.procs[pid] = p
	if p.statFD < 0 && c.kept < c.maxKept {
		p.statFD = fd
		c.kept++
	}
	return nil
}

// readStat reads /proc/<pid>/stat through the file p keeps open, or else
// through a new one, which it returns for the caller to keep or close. The
// data is valid until the next read into c.buf.
func (c *processesCollector) readStat(pid int32, p *procState) (data []byte, fd int, err error) {
	if p.statFD >= 0 {
		data, err := preadAll(p.statFD, &c.buf)
		if err == nil {
			return data, p.statFD, nil
		}
		c.closeStat(p)
		if !errors.Is(err, unix.ESRCH) {
			return nil, -1, err
		}
		// That process has exited; the pid may be another's by now.
	}
	fd, err = openAt(c.dir, pidPath(pid, "stat"), 0)
	if err != nil {
		return nil, -1, err
	}
	if data, err = preadAll(fd, &c.buf); err != nil {
		closeFD(fd)
		return nil, -1, err
	}
	return data, fd, nil
}

// readOnce reads a file under <ProcFS> into c.buf, valid until the next read.
func (c *processesCollector) readOnce(path string) ([]byte, error) {
	fd, err := openAt(c.dir, path, 0)
	if err != nil {
		return nil, err
	}
	defer closeFD(fd)
	return preadAll(fd, &c.buf)
}

func (c *processesCollector) closeStat(p *procState) {
	if p.statFD >= 0 {
		closeFD(p.statFD)
		p.statFD = -1
		c.kept--
	}
}

func (c *processesCollector) forget(pid int32, p *procState) {
	c.closeStat(p)
	delete(c.procs, pid)
}

// close closes the files kept open. A later update opens them again.
func (c *processesCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		c.closeStat(p)
	}
	closeFD(c.dir)
	c.dir = -1
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
	s.cpuTicks = utime + stime
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
		return 0, fmt.Errorf("status line %q has no effective uid", line)
	}
	v, ok := parseUint(fields[1])
	if !ok || v > 1<<32-1 {
		return 0, fmt.Errorf("effective uid %q is not a uid", fields[1])
	}
	return uint32(v), nil
}
