package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// containerInfo is what the inventory knows about one bench container: the
// inspect data, plus counters the agent keeps itself so they stay monotonic
// while it runs.
type containerInfo struct {
	ID    string
	Name  string // without the leading slash
	Bench string // value of the bench label

	State       container.ContainerState // created, running, paused, restarting, removing, exited, dead
	Pid         int                      // init process on the host; 0 when not running
	StartedAt   time.Time                // zero when never started
	FinishedAt  time.Time                // zero when never stopped
	Health      container.HealthStatus   // "" when the container has no healthcheck
	ExitCode    int                      // of the last exit; kept across an automatic restart
	MemoryLimit int64                    // 0 when unlimited

	// Restarts starts at Docker's RestartCount when the agent first sees the
	// container and then only grows by the increases of that count, so a reset
	// (Docker zeroes it on a manual start) never makes it go down.
	Restarts uint64
	// OOMEvents counts the "oom" events seen on the event stream since the
	// agent started.
	OOMEvents uint64

	dockerRestartCount int
}

// inventorySource is what Update needs from the Docker side: a copy of the
// bench containers known now, and a non-nil error when that knowledge may be
// stale because the engine cannot be reached. Defined here, where it is used,
// so unit tests can serve a fixed inventory.
type inventorySource interface {
	snapshot(dst []containerInfo) ([]containerInfo, error)
}

// dockerAPI is the part of the Docker client the inventory uses.
type dockerAPI interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	Events(ctx context.Context, options client.EventsListOptions) client.EventsResult
}

var (
	_ dockerAPI       = (*client.Client)(nil)
	_ inventorySource = (*inventory)(nil)
)

// UnreachableError says the Docker engine could not be reached. Update returns
// it while it keeps serving the last known inventory.
type UnreachableError struct {
	Host  string    // the engine address, e.g. unix:///var/run/docker.sock
	Since time.Time // zero when the engine has never been reached
	Err   error
}

func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, errNotLoaded) {
		return fmt.Sprintf("docker engine at %s not reached yet: %v", e.Host, e.Err)
	}
	if e.Since.IsZero() {
		return fmt.Sprintf("docker engine at %s is unreachable: %v", e.Host, e.Err)
	}
	return fmt.Sprintf("docker engine at %s is unreachable since %s (serving the inventory known then): %v",
		e.Host, e.Since.UTC().Format(time.RFC3339), e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// errNotLoaded is the cause reported before the first inventory has loaded.
var errNotLoaded = errors.New("no inventory loaded yet, still connecting")

// watchedActions are the container events that change what the inventory
// holds. exec_* events (every bench command) are deliberately not watched.
var watchedActions = []events.Action{
	events.ActionStart, events.ActionDie, events.ActionOOM, events.ActionRestart,
	events.ActionHealthStatus, events.ActionDestroy, events.ActionRename, events.ActionUpdate,
}

const (
	minBackoff     = 500 * time.Millisecond
	maxBackoff     = 30 * time.Second
	inspectTimeout = 10 * time.Second
)

// inventory keeps the bench containers current: a full list and inspect on
// every (re)connect, then one re-inspect per event.
type inventory struct {
	logger *slog.Logger
	api    dockerAPI
	host   string
	label  string
	now    func() time.Time

	mu         sync.Mutex
	containers map[string]*containerInfo
	loaded     bool  // a full list has succeeded since start
	connErr    error // why the engine is unreachable; nil while connected
	errSince   time.Time
}

func newInventory(logger *slog.Logger, api dockerAPI, host, label string, now func() time.Time) *inventory {
	return &inventory{
		logger:     logger,
		api:        api,
		host:       host,
		label:      label,
		now:        now,
		containers: map[string]*containerInfo{},
		connErr:    errNotLoaded,
	}
}

// snapshot appends copies of the known containers to dst.
func (inv *inventory) snapshot(dst []containerInfo) ([]containerInfo, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, c := range inv.containers {
		dst = append(dst, *c)
	}
	if inv.connErr != nil {
		return dst, &UnreachableError{Host: inv.host, Since: inv.errSince, Err: inv.connErr}
	}
	return dst, nil
}

// run keeps a session with the engine open until ctx ends, reconnecting with
// exponential backoff.
func (inv *inventory) run(ctx context.Context) {
	backoff := minBackoff
	for {
		connected, err := inv.session(ctx)
		if ctx.Err() != nil {
			return
		}
		inv.setUnreachable(err, backoff)
		if connected {
			backoff = minBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// session subscribes to events, loads the full inventory, then applies events
// until the stream or an inspect fails. connected says the full load worked.
func (inv *inventory) session(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	filters := make(client.Filters).Add("type", string(events.ContainerEventType)).Add("label", inv.label)
	for _, a := range watchedActions {
		filters.Add("event", string(a))
	}
	// Subscribe before listing, so that nothing that happens during the list
	// is missed; an event for a container the list already saw just causes
	// one more inspect.
	stream := inv.api.Events(ctx, client.EventsListOptions{Filters: filters})

	if err := inv.resync(ctx); err != nil {
		return false, err
	}
	inv.setConnected()

	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-stream.Err:
			if err == nil {
				err = errors.New("stream closed")
			}
			return true, fmt.Errorf("read docker events: %w", err)
		case msg := <-stream.Messages:
			if err := inv.handle(ctx, msg); err != nil {
				return true, err
			}
		}
	}
}

// resync replaces the inventory with a fresh list and inspect of every
// labelled container, keeping the agent-side counters of known ones.
func (inv *inventory) resync(ctx context.Context) error {
	list, err := inv.api.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", inv.label),
	})
	if err != nil {
		return fmt.Errorf("list containers labelled %s: %w", inv.label, err)
	}
	fresh := make(map[string]*containerInfo, len(list.Items))
	for _, item := range list.Items {
		resp, err := inv.inspect(ctx, item.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed since the list
		}
		if err != nil {
			return fmt.Errorf("inspect container %s: %w", shortID(item.ID), err)
		}
		inv.mu.Lock()
		fresh[item.ID] = inv.merge(inv.containers[item.ID], resp)
		inv.mu.Unlock()
	}
	inv.mu.Lock()
	inv.containers = fresh
	inv.loaded = true
	inv.mu.Unlock()
	return nil
}

