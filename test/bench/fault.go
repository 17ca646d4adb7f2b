package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

// A site can be made to misbehave on request, for demos and for tests of the
// alerts: `bench --site <site> set-fault <kind> <value>` records the fault in
// the site's site_config.json under "hybrid_fault" (so an operator can also
// write it by hand), and `set-fault off` clears them all. Kinds:
//
//	status <code>    every request to the site answers that HTTP status (500, 402, 429, ...)
//	slow <duration>  every request to the site waits that long first (e.g. 3s)
//	memory <MiB>     the serving process allocates and holds that much memory
//	cpu <cores>      the serving process keeps that many cores busy
//	exit <code>      the serving process exits with that code (under a restart policy: a crash loop)
//
// Request faults apply at once (every request reads the site's config);
// process faults within a second (serve checks every site's config).
const faultKey = "hybrid_fault"

type fault struct {
	Status   int
	Delay    time.Duration
	MemoryMB int
	CPUs     int
	Exit     int
}

// faultLimits bound what a fault may ask for: this is a test fixture, not a
// way to take a machine down by mistake.
const (
	maxFaultMemoryMB = 64 << 10
	maxFaultCPUs     = 64
	maxFaultDelay    = 10 * time.Minute
)

// parseFault reads "hybrid_fault" of a site's config: an object of the kinds
// above ({"status": 500, "slow": "3s"}).
func parseFault(v any) (fault, error) {
	var f fault
	if v == nil {
		return f, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return f, fmt.Errorf("%s is %v, want an object", faultKey, v)
	}
	var problems []error
	for kind, raw := range m {
		if err := f.set(kind, fmt.Sprint(raw)); err != nil {
			problems = append(problems, fmt.Errorf("%s.%w", faultKey, err))
		}
	}
	return f, errors.Join(problems...)
}

// set sets one kind from its text value.
func (f *fault) set(kind, value string) error {
	num := func(lo, hi int) (int, error) {
		n, err := strconv.Atoi(value)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%s: %q is not a number in %d..%d", kind, value, lo, hi)
		}
		return n, nil
	}
	var err error
	switch kind {
	case "status":
		f.Status, err = num(100, 599)
	case "slow":
		var d time.Duration
		d, err = time.ParseDuration(value)
		if err != nil || d < 0 || d > maxFaultDelay {
			err = fmt.Errorf("slow: %q is not a duration in 0s..%s", value, maxFaultDelay)
		}
		f.Delay = d
	case "memory":
		f.MemoryMB, err = num(1, maxFaultMemoryMB)
	case "cpu":
		f.CPUs, err = num(1, maxFaultCPUs)
	case "exit":
		f.Exit, err = num(1, 255)
	default:
		err = fmt.Errorf("%s: unknown fault kind (status, slow, memory, cpu, exit)", kind)
	}
	return err
}

// record is the fault as site_config.json keeps it.
func (f fault) record() map[string]any {
	m := map[string]any{}
	if f.Status != 0 {
		m["status"] = f.Status
	}
	if f.Delay != 0 {
		m["slow"] = f.Delay.String()
	}
	if f.MemoryMB != 0 {
		m["memory"] = f.MemoryMB
	}
	if f.CPUs != 0 {
		m["cpu"] = f.CPUs
	}
	if f.Exit != 0 {
		m["exit"] = f.Exit
	}
	return m
}

func (b *Bench) setFaultCmd(site string, args []string) error {
	a, err := parseArgs("set-fault", args, argSpec{})
	if err != nil {
		return err
	}
	switch {
	case len(a.pos) == 1 && a.pos[0] == "off":
		return b.updateSiteConfig(site, func(m map[string]any) { delete(m, faultKey) })
	case len(a.pos) != 2:
		return usagef("set-fault takes <kind> <value> (status, slow, memory, cpu, exit) or off")
	}
	cfg, err := b.readSiteConfig(site)
	if err != nil {
		return fmt.Errorf("set-fault %s: %w", site, err)
	}
	f := cfg.Fault
	if err := f.set(a.pos[0], a.pos[1]); err != nil {
		return usagef("set-fault %v", err)
	}
	if err := b.updateSiteConfig(site, func(m map[string]any) { m[faultKey] = f.record() }); err != nil {
		return fmt.Errorf("set-fault %s: %w", site, err)
	}
	fmt.Fprintf(b.Stdout, "site %s: fault %s %s\n", site, a.pos[0], a.pos[1])
	return nil
}

// exitCodeError ends the bench process with Code (the exit fault).
type exitCodeError struct {
	Code int
	Site string
}

func (e *exitCodeError) Error() string {
	return fmt.Sprintf("serve: exits %d on purpose (site %s has the exit fault)", e.Code, e.Site)
}

// processFaults applies the memory, cpu and exit faults of every site to the
// serving process, checking the sites' configs every interval until ctx ends.
// It returns an *exitCodeError when a site asks the process to exit.
type processFaults struct {
	b        *Bench
	interval time.Duration

	mu      sync.Mutex
	held    []byte
	burning int
	stop    []chan struct{}
}

func (p *processFaults) run(ctx context.Context) error {
	defer p.apply(0, 0)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		memory, cpus, exit, site := p.scan()
		if exit != 0 {
			return &exitCodeError{Code: exit, Site: site}
		}
		p.apply(memory, cpus)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// scan sums the process faults of every site (the first exit wins).
func (p *processFaults) scan() (memoryMB, cpus, exit int, exitSite string) {
	entries, err := os.ReadDir(p.b.SitesDir())
	if err != nil {
		return 0, 0, 0, ""
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() && validateSiteName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, site := range names {
		cfg, err := p.b.readSiteConfig(site)
		if err != nil {
			continue
		}
		memoryMB = min(memoryMB+cfg.Fault.MemoryMB, maxFaultMemoryMB)
		cpus = min(cpus+cfg.Fault.CPUs, maxFaultCPUs)
		if exit == 0 && cfg.Fault.Exit != 0 {
			exit, exitSite = cfg.Fault.Exit, site
		}
	}
	return memoryMB, cpus, exit, exitSite
}

// apply holds memoryMB MiB (touched, so it is resident) and keeps cpus
// goroutines spinning.
func (p *processFaults) apply(memoryMB, cpus int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.held) != memoryMB<<20 {
		p.held = nil
		runtime.GC()
		if memoryMB > 0 {
			p.held = make([]byte, memoryMB<<20)
			for i := 0; i < len(p.held); i += 4096 {
				p.held[i] = 1
			}
		}
	}
	for p.burning < cpus {
		stop := make(chan struct{})
		p.stop = append(p.stop, stop)
		p.burning++
		go spin(stop)
	}
	for p.burning > cpus {
		close(p.stop[len(p.stop)-1])
		p.stop = p.stop[:len(p.stop)-1]
		p.burning--
	}
}

func spin(stop <-chan struct{}) {
	x := uint64(1)
	for {
		for range 1 << 16 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		select {
		case <-stop:
			_ = x
			return
		default:
		}
	}
}
