package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the bench collector. The zero value is usable.
type Options struct {
	DockerHost string // "" = DOCKER_HOST env or the default unix socket
	// Client, when set, is used instead of one made from DockerHost, and
	// is not closed by Close: its owner (the agent, whose bench operations
	// use it too) closes it.
	Client     *client.Client
	Label      string // default "io.hybrid.bench"
	CgroupRoot string // default /sys/fs/cgroup
	ProcRoot   string // default /proc
}

const (
	DefaultLabel      = "io.hybrid.bench"
	DefaultCgroupRoot = "/sys/fs/cgroup"
	DefaultProcRoot   = "/proc"

	// readBufSize bounds every pseudo-file read; memory.stat, the largest
	// file read, is well under 4 KiB.
	readBufSize = 16 << 10
	// maxReportedErrors caps how many per-container read errors one Update
	// returns, so a broken host yields a readable message.
	maxReportedErrors = 3
)

// withDefaults fills in defaults and returns every problem with the options.
func (o Options) withDefaults() (Options, error) {
	if o.Label == "" {
		o.Label = DefaultLabel
	}
	if o.CgroupRoot == "" {
		o.CgroupRoot = DefaultCgroupRoot
	}
	if o.ProcRoot == "" {
		o.ProcRoot = DefaultProcRoot
	}
	var errs []error
	if strings.ContainsAny(o.Label, "= \t\n") {
		errs = append(errs, fmt.Errorf("label: %q must be a label key without '=' or white space", o.Label))
	}
	if !filepath.IsAbs(o.CgroupRoot) {
		errs = append(errs, fmt.Errorf("cgroup root: %q is not an absolute path", o.CgroupRoot))
	}
	if !filepath.IsAbs(o.ProcRoot) {
		errs = append(errs, fmt.Errorf("proc root: %q is not an absolute path", o.ProcRoot))
	}
	return o, errors.Join(errs...)
}

// Collector exports one series set per bench container. It implements the
// exporters.Collector interface.
type Collector struct {
	logger *slog.Logger
	opts   Options
	mode   cgroupMode
	now    func() time.Time
	inv    inventorySource

	docker *client.Client            // nil when the inventory is not Docker's (tests)
	loop   func(ctx context.Context) // the inventory loop Start runs; nil when none

	lifeMu  sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.Mutex
	tracks map[string]*track // by container ID
	gen    uint64            // Update generation, to drop tracks of removed containers

	cpuUsage, cpuThrottled               *prometheus.Desc
	memWorkingSet, memUsage, memLimit    *prometheus.Desc
	netRx, netTx, fsReads, fsWrites      *prometheus.Desc
	oomEvents, startTime, lastSeen       *prometheus.Desc
	restarts, running, healthy, lastExit *prometheus.Desc
	containers                           *prometheus.Desc
}

// track is the per-container state Update keeps between scrapes: the resolved
// cgroup of the current run and the cgroup side of the OOM count.
type track struct {
	pid     int
	runKey  int64 // StartedAt of the run the reader belongs to
	reader  cgroupReader
	netDev  string // <proc>/<pid>/net/dev
	seenGen uint64

	// The cgroup's oom_kill counter restarts at zero with every run (Docker
	// makes a new cgroup), so the largest value seen in each run is summed.
	oomPrevRuns uint64
	oomThisRun  uint64
}

// New returns a collector for the bench containers of the Docker engine at
// opts.DockerHost. It does not contact the engine: that starts with Start, so
// New fails only on bad options.
func New(logger *slog.Logger, opts Options) (*Collector, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("bench collector options: %w", err)
	}
	cli, owned := opts.Client, false
	if cli == nil {
		if cli, err = NewDockerClient(opts.DockerHost); err != nil {
			return nil, fmt.Errorf("bench collector options: %w", err)
		}
		owned = true
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("collector", "bench")
	inv := newInventory(logger, cli, cli.DaemonHost(), opts.Label, time.Now)
	c := newCollector(logger, opts, inv, time.Now)
	if owned {
		c.docker = cli
	}
	c.loop = inv.run
	return c, nil
}

// NewDockerClient is a client of the engine at host ("" = DOCKER_HOST or the
// default unix socket): the one setting the bench collector and the agent's
// bench operations share.
func NewDockerClient(host string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	return cli, nil
}

