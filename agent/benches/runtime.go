package benches

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/names"
	"github.com/hybridsuite/hybrid/internal/atomicfile"
)

// Owner is the uid and gid of a bench's files, as in a Frappe bench.
const Owner = 1000

// benchDir is where a bench lives inside its container.
const benchDir = "/home/frappe/frappe-bench"

// Options configure the runtime.
type Options struct {
	Root  string // server root: benches/ and archived/ are under it
	Label string // the bench label, as the bench exporter selects containers
	// Command is how the bench CLI is called inside the container.
	Command []string
	// WebPort is the port the bench serves on inside the container.
	WebPort int
	// ExtraHosts are added to each container's /etc/hosts, e.g.
	// "host.docker.internal:host-gateway" so benches reach the host's MariaDB.
	ExtraHosts []string

	// KillGrace is how long a bench command whose job was cancelled or
	// timed out gets between SIGTERM and SIGKILL (default 10 s).
	KillGrace time.Duration

	// The rest are the bench containers' safe defaults, set when a
	// container is created: a bench runs code the agent does not control.

	// PidsLimit caps a container's processes (default 4096; -1: no cap).
	PidsLimit int64
	// MemoryBytes is a container's memory limit when its request sets none
	// (default 2 GiB; -1: no limit).
	MemoryBytes int64
	// CapAdd are the capabilities a container keeps; all others are
	// dropped. A bench runs as 1000:1000 and serves on a high port, so it
	// needs none (the default).
	CapAdd []string
	// LogMaxSize and LogMaxFiles rotate a container's json-file log
	// (defaults "10m" and 3).
	LogMaxSize  string
	LogMaxFiles int

	// IntentGrace is how long after the agent stopped, restarted or
	// removed a bench on purpose the Supervisor still leaves its container
	// alone (default 30 s): Docker's events arrive after the call returns.
	IntentGrace time.Duration
	// Network is the Docker network bench containers join (default
	// DefaultNetwork), made when missing as a bridge whose containers
	// cannot reach each other: on Docker's default bridge a bench reaches
	// every other bench's ports directly, past nginx. They still reach
	// the host (MariaDB through host-gateway) and serve on their
	// published port.
	Network string
}

// Defaults of Options.
const (
	DefaultKillGrace   = 10 * time.Second
	DefaultPidsLimit   = 4096
	DefaultMemoryBytes = 2 << 30
	DefaultLogMaxSize  = "10m"
	DefaultLogMaxFiles = 3
	DefaultIntentGrace = 30 * time.Second
	DefaultNetwork     = "hybrid-benches"
)

// Runtime creates and drives bench containers.
type Runtime struct {
	cli  *client.Client
	opts Options

	mu      sync.Mutex
	intents map[string]*intent // by bench
}

// intent marks a bench the agent is stopping, restarting or removing on
// purpose, so the Supervisor does not start it again behind the job's back.
type intent struct {
	active int       // operations running now
	until  time.Time // the last one ended; the mark holds until then
}

// New returns a runtime using cli.
func New(cli *client.Client, opts Options) *Runtime {
	if opts.Label == "" {
		opts.Label = "io.hybrid.bench"
	}
	if len(opts.Command) == 0 {
		opts.Command = []string{"bench"}
	}
	if opts.WebPort == 0 {
		opts.WebPort = 8000
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	if opts.PidsLimit == 0 {
		opts.PidsLimit = DefaultPidsLimit
	}
	if opts.MemoryBytes == 0 {
		opts.MemoryBytes = DefaultMemoryBytes
	}
	if opts.LogMaxSize == "" {
		opts.LogMaxSize = DefaultLogMaxSize
	}
	if opts.LogMaxFiles <= 0 {
		opts.LogMaxFiles = DefaultLogMaxFiles
	}
	if opts.Network == "" {
		opts.Network = DefaultNetwork
	}
	if opts.IntentGrace <= 0 {
		opts.IntentGrace = DefaultIntentGrace
	}
	return &Runtime{cli: cli, opts: opts, intents: map[string]*intent{}}
}

// intend marks bench as changed on purpose until the returned func is called
// and IntentGrace after it.
func (r *Runtime) intend(bench string) (done func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.intents[bench]
	if in == nil {
		in = &intent{}
		r.intents[bench] = in
	}
	in.active++
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		in.active--
		in.until = time.Now().Add(r.opts.IntentGrace)
	}
}

