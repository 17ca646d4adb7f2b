package nginx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hybridsuite/hybrid/internal/atomicfile"
)

// Site is a site served by a bench; nginx routes it by Host header.
type Site struct {
	Name  string
	Bench string
}

// Bench is a bench container whose web port is published on 127.0.0.1:Port.
type Bench struct {
	Name string
	Port int
}

// Options configure a Manager. Only Dir is required.
type Options struct {
	// Dir is the agent's nginx folder, <root>/agent/nginx.
	Dir string
	// Binary is the nginx executable. Empty means "nginx" on PATH, then
	// /usr/sbin/nginx.
	Binary string
	// MainConfig is the main nginx.conf of a system nginx (usually
	// /etc/nginx/nginx.conf) whose http block holds
	//	include <Dir>/benches/*.conf;
	// Empty means the agent owns nginx: it writes <Dir>/nginx.conf and runs
	// nginx itself (Start, Stop).
	MainConfig string
	// Listen is the listen parameter of the site servers: "80",
	// "127.0.0.1:8080", "[::]:80". Default "80".
	Listen string
	// ProbeListen is where the generation probe server listens; it must be
	// reachable from the agent and should be loopback. Default 127.0.0.1:9471.
	ProbeListen string
	// ProbeTimeout bounds the wait for nginx to serve a new generation after
	// a reload. Default 15s.
	ProbeTimeout time.Duration
	// ClientMaxBodySize is nginx's client_max_body_size for sites. Default 50m.
	ClientMaxBodySize string
	// User is the user directive of the owned nginx.conf ("www-data",
	// "frappe frappe"); empty writes none, so nginx keeps its built-in user
	// (nobody) when started as root.
	User string
	// Reload, when set, replaces the reload the Manager would do (SIGHUP to
	// the owned master, or `nginx -c MainConfig -s reload`), for example with
	// `systemctl reload nginx`. The generation probe runs after it either way.
	Reload func(ctx context.Context) error
	// AccessLogSocket, when set, is a unix datagram socket that every site
	// request's access log line is sent to, in the fixed format LogFormat
	// names (see exporters/sitelog). Empty sends none.
	AccessLogSocket string
	// SitesServed, when set, is told the sites nginx may be serving: at New
	// (those of the served generation), during an Apply (the old and new
	// ones together, until it is proven or rolled back) and after it.
	SitesServed func(sites []string)
	Logger      *slog.Logger
}

// ErrConfigRejected wraps the output of an `nginx -t` that failed; the
// previous configuration is still in place.
var ErrConfigRejected = errors.New("nginx rejected the configuration")

// ErrReloadNotTaken means nginx accepted the configuration (`nginx -t`
// passed) but did not start serving it after the reload; the previous
// configuration is back in place on disk.
var ErrReloadNotTaken = errors.New("nginx reload did not take effect")

// Manager renders the bench snippets and makes nginx serve them. Its methods
// are safe for concurrent use; Apply calls run one at a time.
type Manager struct {
	opts   Options
	logger *slog.Logger
	client *http.Client

	mu   sync.Mutex // serializes Apply, Start, Stop
	gen  uint64     // the committed generation
	last uint64     // the highest generation ever written; numbers are never reused

	served []string // the sites of the committed generation

	proc *process // the nginx master the Manager started, if any

	// extraDirectives is a test hook: lines added to a bench's server block,
	// the only way to get an invalid snippet past name validation.
	extraDirectives func(bench string) string
}

var (
	listenPattern   = regexp.MustCompile(`^[0-9A-Za-z.:\[\]]+$`)
	sizePattern     = regexp.MustCompile(`^[0-9]+[kKmMgG]?$`)
	userPattern     = regexp.MustCompile(`^[a-z_][a-z0-9_-]*( [a-z_][a-z0-9_-]*)?$`)
	pathUnsafeChars = " \t\r\n;{}'\"$#\\"
)

