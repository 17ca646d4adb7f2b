package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// fakeDocker serves inspect data from a map and an event stream the test
// feeds. Each Events call opens a new stream.
type fakeDocker struct {
	mu       sync.Mutex
	byID     map[string]container.InspectResponse
	listErr  error
	streams  chan fakeStream
	listings int
}

type fakeStream struct {
	msgs chan events.Message
	errs chan error
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{byID: map[string]container.InspectResponse{}, streams: make(chan fakeStream, 10)}
}

func (f *fakeDocker) set(id, name string, st container.State, restarts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[id] = container.InspectResponse{
		ID: id, Name: "/" + name, RestartCount: restarts, State: &st,
		Config:     &container.Config{Labels: map[string]string{DefaultLabel: name}},
		HostConfig: &container.HostConfig{Resources: container.Resources{Memory: 1 << 20}},
	}
}

func (f *fakeDocker) ContainerList(_ context.Context, _ client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listings++
	if f.listErr != nil {
		return client.ContainerListResult{}, f.listErr
	}
	var res client.ContainerListResult
	for id := range f.byID {
		res.Items = append(res.Items, container.Summary{ID: id})
	}
	return res, nil
}

func (f *fakeDocker) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[id]
	if !ok {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound
	}
	return client.ContainerInspectResult{Container: c}, nil
}

func (f *fakeDocker) Events(_ context.Context, _ client.EventsListOptions) client.EventsResult {
	s := fakeStream{msgs: make(chan events.Message), errs: make(chan error, 1)}
	select {
	case f.streams <- s:
	default: // nobody watches this many reconnects
	}
	return client.EventsResult{Messages: s.msgs, Err: s.errs}
}

func running(pid int) container.State {
	return container.State{Status: container.StateRunning, Running: true, Pid: pid, StartedAt: "2026-01-02T01:00:00Z"}
}

func event(action events.Action, id string, attrs map[string]string) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}}
}

func newTestInventory(api dockerAPI) *inventory {
	return newInventory(slog.New(slog.DiscardHandler), api, "unix:///fake.sock", DefaultLabel, func() time.Time { return fixedNow })
}

func only(t *testing.T, inv *inventory) containerInfo {
	t.Helper()
	items, _ := inv.snapshot(nil)
	if len(items) != 1 {
		t.Fatalf("inventory holds %d containers, want 1", len(items))
	}
	return items[0]
}

func TestInventory_Events_KeepCountersMonotonicAndExitCode(t *testing.T) {
	ctx := context.Background()
	api := newFakeDocker()
	inv := newTestInventory(api)
	api.set(idA, "bench-a", running(10), 2)
	if err := inv.resync(ctx); err != nil {
		t.Fatal(err)
	}
	if c := only(t, inv); c.Restarts != 2 || c.Name != "bench-a" || c.Bench != "bench-a" || c.MemoryLimit != 1<<20 {
		t.Fatalf("after list: %+v", c)
	}

	steps := []struct {
		desc         string
		restartCount int
		msg          events.Message
		wantRestarts uint64
		wantOOM      uint64
		wantExit     int
	}{
		{"oom event counted", 2, event(events.ActionOOM, idA, nil), 2, 1, 0},
		{"die then automatic restart: exit code from the event", 3, event(events.ActionDie, idA, map[string]string{"exitCode": "137"}), 3, 1, 137},
		{"start keeps the last exit code", 3, event(events.ActionStart, idA, nil), 3, 1, 137},
		{"manual start resets Docker's count: ours stays", 0, event(events.ActionStart, idA, nil), 3, 1, 137},
		{"next automatic restart adds one", 1, event(events.ActionStart, idA, nil), 4, 1, 137},
	}
	for _, s := range steps {
		api.set(idA, "bench-a", running(11), s.restartCount)
		if err := inv.handle(ctx, s.msg); err != nil {
			t.Fatalf("%s: handle: %v", s.desc, err)
		}
		c := only(t, inv)
		if c.Restarts != s.wantRestarts || c.OOMEvents != s.wantOOM || c.ExitCode != s.wantExit {
			t.Errorf("%s: restarts=%d oom=%d exit=%d, want %d %d %d",
				s.desc, c.Restarts, c.OOMEvents, c.ExitCode, s.wantRestarts, s.wantOOM, s.wantExit)
		}
	}

	if err := inv.resync(ctx); err != nil {
		t.Fatal(err)
	}
	if c := only(t, inv); c.Restarts != 4 || c.OOMEvents != 1 {
		t.Errorf("resync lost the agent-side counters: %+v", c)
	}

	if err := inv.handle(ctx, event(events.ActionDestroy, idA, nil)); err != nil {
		t.Fatal(err)
	}
	if items, _ := inv.snapshot(nil); len(items) != 0 {
		t.Errorf("destroyed container still in the inventory: %+v", items)
	}
}

func TestInventory_EventForRemovedContainer_DropsIt(t *testing.T) {
	ctx := context.Background()
	api := newFakeDocker()
	inv := newTestInventory(api)
	api.set(idA, "bench-a", running(10), 0)
	if err := inv.resync(ctx); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	delete(api.byID, idA)
	api.mu.Unlock()
	if err := inv.handle(ctx, event(events.ActionDie, idA, nil)); err != nil {
		t.Fatalf("handle: %v", err)
	}
	if items, _ := inv.snapshot(nil); len(items) != 0 {
		t.Errorf("container not found on inspect still in the inventory: %+v", items)
	}
}

func TestInventory_StreamBreaks_ReportsUnreachableThenRecovers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	api := newFakeDocker()
	inv := newTestInventory(api)
	api.set(idA, "bench-a", running(10), 0)
	done := make(chan struct{})
	go func() { defer close(done); inv.run(ctx) }()
	defer func() { cancel(); <-done }()

	first := <-api.streams
	waitFor(t, "first load", func() bool { _, err := inv.snapshot(nil); return err == nil })

	// The engine goes away: the stream breaks and listing fails.
	api.mu.Lock()
	api.listErr = errors.New("connection refused")
	api.mu.Unlock()
	first.errs <- io.ErrUnexpectedEOF
	waitFor(t, "unreachable", func() bool {
		items, err := inv.snapshot(nil)
		var u *UnreachableError
		return errors.As(err, &u) && len(items) == 1 && !u.Since.IsZero()
	})

	// It comes back with a new container: the relist picks it up.
	api.set(idB, "bench-b", running(20), 0)
	api.mu.Lock()
	api.listErr = nil
	api.mu.Unlock()
	waitFor(t, "recovered", func() bool {
		items, err := inv.snapshot(nil)
		return err == nil && len(items) == 2
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