// intended says whether the agent is stopping, restarting or removing bench
// on purpose, or did so within IntentGrace.
func (r *Runtime) intended(bench string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.intents[bench]
	if in == nil {
		return false
	}
	if in.active > 0 || time.Now().Before(in.until) {
		return true
	}
	delete(r.intents, bench)
	return false
}

// Config is what the agent records of a bench, in <bench>/config/bench.json.
type Config struct {
	Name   string          `json:"name"`
	Image  string          `json:"image"`
	Limits agentapi.Limits `json:"limits"`
	// Port is the host port (on 127.0.0.1) its web port is published on.
	Port int `json:"port"`
}

// Dir is the bench's folder.
func (r *Runtime) Dir(bench string) string { return filepath.Join(r.opts.Root, "benches", bench) }

// SitesDir is the bench's sites folder on the host.
func (r *Runtime) SitesDir(bench string) string { return filepath.Join(r.Dir(bench), "sites") }

func (r *Runtime) configPath(bench string) string {
	return filepath.Join(r.Dir(bench), "config", "bench.json")
}

// ContainerName is the bench's container.
func ContainerName(bench string) string { return "bench-" + bench }

// Exists says whether the bench has been created.
func (r *Runtime) Exists(bench string) bool {
	if names.Bench(bench) != nil {
		return false
	}
	_, err := os.Stat(r.configPath(bench))
	return err == nil
}