// handle applies one container event.
func (inv *inventory) handle(ctx context.Context, msg events.Message) error {
	id := msg.Actor.ID
	if msg.Action == events.ActionDestroy {
		inv.mu.Lock()
		delete(inv.containers, id)
		inv.mu.Unlock()
		return nil
	}
	resp, err := inv.inspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		inv.mu.Lock()
		delete(inv.containers, id)
		inv.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect container %s after %s event: %w", shortID(id), msg.Action, err)
	}

	inv.mu.Lock()
	defer inv.mu.Unlock()
	c := inv.merge(inv.containers[id], resp)
	switch msg.Action {
	case events.ActionOOM:
		c.OOMEvents++
	case events.ActionDie:
		// By the time of the inspect an automatic restart may already have
		// reset State.ExitCode to 0; the event carries the real one.
		if code, err := strconv.Atoi(msg.Actor.Attributes["exitCode"]); err == nil {
			c.ExitCode = code
		}
	}
	inv.containers[id] = c
	return nil
}

func (inv *inventory) inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	res, err := inv.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return res.Container, err
}

// merge builds the new record of a container from its inspect response and
// its previous record (nil when first seen). Callers hold inv.mu.
func (inv *inventory) merge(prev *containerInfo, resp container.InspectResponse) *containerInfo {
	c := &containerInfo{ID: resp.ID, Name: trimSlash(resp.Name)}
	if resp.Config != nil {
		c.Bench = resp.Config.Labels[inv.label]
	}
	if resp.HostConfig != nil {
		c.MemoryLimit = resp.HostConfig.Memory
	}
	c.dockerRestartCount = resp.RestartCount
	if st := resp.State; st != nil {
		c.State = st.Status
		if st.Running {
			c.Pid = st.Pid
		}
		c.StartedAt = parseDockerTime(st.StartedAt)
		c.FinishedAt = parseDockerTime(st.FinishedAt)
		if st.Health != nil && st.Health.Status != container.NoHealthcheck {
			c.Health = st.Health.Status
		}
		c.ExitCode = st.ExitCode
	}

	if prev == nil {
		c.Restarts = uint64(max(resp.RestartCount, 0))
		return c
	}
	c.OOMEvents = prev.OOMEvents
	c.Restarts = prev.Restarts
	if d := resp.RestartCount - prev.dockerRestartCount; d > 0 {
		c.Restarts += uint64(d)
	}
	if c.State == container.StateRunning {
		// Docker zeroes State.ExitCode on start; keep the last known exit.
		c.ExitCode = prev.ExitCode
	}
	return c
}

func (inv *inventory) setConnected() {
	inv.mu.Lock()
	was := inv.connErr
	inv.connErr, inv.errSince = nil, time.Time{}
	inv.mu.Unlock()
	if was != nil && !errors.Is(was, errNotLoaded) {
		inv.logger.Info("docker engine reachable again", "host", inv.host)
	}
}

func (inv *inventory) setUnreachable(err error, retryIn time.Duration) {
	inv.mu.Lock()
	was := inv.connErr
	inv.connErr = err
	if was == nil {
		inv.errSince = inv.now()
	}
	inv.mu.Unlock()
	if was == nil || errors.Is(was, errNotLoaded) {
		inv.logger.Warn("docker engine unreachable; retrying in the background", "host", inv.host, "err", err)
	} else {
		inv.logger.Debug("docker engine still unreachable", "host", inv.host, "err", err, "retry_in", retryIn)
	}
}

// parseDockerTime parses an inspect timestamp; Docker writes
// "0001-01-01T00:00:00Z" for never.
func parseDockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

func trimSlash(name string) string {
	if len(name) > 0 && name[0] == '/' {
		return name[1:]
	}
	return name
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