func (o *Options) defaults() error {
	var errs []error
	if o.Dir == "" || !filepath.IsAbs(o.Dir) {
		errs = append(errs, fmt.Errorf("dir %q: must be an absolute path", o.Dir))
	}
	o.Dir = filepath.Clean(o.Dir)
	if strings.ContainsAny(o.Dir, pathUnsafeChars) {
		errs = append(errs, fmt.Errorf("dir %q: must not contain spaces, quotes, ';', '{', '}', '$', '#' or '\\'", o.Dir))
	}
	if o.Binary == "" {
		o.Binary = "nginx"
		if _, err := exec.LookPath("nginx"); err != nil {
			o.Binary = "/usr/sbin/nginx"
		}
	}
	if o.Listen == "" {
		o.Listen = "80"
	}
	if !listenPattern.MatchString(o.Listen) {
		errs = append(errs, fmt.Errorf("listen %q: want a port or address:port", o.Listen))
	}
	if o.ProbeListen == "" {
		o.ProbeListen = "127.0.0.1:9471"
	}
	if !listenPattern.MatchString(o.ProbeListen) || !strings.Contains(o.ProbeListen, ":") {
		errs = append(errs, fmt.Errorf("probe listen %q: want address:port", o.ProbeListen))
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 15 * time.Second
	}
	if o.ClientMaxBodySize == "" {
		o.ClientMaxBodySize = "50m"
	}
	if !sizePattern.MatchString(o.ClientMaxBodySize) {
		errs = append(errs, fmt.Errorf("client max body size %q: want a number with an optional k, m or g", o.ClientMaxBodySize))
	}
	if o.User != "" && !userPattern.MatchString(o.User) {
		errs = append(errs, fmt.Errorf("user %q: want \"user\" or \"user group\"", o.User))
	}
	if o.AccessLogSocket != "" {
		// nginx ends the syslog parameter at a comma and the directive at
		// a space or semicolon; a unix socket path has at most 107 bytes.
		switch {
		case !filepath.IsAbs(o.AccessLogSocket):
			errs = append(errs, fmt.Errorf("access log socket %q: must be an absolute path", o.AccessLogSocket))
		case strings.ContainsAny(o.AccessLogSocket, pathUnsafeChars+","):
			errs = append(errs, fmt.Errorf("access log socket %q: must not contain spaces, quotes, ',', ';', '{', '}', '$', '#' or '\\'", o.AccessLogSocket))
		case len(o.AccessLogSocket) > 107:
			errs = append(errs, fmt.Errorf("access log socket %q: %d bytes, a unix socket path has at most 107", o.AccessLogSocket, len(o.AccessLogSocket)))
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

// New checks the options and prepares Dir. If an earlier Apply was
// interrupted between switching to a new generation and proving it, New
// switches back to the last proven one.
func New(opts Options) (*Manager, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("nginx options: %w", err)
	}
	m := &Manager{
		opts:   opts,
		logger: opts.Logger.With("component", "nginx"),
		client: &http.Client{
			// A fresh connection per probe: a kept-alive one may be held by
			// a worker of the old configuration.
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			Timeout:   2 * time.Second,
		},
	}
	if err := m.prepare(); err != nil {
		return nil, err
	}
	m.served = m.readSites(m.gen)
	m.tellSites(m.served)
	return m, nil
}

func (m *Manager) tellSites(sites []string) {
	if m.opts.SitesServed != nil {
		m.opts.SitesServed(slices.Clone(sites))
	}
}

func (m *Manager) owned() bool { return m.opts.MainConfig == "" }

// mainConfig is the file given to nginx with -c.
func (m *Manager) mainConfig() string {
	if m.owned() {
		return filepath.Join(m.opts.Dir, "nginx.conf")
	}
	return m.opts.MainConfig
}

func (m *Manager) path(elem ...string) string {
	return filepath.Join(append([]string{m.opts.Dir}, elem...)...)
}

// Layout of Dir:
//
//	benches -> generations/<n>/benches   symlink nginx includes; swapped by rename
//	generation                           n of the last generation proven served
//	generations/<n>/benches/*.conf       one snippet per bench, and _hybrid.conf
//	nginx.conf, run/, logs/, tmp/        the owned nginx only
func (m *Manager) prepare() error {
	for _, d := range []string{"generations", "run", "logs", "tmp"} {
		if err := os.MkdirAll(m.path(d), 0o755); err != nil {
			return fmt.Errorf("prepare nginx folder: %w", err)
		}
	}
	if m.owned() {
		main, err := m.renderMain()
		if err != nil {
			return err
		}
		if old, err := os.ReadFile(m.mainConfig()); err != nil || string(old) != string(main) {
			if err := atomicfile.WriteFile(m.mainConfig(), main, 0o644); err != nil {
				return err
			}
		}
	}
	raw, err := os.ReadFile(m.path("generation"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// First start: generation 0 serves no bench, only the probe.
		if err := m.writeGeneration(0, nil, nil); err != nil {
			return err
		}
		if err := m.pointBenchesAt(0); err != nil {
			return err
		}
		return m.commit(0, 0)
	case err != nil:
		return fmt.Errorf("read nginx generation: %w", err)
	}
	gen, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return fmt.Errorf("read nginx generation %s: %w", m.path("generation"), err)
	}
	m.gen, m.last = gen, gen
	if entries, err := os.ReadDir(m.path("generations")); err == nil {
		for _, e := range entries {
			if n, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && n > m.last {
				m.last = n
			}
		}
	}
	target, err := os.Readlink(m.path("benches"))
	if err != nil || target != generationTarget(gen) {
		m.logger.Warn("restoring the last served nginx generation", "generation", gen, "found", target)
		return m.pointBenchesAt(gen)
	}
	return nil
}

func generationTarget(gen uint64) string {
	return filepath.Join("generations", strconv.FormatUint(gen, 10), "benches")
}

// writeGeneration writes every snippet of a generation into its own folder,
// which nothing includes yet.
func (m *Manager) writeGeneration(gen uint64, benches []Bench, sites []Site) error {
	files, err := m.renderBenches(gen, benches, sites)
	if err != nil {
		return err
	}
	dir := m.path(generationTarget(gen))
	if err := os.RemoveAll(filepath.Dir(dir)); err != nil { // left by a crash
		return fmt.Errorf("write nginx generation %d: %w", gen, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write nginx generation %d: %w", gen, err)
	}
	for name, data := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write nginx generation %d: %w", gen, err)
		}
	}
	return nil
}

func siteNames(sites []Site) []string {
	names := make([]string, 0, len(sites))
	for _, s := range sites {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// readSites returns the site names of a generation, read back from its
// snippets: after a restart the agent knows which sites are served before
// any Apply.
func (m *Manager) readSites(gen uint64) []string {
	_, sites, err := readRoutes(m.path(generationTarget(gen)))
	if err != nil {
		m.logger.Warn("read the served sites", "generation", gen, "err", err)
		return nil
	}
	var names []string
	for _, s := range sites {
		if validateSite(s.Name) != nil {
			m.logger.Warn("ignoring a bad name in the served sites", "generation", gen, "name", s.Name)
			continue
		}
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// pointBenchesAt switches <Dir>/benches to a generation with one rename, so
// nginx (or anyone reading) sees the whole old set or the whole new set.
func (m *Manager) pointBenchesAt(gen uint64) error {
	link := m.path("benches")
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(generationTarget(gen), tmp); err != nil {
		return fmt.Errorf("switch nginx to generation %d: %w", gen, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("switch nginx to generation %d: %w", gen, err)
	}
	return syncDir(m.opts.Dir)
}

// commit records gen as the generation nginx is proven to serve and removes
// every other generation but prev, the one served before.
func (m *Manager) commit(gen, prev uint64) error {
	if err := atomicfile.WriteFile(m.path("generation"), []byte(strconv.FormatUint(gen, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("record nginx generation: %w", err)
	}
	m.gen = gen
	entries, err := os.ReadDir(m.path("generations"))
	if err != nil {
		return fmt.Errorf("clean nginx generations: %w", err)
	}
	for _, e := range entries {
		n, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || n == gen || n == prev {
			continue
		}
		if err := os.RemoveAll(m.path("generations", e.Name())); err != nil {
			m.logger.Warn("remove old nginx generation", "generation", n, "err", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Apply makes nginx route every site to its bench. It writes a new
// generation of snippets beside the served one, switches <Dir>/benches to it,
// and runs `nginx -t` on the main configuration; if the check fails it
// switches back and returns ErrConfigRejected with nginx's message. Then it
// reloads nginx and waits until the probe server answers with the new
// generation; if it never does, it switches back and returns
// ErrReloadNotTaken. When the Manager owns nginx and nginx is not running,
// Apply stops after the check: Start serves the new generation.
func (m *Manager) Apply(ctx context.Context, benches []Bench, sites []Site) error {
	if err := validate(benches, sites); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.apply(ctx, benches, sites)
}

// Refresh renders the served routes again with the current options and,
// when that differs from what nginx serves (the agent was upgraded, an
// option changed), applies them: the same benches and sites, in the new
// form. The routes are read back from the served snippets, so a generation
// written by an older agent is refreshed too.
func (m *Manager) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir := m.path(generationTarget(m.gen))
	benches, sites, err := readRoutes(dir)
	if err != nil {
		return fmt.Errorf("refresh nginx configuration: %w", err)
	}
	if err := validate(benches, sites); err != nil {
		return fmt.Errorf("refresh nginx configuration: the served snippets: %w", err)
	}
	files, err := m.renderBenches(m.gen, benches, sites)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("refresh nginx configuration: %w", err)
	}
	same := len(entries) == len(files)
	for name, data := range files {
		if old, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(old) != string(data) {
			same = false
		}
	}
	if same {
		return nil
	}
	m.logger.Info("nginx configuration rendered differently now; applying it", "generation", m.gen)
	return m.apply(ctx, benches, sites)
}

func (m *Manager) apply(ctx context.Context, benches []Bench, sites []Site) error {
	old, gen := m.gen, m.last+1
	m.last = gen
	log := m.logger.With("generation", gen)
	if err := m.writeGeneration(gen, benches, sites); err != nil {
		return err
	}
	// While nginx moves over, requests of the old and the new sites both
	// count as theirs.
	newSites := siteNames(sites)
	m.tellSites(union(m.served, newSites))
	// A failed generation stays in generations/ for inspection until the
	// next commit cleans up; only the link goes back.
	rollback := func(cause error) error {
		m.tellSites(m.served)
		if err := m.pointBenchesAt(old); err != nil {
			return errors.Join(cause, err)
		}
		log.Warn("nginx configuration rolled back", "to", old, "err", cause)
		return cause
	}
	if err := m.pointBenchesAt(gen); err != nil {
		return rollback(err)
	}
	if err := m.test(ctx); err != nil {
		return rollback(err)
	}
	oldWorkers := m.currentWorkers(ctx)
	reloaded, err := m.reload(ctx)
	if err != nil {
		return rollback(err)
	}
	if reloaded {
		if err := m.waitGeneration(ctx, gen, oldWorkers); err != nil {
			err = rollback(err)
			// If nginx did take the new generation, only later than we
			// waited, reload once more so that what it serves is again
			// what is on disk. Nothing to wait for: the old generation
			// passed before.
			if _, rerr := m.reload(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return err
		}
		log.Info("nginx serves new configuration", "benches", len(benches), "sites", len(sites))
	} else {
		log.Info("nginx not running; configuration written and checked", "benches", len(benches), "sites", len(sites))
	}
	if err := m.commit(gen, old); err != nil {
		return err
	}
	m.served = newSites
	m.tellSites(m.served)
	return nil
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// Generation is the generation of the last configuration proven served (or,
// with an owned nginx not running, checked).
func (m *Manager) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}