// ReadConfig reads a bench's recorded configuration.
func (r *Runtime) ReadConfig(bench string) (Config, error) {
	var c Config
	data, err := os.ReadFile(r.configPath(bench))
	if err != nil {
		return c, fmt.Errorf("bench %s: %w", bench, err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("bench %s: %s: %w", bench, r.configPath(bench), err)
	}
	return c, nil
}

// List returns every bench's configuration, by name.
func (r *Runtime) List() ([]Config, error) {
	entries, err := os.ReadDir(filepath.Join(r.opts.Root, "benches"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list benches: %w", err)
	}
	var out []Config
	for _, e := range entries {
		if !e.IsDir() || !r.Exists(e.Name()) {
			continue
		}
		c, err := r.ReadConfig(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Prepare creates the bench's folders, owned 1000:1000, and records its
// configuration with a free loopback port. Idempotent: an existing record
// keeps its port.
func (r *Runtime) Prepare(bench, image string, limits agentapi.Limits) (Config, error) {
	if existing, err := r.ReadConfig(bench); err == nil {
		return existing, nil
	}
	for _, sub := range []string{"sites", "logs", "config"} {
		dir := filepath.Join(r.Dir(bench), sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Config{}, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	for _, p := range []string{r.Dir(bench), r.SitesDir(bench), filepath.Join(r.Dir(bench), "logs"), filepath.Join(r.Dir(bench), "config")} {
		if err := os.Chown(p, Owner, Owner); err != nil {
			return Config{}, fmt.Errorf("chown %s: %w", p, err)
		}
	}
	// Closed to other users of the host: the sites' site_config.json
	// files hold their database passwords, and Frappe writes them 0644.
	if err := os.Chmod(r.Dir(bench), 0o750); err != nil {
		return Config{}, fmt.Errorf("chmod %s: %w", r.Dir(bench), err)
	}
	port, err := freePort()
	if err != nil {
		return Config{}, err
	}
	c := Config{Name: bench, Image: image, Limits: limits, Port: port}
	data, _ := json.MarshalIndent(c, "", "  ")
	if err := atomicfile.WriteFile(r.configPath(bench), append(data, '\n'), 0o644); err != nil {
		return Config{}, err
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ErrNotOurs is a container that has a bench's container name but not the
// agent's label with the bench's name: someone else's, left alone.
var ErrNotOurs = errors.New("not the agent's bench")

// owned inspects the bench's container, refusing one the agent did not
// create: a container is adopted, restarted, changed or removed only when it
// carries the agent's label with the bench's name. A missing container is an
// error for which cerrdefs.IsNotFound is true.
func (r *Runtime) owned(ctx context.Context, bench string) (container.InspectResponse, error) {
	name := ContainerName(bench)
	res, err := r.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("inspect container %s: %w", name, err)
	}
	ctr := res.Container
	if ctr.Config == nil || ctr.Config.Labels[r.opts.Label] != bench {
		return container.InspectResponse{}, fmt.Errorf("container %s exists but is %w %s: refusing to touch it", name, ErrNotOurs, bench)
	}
	return ctr, nil
}

// Start creates the bench's container when it does not exist, and starts it.
// Idempotent. A container of that name that is not the agent's is refused.
func (r *Runtime) Start(ctx context.Context, c Config) error {
	name := ContainerName(c.Name)
	ctr, err := r.owned(ctx, c.Name)
	id := ctr.ID
	if cerrdefs.IsNotFound(err) {
		if id, err = r.create(ctx, c); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if _, err := r.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", name, err)
	}
	return nil
}

// create makes the bench's container with the safe defaults (see Options)
// and returns its id.
func (r *Runtime) create(ctx context.Context, c Config) (string, error) {
	webPort := network.MustParsePort(strconv.Itoa(r.opts.WebPort) + "/tcp")
	res := r.resources(c.Limits)
	if r.opts.PidsLimit > 0 {
		res.PidsLimit = &r.opts.PidsLimit
	}
	if err := r.ensureNetwork(ctx); err != nil {
		return "", err
	}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(r.opts.Network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Resources:     res,
		ExtraHosts:    r.opts.ExtraHosts,
		// The bench runs customers' code: no way to gain privileges, no
		// capabilities beyond the listed ones, a log that cannot fill the
		// disk. Its root filesystem stays writable: benches write there.
		Privileged:     false,
		ReadonlyRootfs: false,
		SecurityOpt:    []string{"no-new-privileges:true"},
		CapDrop:        []string{"ALL"},
		CapAdd:         r.opts.CapAdd,
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": r.opts.LogMaxSize, "max-file": strconv.Itoa(r.opts.LogMaxFiles),
		}},
		Binds: []string{
			r.SitesDir(c.Name) + ":" + benchDir + "/sites",
			filepath.Join(r.Dir(c.Name), "logs") + ":" + benchDir + "/logs",
		},
	}
	hc.PortBindings = network.PortMap{webPort: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(c.Port)}}}
	cmd := append(append([]string(nil), r.opts.Command...), "serve", "--port", strconv.Itoa(r.opts.WebPort))
	created, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: ContainerName(c.Name),
		Config: &container.Config{
			Image:        c.Image,
			Cmd:          cmd,
			User:         fmt.Sprintf("%d:%d", Owner, Owner),
			Labels:       map[string]string{r.opts.Label: c.Name},
			ExposedPorts: network.PortSet{webPort: {}},
			WorkingDir:   benchDir,
		},
		HostConfig: hc,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", ContainerName(c.Name), err)
	}
	return created.ID, nil
}

// iccOption is the bridge driver's option that lets its containers reach
// each other.
const iccOption = "com.docker.network.bridge.enable_icc"

// ensureNetwork makes the benches' network when it does not exist: a bridge
// with inter-container traffic off. One that exists is used as it is (an
// operator's own), unless it lets benches reach each other.
func (r *Runtime) ensureNetwork(ctx context.Context) error {
	name := r.opts.Network
	res, err := r.cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		_, err = r.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver:  "bridge",
			Options: map[string]string{iccOption: "false"},
			Labels:  map[string]string{r.opts.Label: ""},
		})
		if err == nil || cerrdefs.IsConflict(err) { // made by a bench.new running at once
			return nil
		}
		return fmt.Errorf("create network %s: %w", name, err)
	}
	if err != nil {
		return fmt.Errorf("inspect network %s: %w", name, err)
	}
	if n := res.Network; n.Driver == "bridge" && n.Options[iccOption] != "false" {
		return fmt.Errorf("network %s lets its containers reach each other (%s is not false): benches would reach each other's ports", name, iccOption)
	}
	return nil
}

