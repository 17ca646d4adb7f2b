package nginx

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is an nginx master: one the Manager started (done is closed when
// it exits), or one left running by an earlier agent and adopted (done nil).
type process struct {
	pid    int
	done   chan struct{}
	err    error // set before done is closed
	stderr *lockedBuffer
}

func (p *process) exited() bool {
	if p.done == nil {
		return syscall.Kill(p.pid, 0) != nil
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ownedArgs are the arguments that make nginx use the owned configuration
// and never touch the system's paths, not even for its first log line.
func (m *Manager) ownedArgs() []string {
	return []string{"-p", m.opts.Dir + "/", "-e", m.path("logs", "error.log"), "-c", m.mainConfig()}
}

func (m *Manager) configArgs() []string {
	if m.owned() {
		return m.ownedArgs()
	}
	return []string{"-c", m.mainConfig()}
}

// test runs `nginx -t` on the main configuration, which includes whatever
// <Dir>/benches points at.
func (m *Manager) test(ctx context.Context) error {
	args := append([]string{"-t", "-q"}, m.configArgs()...)
	out, err := exec.CommandContext(ctx, m.opts.Binary, args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("nginx -t: %w", ctx.Err())
		}
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%w: nginx -t -c %s: %s", ErrConfigRejected, m.mainConfig(), msg)
	}
	return nil
}

// reload asks nginx to load the configuration again. It reports false when
// the Manager owns nginx and no master is running, so there is nothing to
// reload.
func (m *Manager) reload(ctx context.Context) (bool, error) {
	if m.opts.Reload != nil {
		if err := m.opts.Reload(ctx); err != nil {
			return true, fmt.Errorf("%w: reload: %w", ErrReloadNotTaken, err)
		}
		return true, nil
	}
	if m.owned() {
		pid := m.masterPID()
		if pid == 0 {
			if m.proc != nil {
				return true, fmt.Errorf("%w: nginx (pid %d) has exited: %s", ErrReloadNotTaken, m.proc.pid, m.exitReason())
			}
			return false, nil
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return true, fmt.Errorf("%w: signal nginx master %d: %w", ErrReloadNotTaken, pid, err)
		}
		return true, nil
	}
	args := append([]string{"-s", "reload"}, m.configArgs()...)
	if out, err := exec.CommandContext(ctx, m.opts.Binary, args...).CombinedOutput(); err != nil {
		return true, fmt.Errorf("%w: nginx -s reload: %s", ErrReloadNotTaken, strings.TrimSpace(string(out)+" "+err.Error()))
	}
	return true, nil
}

// masterPID is the pid of the running master of the owned nginx, or 0.
func (m *Manager) masterPID() int {
	if m.proc != nil && !m.proc.exited() {
		return m.proc.pid
	}
	raw, err := os.ReadFile(m.path("run", "nginx.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0
	}
	// The pid may have been reused since: only trust a master of our file.
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0
	}
	title := string(cmdline)
	if !strings.Contains(title, "nginx: master process") || !strings.Contains(title, m.mainConfig()) {
		return 0
	}
	return pid
}

// waitGeneration polls the probe server until it answers gen, then until
// none of the workers in old (those of the configuration before) still
// accepts connections. nginx starts the new workers before it tells the old
// ones to stop, so for a moment both accept: a site request could still meet
// the old configuration after the probe met the new one.
func (m *Manager) waitGeneration(ctx context.Context, gen uint64, old []int) error {
	url := m.probeURL()
	want := strconv.FormatUint(gen, 10)
	deadline := time.Now().Add(m.opts.ProbeTimeout)
	var last string
	for {
		a, err := m.probe(ctx, url)
		switch {
		case err != nil:
			last = err.Error()
		case a.gen != want:
			last = "generation " + a.gen
		default:
			accepting := acceptingWorkers(old)
			if len(accepting) == 0 {
				return nil
			}
			last = fmt.Sprintf("generation %s, but old workers %v still accept", a.gen, accepting)
		}
		if m.proc != nil && m.proc.exited() {
			return fmt.Errorf("%w: nginx (pid %d) has exited: %s", ErrReloadNotTaken, m.proc.pid, m.exitReason())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s answers %s after %s, want generation %s%s",
				ErrReloadNotTaken, url, last, m.opts.ProbeTimeout, want, m.hint())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for nginx generation %s: %w", want, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (m *Manager) probeURL() string { return "http://" + m.opts.ProbeListen + generationPath }

// probeAnswer is what the probe server says: its generation and the pid of
// the worker that answered.
type probeAnswer struct {
	gen string
	pid int
}

func (m *Manager) probe(ctx context.Context, url string) (probeAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return probeAnswer{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return probeAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 128))
	if err != nil {
		return probeAnswer{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return probeAnswer{}, fmt.Errorf("status %s", resp.Status)
	}
	gen, pid, _ := strings.Cut(strings.TrimSpace(string(body)), " ")
	n, _ := strconv.Atoi(pid)
	return probeAnswer{gen: gen, pid: n}, nil
}

// currentWorkers finds the workers serving now, through the pid of the one
// that answers the probe and its master; nil if the probe does not answer
// (nginx down, or a system nginx that does not include us yet).
func (m *Manager) currentWorkers(ctx context.Context) []int {
	a, err := m.probe(ctx, m.probeURL())
	if err != nil || a.pid <= 0 {
		return nil
	}
	master := parentPID(a.pid)
	if master <= 1 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var workers []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != master {
			continue
		}
		if isAcceptingWorker(pid) {
			workers = append(workers, pid)
		}
	}
	return workers
}

// acceptingWorkers returns the pids that are still nginx workers not yet
// shutting down. A worker sets its title to "worker process is shutting
// down" in the same loop turn, before any further accept, as it closes its
// listening sockets.
func acceptingWorkers(pids []int) []int {
	var out []int
	for _, pid := range pids {
		if isAcceptingWorker(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func isAcceptingWorker(pid int) bool {
	title, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	t := string(title)
	return strings.HasPrefix(t, "nginx: worker process") && !strings.Contains(t, "shutting down")
}

// parentPID reads the parent of pid from /proc/<pid>/stat, or returns 0.
func parentPID(pid int) int {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// hint says where to look when nginx did not take a configuration: the
// owned error log's last emergencies, or the include line a system nginx
// needs.
func (m *Manager) hint() string {
	if !m.owned() {
		return fmt.Sprintf(" (is \"include %s/benches/*.conf;\" in the http block of %s? see nginx's error log)", m.opts.Dir, m.opts.MainConfig)
	}
	if lines := errorLogTail(m.path("logs", "error.log"), 5); lines != "" {
		return "; error log: " + lines
	}
	return ""
}

// errorLogTail returns the last n [emerg] or [alert] lines of an error log.
func errorLogTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		if _, err := f.Seek(st.Size()-window, io.SeekStart); err != nil {
			return ""
		}
	}
	data, _ := io.ReadAll(f)
	var hits []string
	for _, line := range strings.Split(string(data), "\n") {
		// While the agent is down, every request adds an alert that the
		// access log socket cannot be reached: not what a failed reload is
		// about.
		if strings.Contains(line, "[alert]") && strings.Contains(line, "connect() failed") {
			continue
		}
		if strings.Contains(line, "[emerg]") || strings.Contains(line, "[alert]") {
			hits = append(hits, strings.TrimSpace(line))
		}
	}
	if len(hits) > n {
		hits = hits[len(hits)-n:]
	}
	return strings.Join(hits, " | ")
}

func (m *Manager) exitReason() string {
	if m.proc == nil || m.proc.done == nil {
		return "exited"
	}
	<-m.proc.done
	msg := strings.TrimSpace(m.proc.stderr.String())
	if tail := errorLogTail(m.path("logs", "error.log"), 3); tail != "" {
		msg = strings.TrimSpace(msg + " " + tail)
	}
	if m.proc.err != nil {
		msg = strings.TrimSpace(m.proc.err.Error() + ": " + msg)
	}
	return msg
}

// Start runs the owned nginx as a child process and returns once it serves
// the committed generation. A master left running by an earlier agent (found
// through the pid file) is adopted and reloaded instead, so restarting the
// agent does not interrupt the sites. Start is for the owned mode only.
func (m *Manager) Start(ctx context.Context) error {
	if !m.owned() {
		return fmt.Errorf("start nginx: the system nginx (%s) is not the agent's to start", m.opts.MainConfig)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.exited() {
		return nil
	}
	if pid := m.masterPID(); pid != 0 {
		m.logger.Info("adopting running nginx", "pid", pid)
		m.proc = &process{pid: pid}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("start nginx: reload adopted master %d: %w", pid, err)
		}
		return m.waitGeneration(ctx, m.gen, nil)
	}
	if err := m.test(ctx); err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	cmd := exec.Command(m.opts.Binary, m.ownedArgs()...)
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// Its own process group: a Ctrl-C meant for the agent does not reach
	// nginx, and Stop can end the workers with the master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	p := &process{pid: cmd.Process.Pid, done: make(chan struct{}), stderr: stderr}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.proc = p
	m.logger.Info("nginx started", "pid", p.pid, "config", m.mainConfig())
	if err := m.waitGeneration(ctx, m.gen, nil); err != nil {
		m.stop(context.WithoutCancel(ctx), 5*time.Second)
		return fmt.Errorf("start nginx: %w", err)
	}
	return nil
}

// Stop shuts the owned nginx down gracefully (in-flight requests finish),
// and fast when ctx ends first. It does nothing if Start was not called.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stop(ctx, 0)
}

func (m *Manager) stop(ctx context.Context, grace time.Duration) error {
	p := m.proc
	if p == nil || p.exited() {
		m.proc = nil
		return nil
	}
	if grace > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, grace)
		defer cancel()
	}
	_ = syscall.Kill(p.pid, syscall.SIGQUIT)
	if waitExit(ctx, p) {
		m.proc = nil
		return nil
	}
	// Fast shutdown, then the whole group if the master still hangs.
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	kill, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if !waitExit(kill, p) {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		if p.done != nil {
			<-p.done
		}
	}
	m.proc = nil
	return fmt.Errorf("stop nginx: graceful shutdown of pid %d did not finish: %w", p.pid, ctx.Err())
}

func waitExit(ctx context.Context, p *process) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for !p.exited() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// lockedBuffer collects a child's output; read while the child writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
