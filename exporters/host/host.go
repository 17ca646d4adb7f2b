package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/node_exporter/collector"

	"github.com/hybridsuite/hybrid/exporters"
)

// Options configure the host collectors. The zero value means the defaults.
type Options struct {
	// ProcFS, SysFS and RootFS are where the host's /proc, /sys and / are
	// mounted: /proc, /sys and / unless the agent runs in a container.
	ProcFS, SysFS, RootFS string
	// Collectors are the node_exporter collectors to run, by node_exporter's
	// names; nil means DefaultCollectors().
	Collectors []string
	// NetdevFromProcFS makes the netdev and arp collectors read
	// <ProcFS>/net/dev and <ProcFS>/net/arp rather than ask the kernel over
	// netlink (node_exporter's default). The series are the same; tests use
	// it so that both read their fixture.
	NetdevFromProcFS bool
	// TextfileDirectory is where the textfile collector reads *.prom files
	// that cron jobs and scripts drop; default DefaultTextfileDirectory.
	// When it does not exist when the agent starts, the collector reports
	// only node_textfile_scrape_error 0.
	TextfileDirectory string

	// Root is the server root, with benches/ and archived/ under it;
	// default /home/frappe.
	Root string
	// MariaDBDataDir is MariaDB's datadir; default /var/lib/mysql.
	MariaDBDataDir string
	// DirectoryInterval is how often the directory sizes are measured;
	// default 5 minutes.
	DirectoryInterval time.Duration
	// ProcessesMinInterval is the least time between two reads of every
	// process for the per-user process metrics: a scrape sooner than that
	// gets the last read again. Default 10s, below usual scrape intervals.
	ProcessesMinInterval time.Duration
}

// DefaultCollectors are the node_exporter collectors run when Options name
// none; doc.go says why these. A new slice on each call.
func DefaultCollectors() []string {
	return []string{
		"arp", "conntrack", "cpu", "diskstats", "entropy", "filefd", "filesystem", "loadavg", "mdadm",
		"meminfo", "netclass", "netdev", "netstat", "os", "pressure", "sockstat", "softnet",
		"stat", "textfile", "time", "timex", "udp_queues", "uname", "vmstat",
	}
}

// DefaultTextfileDirectory is Debian's node_exporter textfile directory,
// where prometheus-node-exporter-collectors and operators' scripts already
// write.
const DefaultTextfileDirectory = "/var/lib/prometheus/node-exporter"

// Names of the collectors this package adds to node_exporter's.
const (
	directoriesName = "directories"
	processesName   = "processes"
	// node_exporter's collectors that this package reimplements.
	arpName        = "arp"
	conntrackName  = "conntrack"
	cpuName        = "cpu"
	entropyName    = "entropy"
	filefdName     = "filefd"
	filesystemName = "filesystem"
	loadavgName    = "loadavg"
	meminfoName    = "meminfo"
	netclassName   = "netclass"
	netdevName     = "netdev"
	netstatName    = "netstat"
	pressureName   = "pressure"
	sockstatName   = "sockstat"
	softnetName    = "softnet"
	statName       = "stat"
	timeName       = "time"
	udpQueuesName  = "udp_queues"
	vmstatName     = "vmstat"
)

func (o Options) withDefaults() Options {
	if o.ProcFS == "" {
		o.ProcFS = "/proc"
	}
	if o.SysFS == "" {
		o.SysFS = "/sys"
	}
	if o.RootFS == "" {
		o.RootFS = "/"
	}
	if o.Collectors == nil {
		o.Collectors = DefaultCollectors()
	} else {
		o.Collectors = slices.Clone(o.Collectors)
		slices.Sort(o.Collectors)
		o.Collectors = slices.Compact(o.Collectors)
	}
	if o.Root == "" {
		o.Root = "/home/frappe"
	}
	if o.TextfileDirectory == "" {
		o.TextfileDirectory = DefaultTextfileDirectory
	}
	if o.MariaDBDataDir == "" {
		o.MariaDBDataDir = "/var/lib/mysql"
	}
	if o.ProcessesMinInterval == 0 {
		o.ProcessesMinInterval = 10 * time.Second
	}
	if o.DirectoryInterval == 0 {
		o.DirectoryInterval = 5 * time.Minute
	}
	return o
}

// validate returns every problem with o at once.
func (o Options) validate() error {
	var errs []error
	var unknown []string
	for _, name := range o.Collectors {
		switch {
		case name == processesName:
			errs = append(errs, errors.New(`Collectors: node_exporter's "processes" collector is not offered: `+
				`its name is taken by the per-user processes collector, which reads the same files`))
		case !knownNodeCollector(name):
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("Collectors: unknown node_exporter collectors %s", strings.Join(unknown, ", ")))
	}
	if o.DirectoryInterval < 0 {
		errs = append(errs, fmt.Errorf("DirectoryInterval: %s is negative", o.DirectoryInterval))
	}
	return errors.Join(errs...)
}

