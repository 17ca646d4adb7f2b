package benches

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"
)

// SupervisorOptions configure a Supervisor.
type SupervisorOptions struct {
	Logger *slog.Logger
	// MinBackoff is the wait before the agent starts a stopped bench
	// (default 2 s). It doubles after each start that does not hold, up to
	// MaxBackoff (default 5 min).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// ResetAfter: a bench that ran this long before it stopped is started
	// again after MinBackoff, whatever happened before (default 10 min).
	ResetAfter time.Duration
	// StartGrace: a start whose container stops again within this time did
	// not hold, and counts as a failure (default 10 s).
	StartGrace time.Duration
	// ResyncInterval is how often every bench container is looked at anyway,
	// for a stop whose event was missed (default 1 min).
	ResyncInterval time.Duration
}

// Defaults of SupervisorOptions.
const (
	DefaultMinBackoff     = 2 * time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultResetAfter     = 10 * time.Minute
	DefaultStartGrace     = 10 * time.Second
	DefaultResyncInterval = time.Minute
)

// Reconnecting to the engine's event stream.
const (
	minReconnect = 500 * time.Millisecond
	maxReconnect = 30 * time.Second
	callTimeout  = 30 * time.Second
)

// Supervisor starts again a bench container that stopped without the agent.
//
// Docker takes `docker kill` and `docker stop` as a manual stop: the restart
// policy does not bring such a container back, and every site of the bench
// answers 502 until someone acts. The supervisor watches the engine's events
// for the agent's bench containers and starts one that is no longer running,
// unless the agent stopped it on purpose (Runtime.intended), Docker's restart
// policy is bringing it back already, or it was never started (a job is
// creating it). It does the same for every bench found stopped when it
// starts and every ResyncInterval. Only benches in the agent's records
// (Runtime.Exists) are touched, and only through their labelled container.
//
// It is an exporters.Collector of its starts and their failures.
type Supervisor struct {
	rt     *Runtime
	opts   SupervisorOptions
	logger *slog.Logger

	startsDesc   *prometheus.Desc
	failuresDesc *prometheus.Desc

	mu       sync.Mutex
	starts   map[string]uint64
	failures map[string]uint64

	cancel context.CancelFunc
	done   chan struct{}
}

// NewSupervisor returns a supervisor of rt's benches; Start runs it.
func NewSupervisor(rt *Runtime, opts SupervisorOptions) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.ResetAfter <= 0 {
		opts.ResetAfter = DefaultResetAfter
	}
	if opts.StartGrace <= 0 {
		opts.StartGrace = DefaultStartGrace
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	return &Supervisor{
		rt:     rt,
		opts:   opts,
		logger: opts.Logger,
		startsDesc: prometheus.NewDesc("hybrid_bench_container_agent_starts_total",
			"Starts of the bench's container by the agent after it stopped without the agent "+
				"(docker kill or stop, or found stopped), failed ones included.", []string{"bench"}, nil),
		failuresDesc: prometheus.NewDesc("hybrid_bench_container_agent_start_failures_total",
			"Starts by the agent that failed: refused by Docker, or the container stopped again right after.",
			[]string{"bench"}, nil),
		starts:   map[string]uint64{},
		failures: map[string]uint64{},
	}
}

// Start runs the supervisor until ctx ends or Close.
func (s *Supervisor) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.run(ctx)
	}()
}

// Close stops the supervisor and waits for it; a start under way finishes.
func (s *Supervisor) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return nil
}

// Update exports the counters: every bench in the agent's records, at 0
// until the agent first starts it.
func (s *Supervisor) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	list, err := s.rt.List()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range list {
		ch <- prometheus.MustNewConstMetric(s.startsDesc, prometheus.CounterValue, float64(s.starts[c.Name]), c.Name)
		ch <- prometheus.MustNewConstMetric(s.failuresDesc, prometheus.CounterValue, float64(s.failures[c.Name]), c.Name)
	}
	return nil
}

func (s *Supervisor) count(m map[string]uint64, bench string) {
	s.mu.Lock()
	m[bench]++
	s.mu.Unlock()
}

// watch is what the supervisor keeps of one bench. Only the run goroutine
// touches it.
type watch struct {
	next      time.Duration // the wait before the next start
	timer     *time.Timer   // a start is due; nil when none is
	startedAt time.Time     // the agent's last start, until judged
	waited    time.Duration // the backoff of the start due
	cause     cause         // why it is down, for the log
}

// cause is why a bench is down, as logged when it is started again.
type cause struct {
	how      string // the event (die, stop, kill, oom) or "found stopped"
	exitCode int
	oom      bool
}

// loop is the state of one run.
type loop struct {
	*Supervisor
	benches map[string]*watch
	due     chan string
	stop    <-chan struct{} // the run's context ended
}

func (s *Supervisor) run(ctx context.Context) {
	l := &loop{Supervisor: s, benches: map[string]*watch{}, due: make(chan string), stop: ctx.Done()}
	defer func() {
		for _, w := range l.benches {
			if w.timer != nil {
				w.timer.Stop()
			}
		}
	}()
	wait := minReconnect
	warned := false // said once until the engine is reached again
	for {
		connected, err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			wait, warned = minReconnect, false
		}
		if !warned {
			s.logger.Warn("bench supervisor: docker engine unreachable; retrying in the background", "err", err)
			warned = true
		} else {
			s.logger.Debug("bench supervisor: docker engine still unreachable", "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case bench := <-l.due: // a start due meanwhile is tried, and fails or not
			t.Stop()
			l.startDue(ctx, bench)
		}
		wait = min(wait*2, maxReconnect)
	}
}