// newCollector builds a collector over any inventory source; opts must have
// their defaults filled in.
func newCollector(logger *slog.Logger, opts Options, inv inventorySource, now func() time.Time) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	labels := []string{"name", "bench"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	return &Collector{
		logger: logger,
		opts:   opts,
		mode:   detectCgroupMode(opts.CgroupRoot),
		now:    now,
		inv:    inv,
		tracks: map[string]*track{},

		cpuUsage:      d("container_cpu_usage_seconds_total", "Cumulative CPU time consumed by the container in seconds."),
		cpuThrottled:  d("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled."),
		memWorkingSet: d("container_memory_working_set_bytes", "Current working set of the container in bytes (usage minus inactive file cache)."),
		memUsage:      d("container_memory_usage_bytes", "Current memory usage of the container in bytes, including all memory regardless of when it was accessed."),
		memLimit:      d("container_spec_memory_limit_bytes", "Memory limit for the container in bytes, 0 when unlimited."),
		netRx:         d("container_network_receive_bytes_total", "Cumulative count of bytes received, summed over the container's interfaces except lo."),
		netTx:         d("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted, summed over the container's interfaces except lo."),
		fsReads:       d("container_fs_reads_bytes_total", "Cumulative count of bytes read, summed over block devices."),
		fsWrites:      d("container_fs_writes_bytes_total", "Cumulative count of bytes written, summed over block devices."),
		oomEvents:     d("container_oom_events_total", "Count of out of memory events observed for the container while the agent runs."),
		startTime:     d("container_start_time_seconds", "Start time of the container's current or last run since unix epoch in seconds."),
		lastSeen:      d("container_last_seen", "Last time the container was seen running, in seconds since unix epoch."),
		restarts:      d("hybrid_bench_container_restarts_total", "Automatic restarts of the container (Docker's RestartCount), monotonic while the agent runs."),
		running:       d("hybrid_bench_container_running", "1 if the container is running, 0 otherwise."),
		healthy:       d("hybrid_bench_container_healthy", "1 if the container's healthcheck reports healthy, 0 if starting or unhealthy; absent without a healthcheck."),
		lastExit:      d("hybrid_bench_container_last_exit_code", "Exit code of the container's last exit, 0 when it never exited."),
		containers: prometheus.NewDesc("hybrid_bench_containers",
			"Bench containers known to the agent, by Docker state.", []string{"state"}, nil),
	}
}

// Start runs the Docker inventory (list, inspect, events, reconnects) in the
// background until ctx ends or Close is called. It returns at once.
func (c *Collector) Start(ctx context.Context) {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.started || c.closed || c.loop == nil {
		return
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.loop(ctx)
	}()
}

// Close stops the inventory loop and releases the Docker client.
func (c *Collector) Close() error {
	c.lifeMu.Lock()
	if c.closed {
		c.lifeMu.Unlock()
		return nil
	}
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
	c.lifeMu.Unlock()
	c.wg.Wait()
	if c.docker != nil {
		if err := c.docker.Close(); err != nil {
			return fmt.Errorf("close docker client: %w", err)
		}
	}
	return nil
}

// sample is what one Update read for one container.
type sample struct {
	cg        cgroupStats
	hasCgroup bool
	rx, tx    uint64
	hasNet    bool
	ooms      uint64
}

// containerStates are the Docker states hybrid_bench_containers always
// reports, so a count that drops to zero is a 0 and not a missing series.
var containerStates = []container.ContainerState{
	container.StateCreated, container.StateRunning, container.StatePaused, container.StateRestarting,
	container.StateRemoving, container.StateExited, container.StateDead,
}

// Update reads the cgroup and network counters of every running bench
// container and sends them with the inventory data. It makes no Docker call:
// the inventory is kept current in the background. When the engine is
// unreachable it still sends the last known inventory and returns an
// *UnreachableError.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	items, invErr := c.inv.snapshot(nil)
	now := c.now()

	samples, readErr := c.read(ctx, items)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("read bench containers: %w", err)
	}

	counts := make(map[container.ContainerState]int, len(containerStates))
	for i := range items {
		it, s := &items[i], &samples[i]
		counts[it.State]++
		c.send(ch, it, s, now)
	}
	for _, st := range containerStates {
		ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
	return errors.Join(invErr, readErr)
}

