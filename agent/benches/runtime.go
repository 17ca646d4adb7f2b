package benches

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
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
}

// Runtime creates and drives bench containers.
type Runtime struct {
	cli  *client.Client
	opts Options
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
	return &Runtime{cli: cli, opts: opts}
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

// Start creates the bench's container when it does not exist, and starts it.
// Idempotent.
func (r *Runtime) Start(ctx context.Context, c Config) error {
	name := ContainerName(c.Name)
	_, err := r.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		if err := r.create(ctx, c); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("inspect container %s: %w", name, err)
	}
	if _, err := r.cli.ContainerStart(ctx, name, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", name, err)
	}
	return nil
}

func (r *Runtime) create(ctx context.Context, c Config) error {
	webPort := network.MustParsePort(strconv.Itoa(r.opts.WebPort) + "/tcp")
	hc := &container.HostConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Resources:     resources(c.Limits),
		ExtraHosts:    r.opts.ExtraHosts,
		Binds: []string{
			r.SitesDir(c.Name) + ":" + benchDir + "/sites",
			filepath.Join(r.Dir(c.Name), "logs") + ":" + benchDir + "/logs",
		},
	}
	hc.PortBindings = network.PortMap{webPort: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(c.Port)}}}
	cmd := append(append([]string(nil), r.opts.Command...), "serve", "--port", strconv.Itoa(r.opts.WebPort))
	_, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
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
		return fmt.Errorf("create container %s: %w", ContainerName(c.Name), err)
	}
	return nil
}

func resources(l agentapi.Limits) container.Resources {
	var res container.Resources
	if l.MemoryBytes > 0 {
		res.Memory = l.MemoryBytes
		res.MemorySwap = l.MemoryBytes
	}
	if l.CPUs > 0 {
		res.NanoCPUs = int64(l.CPUs * 1e9)
	}
	return res
}

// Restart restarts the bench's container.
func (r *Runtime) Restart(ctx context.Context, bench string) error {
	timeout := 30
	if _, err := r.cli.ContainerRestart(ctx, ContainerName(bench), client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("restart container %s: %w", ContainerName(bench), err)
	}
	return nil
}

// SetLimits changes a running bench's limits and records them.
func (r *Runtime) SetLimits(ctx context.Context, bench string, limits agentapi.Limits) error {
	c, err := r.ReadConfig(bench)
	if err != nil {
		return err
	}
	res := resources(limits)
	if _, err := r.cli.ContainerUpdate(ctx, ContainerName(bench), client.ContainerUpdateOptions{Resources: &res}); err != nil {
		return fmt.Errorf("update limits of %s: %w", ContainerName(bench), err)
	}
	c.Limits = limits
	data, _ := json.MarshalIndent(c, "", "  ")
	return atomicfile.WriteFile(r.configPath(bench), append(data, '\n'), 0o644)
}

// Remove stops and removes the bench's container. Idempotent.
func (r *Runtime) Remove(ctx context.Context, bench string) error {
	_, err := r.cli.ContainerRemove(ctx, ContainerName(bench), client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", ContainerName(bench), err)
	}
	return nil
}

// Archive moves the bench's folder to <root>/archived/<bench>-<time>.
// Idempotent: a bench already archived is not an error.
func (r *Runtime) Archive(bench string, now time.Time) (string, error) {
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

// ExecError is a bench command that exited non-zero.
type ExecError struct {
	Args     []string
	ExitCode int
	Output   string // the tail of what it printed
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("bench command %v exited %d: %s", e.Args, e.ExitCode, e.Output)
}

// ExecOptions is what a bench command gets besides its arguments.
type ExecOptions struct {
	// Env is added to the command's environment (KEY=value). Secrets go
	// here, never in the arguments: Docker records an exec's arguments in
	// its event stream, and errors quote them.
	Env []string
}

// Exec runs the bench CLI with args inside the bench's container, copying its
// output to out. A non-zero exit is an *ExecError carrying the output's tail.
func (r *Runtime) Exec(ctx context.Context, bench string, out io.Writer, args ...string) error {
	return r.ExecWith(ctx, bench, out, ExecOptions{}, args...)
}

// ExecWith is Exec with options.
func (r *Runtime) ExecWith(ctx context.Context, bench string, out io.Writer, opts ExecOptions, args ...string) error {
	cmd := append(append([]string(nil), r.opts.Command...), args...)
	created, err := r.cli.ExecCreate(ctx, ContainerName(bench), client.ExecCreateOptions{
		User: fmt.Sprintf("%d:%d", Owner, Owner), AttachStdout: true, AttachStderr: true,
		WorkingDir: benchDir, Cmd: cmd, Env: opts.Env,
	})
	if err != nil {
		return fmt.Errorf("exec in %s: %w", ContainerName(bench), err)
	}
	attached, err := r.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("exec in %s: %w", ContainerName(bench), err)
	}
	defer attached.Close()
	var tail tailBuffer
	w := io.MultiWriter(out, &tail)
	if _, err := stdcopy.StdCopy(w, w, attached.Reader); err != nil && ctx.Err() == nil {
		return fmt.Errorf("exec in %s: read output: %w", ContainerName(bench), err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	inspect, err := r.cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return fmt.Errorf("exec in %s: %w", ContainerName(bench), err)
	}
	if inspect.ExitCode != 0 {
		return &ExecError{Args: args, ExitCode: inspect.ExitCode, Output: tail.String()}
	}
	return nil
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(bytes.TrimSpace(t.b)) }