// resources are a bench's limits: the request's, with the default memory
// limit when it sets none.
func (r *Runtime) resources(l agentapi.Limits) container.Resources {
	var res container.Resources
	if l.MemoryBytes > 0 {
		res.Memory = l.MemoryBytes
		res.MemorySwap = l.MemoryBytes
	} else if r.opts.MemoryBytes > 0 {
		res.Memory, res.MemorySwap = r.opts.MemoryBytes, r.opts.MemoryBytes
	}
	if l.CPUs > 0 {
		res.NanoCPUs = int64(l.CPUs * 1e9)
	}
	return res
}

// Restart restarts the bench's container.
func (r *Runtime) Restart(ctx context.Context, bench string) error {
	defer r.intend(bench)()
	ctr, err := r.owned(ctx, bench)
	if err != nil {
		return fmt.Errorf("restart bench %s: %w", bench, err)
	}
	timeout := 30
	if _, err := r.cli.ContainerRestart(ctx, ctr.ID, client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("restart container %s: %w", ContainerName(bench), err)
	}
	return nil
}

// SetLimits changes a running bench's limits and records them.
func (r *Runtime) SetLimits(ctx context.Context, bench string, limits agentapi.Limits) error {
	// A lower memory limit can end the bench's process: the job's doing.
	defer r.intend(bench)()
	c, err := r.ReadConfig(bench)
	if err != nil {
		return err
	}
	ctr, err := r.owned(ctx, bench)
	if err != nil {
		return fmt.Errorf("set limits of bench %s: %w", bench, err)
	}
	res := r.resources(limits)
	if _, err := r.cli.ContainerUpdate(ctx, ctr.ID, client.ContainerUpdateOptions{Resources: &res}); err != nil {
		return fmt.Errorf("update limits of %s: %w", ContainerName(bench), err)
	}
	c.Limits = limits
	data, _ := json.MarshalIndent(c, "", "  ")
	return atomicfile.WriteFile(r.configPath(bench), append(data, '\n'), 0o644)
}

// Remove stops and removes the bench's container. Idempotent. A container of
// that name that is not the agent's is refused, not removed.
func (r *Runtime) Remove(ctx context.Context, bench string) error {
	defer r.intend(bench)()
	ctr, err := r.owned(ctx, bench)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove bench %s: %w", bench, err)
	}
	_, err = r.cli.ContainerRemove(ctx, ctr.ID, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", ContainerName(bench), err)
	}
	return nil
}

// Archive moves the bench's folder to <root>/archived/<bench>-<time>.
// Idempotent: a bench already archived is not an error.
func (r *Runtime) Archive(bench string, now time.Time) (string, error) {
	defer r.intend(bench)()
	src := r.Dir(bench)
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	archived := filepath.Join(r.opts.Root, "archived")
	if err := os.MkdirAll(archived, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", archived, err)
	}
	dst := filepath.Join(archived, bench+"-"+now.UTC().Format("20060102T150405Z"))
	if err := os.Rename(src, dst); err != nil {
		return "", fmt.Errorf("archive bench %s: %w", bench, err)
	}
	return dst, nil
}