// session subscribes to the bench containers' stop events, looks at every
// bench container once, then handles events and due starts until the stream
// fails. connected says the first look worked.
func (l *loop) session(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	filters := make(client.Filters).Add("type", string(events.ContainerEventType)).Add("label", l.rt.opts.Label).
		Add("event", string(events.ActionDie), string(events.ActionStop), string(events.ActionKill), string(events.ActionOOM))
	// Subscribed before the look, so no stop in between is missed.
	stream := l.rt.cli.Events(ctx, client.EventsListOptions{Filters: filters})
	if err := l.resync(ctx); err != nil {
		return false, err
	}
	tick := time.NewTicker(l.opts.ResyncInterval)
	defer tick.Stop()
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
			l.event(ctx, msg)
		case bench := <-l.due:
			l.startDue(ctx, bench)
		case <-tick.C:
			if err := l.resync(ctx); err != nil {
				return true, err
			}
		}
	}
}

// resync looks at every bench container: one found stopped is started.
func (l *loop) resync(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	list, err := l.rt.cli.ContainerList(cctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", l.rt.opts.Label).Add("status", string(container.StateExited)),
	})
	if err != nil {
		return fmt.Errorf("list containers labelled %s: %w", l.rt.opts.Label, err)
	}
	for _, item := range list.Items {
		bench := item.Labels[l.rt.opts.Label]
		if w := l.benches[bench]; w != nil && w.timer != nil {
			continue // a start is due already
		}
		ctr, ok := l.stopped(ctx, bench)
		if !ok {
			continue
		}
		l.schedule(bench, cause{how: "found stopped", exitCode: ctr.State.ExitCode, oom: ctr.State.OOMKilled})
	}
	return nil
}

// event handles a stop, kill, die or OOM event of a bench container.
func (l *loop) event(ctx context.Context, msg events.Message) {
	bench := msg.Actor.Attributes[l.rt.opts.Label]
	if bench == "" {
		return
	}
	w := l.benches[bench]
	if w != nil && !w.startedAt.IsZero() {
		// The agent's last start is judged at the first death after it,
		// whoever then brings the bench back. A kill (docker kill or stop,
		// or a removal) comes before its death: the start had held.
		switch msg.Action {
		case events.ActionKill:
			w.startedAt = time.Time{}
		case events.ActionDie:
			if time.Since(w.startedAt) < l.opts.StartGrace {
				l.count(l.failures, bench)
			}
			w.startedAt = time.Time{}
		}
	}
	ctr, ok := l.stopped(ctx, bench)
	if !ok || (w != nil && w.timer != nil) {
		return
	}
	if w != nil {
		started, finished := parseDockerTime(ctr.State.StartedAt), parseDockerTime(ctr.State.FinishedAt)
		if !started.IsZero() && finished.Sub(started) >= l.opts.ResetAfter {
			w.next = l.opts.MinBackoff // it had held: start over
		}
	}
	// The container is stopped: its state holds the last exit.
	l.schedule(bench, cause{how: string(msg.Action), exitCode: ctr.State.ExitCode, oom: ctr.State.OOMKilled})
}

// stopped inspects the bench's container and says whether it is the
// supervisor's to start: in the agent's records, not changed on purpose by
// the agent, stopped after it ran, and not being restarted by Docker.
func (l *loop) stopped(ctx context.Context, bench string) (container.InspectResponse, bool) {
	if !l.rt.Exists(bench) || l.rt.intended(bench) {
		return container.InspectResponse{}, false
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ctr, err := l.rt.owned(cctx, bench)
	if err != nil {
		if !cerrdefs.IsNotFound(err) && ctx.Err() == nil {
			l.logger.Warn("bench supervisor: cannot look at the bench's container", "bench", bench, "err", err)
		}
		return ctr, false
	}
	st := ctr.State
	// "created": never started, a job is making it; "restarting": Docker's
	// policy has it; "removing", "dead", "paused": not a plain stop.
	if st == nil || st.Running || st.Restarting || st.Status != container.StateExited {
		return ctr, false
	}
	return ctr, true
}

// schedule starts bench after its backoff, unless a start is due already.
func (l *loop) schedule(bench string, why cause) {
	w := l.benches[bench]
	if w == nil {
		w = &watch{next: l.opts.MinBackoff}
		l.benches[bench] = w
	}
	if w.timer != nil {
		return
	}
	wait := w.next
	w.next = min(w.next*2, l.opts.MaxBackoff)
	w.waited, w.cause = wait, why
	due, stop := l.due, l.stop
	w.timer = time.AfterFunc(wait, func() {
		select {
		case due <- bench:
		case <-stop: // the run ended: nobody receives
		}
	})
}

// startDue starts bench if it is still the supervisor's to start.
func (l *loop) startDue(ctx context.Context, bench string) {
	w := l.benches[bench]
	if w == nil {
		return
	}
	w.timer = nil
	ctr, ok := l.stopped(ctx, bench)
	if !ok {
		return
	}
	l.count(l.starts, bench)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := l.rt.cli.ContainerStart(cctx, ctr.ID, client.ContainerStartOptions{})
	if err != nil {
		l.count(l.failures, bench)
		l.logger.Error("starting again a bench container that stopped without the agent failed", "bench", bench,
			"container", ContainerName(bench), "stopped_by", w.cause.how, "exit_code", w.cause.exitCode,
			"oom_killed", w.cause.oom, "backoff", w.waited, "err", err)
		l.schedule(bench, w.cause) // the bench is down for the same reason
		return
	}
	w.startedAt = time.Now()
	l.logger.Warn("started again a bench container that stopped without the agent", "bench", bench,
		"container", ContainerName(bench), "stopped_by", w.cause.how, "exit_code", w.cause.exitCode,
		"oom_killed", w.cause.oom, "backoff", w.waited)
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