// Host holds the host collectors: node_exporter's, by their names, and this
// package's "directories" and "processes".
type Host struct {
	collectors map[string]exporters.Collector
	dirs       *directoriesCollector
	processes  *processesCollector
	// kept are the collectors that keep files open between scrapes,
	// processes excepted.
	kept []interface{ close() }

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New builds the host collectors. The first call in a process configures
// node_exporter's collectors; a later call must pass the same ProcFS, SysFS,
// RootFS, Collectors and NetdevFromProcFS (and gets the same node collector
// instances), since node_exporter keeps that configuration in process-wide
// flags.
func New(logger *slog.Logger, opts Options) (*Host, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("host collector options: %w", err)
	}
	if err := parseNodeFlags(nodeArgs(opts)); err != nil {
		return nil, err
	}
	h := &Host{collectors: make(map[string]exporters.Collector, len(opts.Collectors)+2)}
	// node_exporter's collectors this package reimplements, for their cost,
	// with the same series: see doc.go.
	var nodeNames []string
	for _, name := range opts.Collectors {
		c, err := newOwnCollector(logger.With("collector", name), name, opts)
		if err != nil {
			return nil, err
		}
		if c == nil {
			nodeNames = append(nodeNames, name)
			continue
		}
		h.collectors[name] = c
		h.kept = append(h.kept, c)
	}
	// With no names NewNodeCollector would start every enabled collector.
	if len(nodeNames) > 0 {
		nc, err := collector.NewNodeCollector(logger, nodeNames...)
		if err != nil {
			return nil, fmt.Errorf("start node_exporter collectors: %w", err)
		}
		for name, c := range nc.Collectors {
			h.collectors[name] = &nodeCollector{name: name, c: c, logger: logger.With("collector", name)}
		}
	}
	h.dirs = newDirectoriesCollector(logger.With("collector", directoriesName), []watchedDir{
		{kind: "benches", path: filepath.Join(opts.Root, "benches")},
		{kind: "archived", path: filepath.Join(opts.Root, "archived")},
		{kind: "mariadb_datadir", path: opts.MariaDBDataDir},
	}, opts.DirectoryInterval)
	h.collectors[directoriesName] = h.dirs
	h.processes = newProcessesCollector(logger.With("collector", processesName), opts.ProcFS)
	h.collectors[processesName] = exporters.MinInterval(h.processes, opts.ProcessesMinInterval, nil)
	return h, nil
}

// NodeCollectorNames are the collectors that stand for node_exporter's (its
// own or this package's versions), sorted: the ones whose success and
// duration are also reported under node_exporter's names
// (node_scrape_collector_*), as dashboards built for it expect.
func (h *Host) NodeCollectorNames() []string {
	var out []string
	for name := range h.collectors {
		if name != directoriesName && name != processesName {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Collectors returns the collectors by name, in a map of the caller's own.
func (h *Host) Collectors() map[string]exporters.Collector {
	out := make(map[string]exporters.Collector, len(h.collectors))
	for name, c := range h.collectors {
		out[name] = c
	}
	return out
}

// Start starts measuring the directory sizes: once now, then every
// DirectoryInterval, until ctx ends or Close is called. Until the first
// measurement ends the directories collector reports nothing. Later calls do
// nothing.
func (h *Host) Start(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started || h.closed {
		return
	}
	h.started = true
	ctx, h.cancel = context.WithCancel(ctx)
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		h.dirs.run(ctx)
	}()
}

// Close stops the directory measurements, waits for a running one to stop,
// and closes the /proc and /sys files the collectors keep open between
// scrapes (a scrape after Close opens them again).
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
	h.processes.close()
	for _, c := range h.kept {
		c.close()
	}
	return nil
}

// ownCollector is a collector of node_exporter's this package reimplements.
type ownCollector interface {
	exporters.Collector
	close() // closes the files kept open; a later update opens them again
}

// newOwnCollector returns this package's version of node_exporter's collector
// name, configured by node_exporter's flags as parseNodeFlags left them, or
// nil when node_exporter's own is used.
func newOwnCollector(logger *slog.Logger, name string, opts Options) (ownCollector, error) {
	switch name {
	case arpName:
		return newArpCollector(opts.ProcFS, nodeFlag("collector.arp.device-exclude"), nodeFlag("collector.arp.device-include"))
	case conntrackName:
		return newConntrackCollector(opts.ProcFS), nil
	case cpuName:
		c, err := newCPUCollector(opts.ProcFS, opts.SysFS)
		if c == nil || err != nil {
			return nil, err // nil: node_exporter's own, for --collector.cpu.info
		}
		return c, nil
	case entropyName:
		return newEntropyCollector(opts.ProcFS), nil
	case filefdName:
		return newFilefdCollector(opts.ProcFS), nil
	case filesystemName:
		c, err := newFilesystemCollector(opts.ProcFS, opts.RootFS)
		if c == nil || err != nil {
			return nil, err // nil: node_exporter's own, for flags it does not follow
		}
		return c, nil
	case loadavgName:
		return newLoadavgCollector(opts.ProcFS), nil
	case meminfoName:
		return newMeminfoCollector(opts.ProcFS), nil
	case netclassName:
		return newNetclassCollector(logger, opts.SysFS,
			nodeFlag("collector.netclass.ignored-devices"), nodeFlag("collector.netclass.ignore-invalid-speed") == "true")
	case netdevName:
		c, err := newNetdevCollector(opts.ProcFS, opts.SysFS, opts.NetdevFromProcFS)
		if c == nil || err != nil {
			return nil, err // nil: node_exporter's own, for flags it does not follow
		}
		return c, nil
	case netstatName:
		return newNetstatCollector(opts.ProcFS, nodeFlag("collector.netstat.fields"))
	case pressureName:
		return newPressureCollector(opts.ProcFS), nil
	case sockstatName:
		return newSockstatCollector(opts.ProcFS), nil
	case softnetName:
		return newSoftnetCollector(opts.ProcFS), nil
	case statName:
		return newStatCollector(opts.ProcFS, nodeFlag("collector.stat.softirq") == "true"), nil
	case timeName:
		return newTimeCollector(opts.SysFS), nil
	case udpQueuesName:
		return newUDPQueuesCollector(opts.ProcFS), nil
	case vmstatName:
		return newVmstatCollector(opts.ProcFS, nodeFlag("collector.vmstat.fields"))
	}
	return nil, nil
}