// read takes one sample per container, reusing cached cgroup readers.
func (c *Collector) read(ctx context.Context, items []containerInfo) ([]sample, error) {
	samples := make([]sample, len(items))
	buf := make([]byte, readBufSize)
	var errs []error
	failed := 0

	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	gen := c.gen

	for i := range items {
		if ctx.Err() != nil {
			return samples, ctx.Err()
		}
		it, s := &items[i], &samples[i]
		t := c.tracks[it.ID]
		if t == nil {
			t = &track{}
			c.tracks[it.ID] = t
		}
		t.seenGen = gen
		if it.State == container.StateRunning && it.Pid > 0 {
			if err := c.readRunning(it, t, s, buf); err != nil {
				failed++
				if len(errs) < maxReportedErrors {
					errs = append(errs, err)
				}
			}
		}
		s.ooms = max(it.OOMEvents, t.oomPrevRuns+t.oomThisRun)
	}
	for id, t := range c.tracks {
		if t.seenGen != gen {
			delete(c.tracks, id)
		}
	}
	if failed > len(errs) {
		errs = append(errs, fmt.Errorf("and %d more containers failed", failed-len(errs)))
	}
	return samples, errors.Join(errs...)
}

// readRunning samples the cgroup and network counters of one running
// container. A container that stopped since the snapshot is skipped quietly.
func (c *Collector) readRunning(it *containerInfo, t *track, s *sample, buf []byte) error {
	if runKey := it.StartedAt.UnixNano(); runKey != t.runKey {
		t.oomPrevRuns += t.oomThisRun
		t.oomThisRun = 0
		t.runKey = runKey
		t.reader = nil
	}
	if t.reader == nil || t.pid != it.Pid {
		r, err := resolveCgroup(c.mode, c.opts.CgroupRoot, c.opts.ProcRoot, it.ID, it.Pid)
		if err != nil {
			if c.processGone(it.Pid) {
				return nil
			}
			return fmt.Errorf("container %s: %w", it.Name, err)
		}
		t.reader, t.pid = r, it.Pid
		t.netDev = filepath.Join(c.opts.ProcRoot, strconv.Itoa(it.Pid), "net", "dev")
	}

	if err := t.reader.read(buf, &s.cg); err != nil {
		t.reader = nil // resolve again next time
		if errors.Is(err, errCgroupGone) && c.processGone(it.Pid) {
			return nil
		}
		return fmt.Errorf("container %s: read cgroup: %w", it.Name, err)
	}
	s.hasCgroup = true
	if s.cg.hasOOM {
		t.oomThisRun = max(t.oomThisRun, s.cg.oomKills)
	}

	rx, tx, err := readNetDev(t.netDev, buf)
	switch {
	case err == nil:
		s.rx, s.tx, s.hasNet = rx, tx, true
	case c.processGone(it.Pid):
	default:
		return fmt.Errorf("container %s: read network counters: %w", it.Name, err)
	}
	return nil
}

func (c *Collector) processGone(pid int) bool {
	_, err := os.Stat(filepath.Join(c.opts.ProcRoot, strconv.Itoa(pid)))
	return errors.Is(err, os.ErrNotExist)
}

// send emits one container's series.
func (c *Collector) send(ch chan<- prometheus.Metric, it *containerInfo, s *sample, now time.Time) {
	name, bench := it.Name, it.Bench
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name, bench)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name, bench)
	}

	isRunning := it.State == container.StateRunning
	gauge(c.running, boolFloat(isRunning))
	gauge(c.memLimit, float64(it.MemoryLimit))
	counter(c.restarts, float64(it.Restarts))
	counter(c.oomEvents, float64(s.ooms))
	gauge(c.lastExit, float64(it.ExitCode))
	if !it.StartedAt.IsZero() {
		gauge(c.startTime, unixSeconds(it.StartedAt))
	}
	switch {
	case isRunning:
		gauge(c.lastSeen, unixSeconds(now))
	case !it.FinishedAt.IsZero():
		gauge(c.lastSeen, unixSeconds(it.FinishedAt))
	}
	if it.Health != "" {
		gauge(c.healthy, boolFloat(it.Health == container.Healthy))
	}

	if !s.hasCgroup {
		return
	}
	cg := &s.cg
	counter(c.cpuUsage, float64(cg.cpuUsageNs)/1e9)
	if cg.hasThrottled {
		counter(c.cpuThrottled, float64(cg.throttledNs)/1e9)
	}
	if cg.hasMemory {
		gauge(c.memUsage, float64(cg.memUsage))
		gauge(c.memWorkingSet, float64(cg.workingSet()))
	}
	if cg.hasIO {
		counter(c.fsReads, float64(cg.ioReadBytes))
		counter(c.fsWrites, float64(cg.ioWriteBytes))
	}
	if s.hasNet {
		counter(c.netRx, float64(s.rx))
		counter(c.netTx, float64(s.tx))
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
