package agentclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// DefaultPollInterval is PollerOptions.Interval when zero.
const DefaultPollInterval = 5 * time.Second

// DefaultPollConcurrency is PollerOptions.Concurrency when zero.
const DefaultPollConcurrency = 32

// DeadlineReason is why a job past its deadline fails.
const DeadlineReason = "deadline passed: the agent never finished it"

// ErrDeadlinePassed is DeadlineReason as an error, for a sink that wraps it.
var ErrDeadlinePassed = errors.New(DeadlineReason)

// OpenJob is a job delivered to an agent and not known to have ended.
type OpenJob struct {
	ID string
	// Deadline, when not zero, is when the job fails with DeadlineReason
	// unless the agent reported it ended.
	Deadline time.Time
}

// Source lists the open jobs by server.
type Source interface {
	OpenJobs(ctx context.Context) (map[string][]OpenJob, error)
}

// Updater takes jobs as a server's agent reports them (polled or called
// back). It must check that the jobs belong to that server, and take the
// same report twice, or an older one after a newer, without harm.
type Updater interface {
	Update(ctx context.Context, server string, jobs []agentapi.Job) error
}

// Sink is where the poller's findings go.
type Sink interface {
	Updater
	// Expire is given the open jobs past their deadline that the agent did
	// not report ended (or could not be asked): fail them with
	// DeadlineReason, unless the sink knows better.
	Expire(ctx context.Context, server string, jobs []Expired) error
}

// Expired is a job past its deadline.
type Expired struct {
	ID       string
	Deadline time.Time
	// Last is the job as the agent reported it in this poll (Pending or
	// Running), nil when the agent could not be asked or did not know it.
	Last *agentapi.Job
	// Reason is DeadlineReason.
	Reason string
}

// Clients gives the client of a server.
type Clients interface {
	Client(server string) (*Client, error)
}

// ClientsFunc adapts a function to Clients.
type ClientsFunc func(server string) (*Client, error)

// Client calls f.
func (f ClientsFunc) Client(server string) (*Client, error) { return f(server) }

// PollerOptions configure a Poller; Source, Sink and Clients are required.
type PollerOptions struct {
	Source  Source
	Sink    Sink
	Clients Clients
	// Interval between the starts of two polls (DefaultPollInterval).
	Interval time.Duration
	// Concurrency bounds the servers polled at once (DefaultPollConcurrency).
	Concurrency int
	// Clock decides what is past its deadline (the system clock when nil).
	Clock  Clock
	Logger *slog.Logger
}

// Poller polls every server with open jobs, one batched request per server
// (per 100 jobs), and gives what it learns to the Sink.
type Poller struct {
	opts PollerOptions
}

// NewPoller checks opts and returns a poller.
func NewPoller(opts PollerOptions) (*Poller, error) {
	var problems []error
	if opts.Source == nil {
		problems = append(problems, errors.New("source: missing"))
	}
	if opts.Sink == nil {
		problems = append(problems, errors.New("sink: missing"))
	}
	if opts.Clients == nil {
		problems = append(problems, errors.New("clients: missing"))
	}
	if opts.Interval < 0 || opts.Concurrency < 0 {
		problems = append(problems, errors.New("interval and concurrency: not negative"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("poller: %w", errors.Join(problems...))
	}
	opts.Interval = orDefault(opts.Interval, DefaultPollInterval)
	opts.Concurrency = orDefault(opts.Concurrency, DefaultPollConcurrency)
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Poller{opts: opts}, nil
}

// Run polls once per interval until ctx ends (a poll longer than the
// interval delays the next; polls never overlap). Errors are logged.
func (p *Poller) Run(ctx context.Context) {
	ticker := time.NewTicker(p.opts.Interval)
	defer ticker.Stop()
	for {
		if err := p.PollOnce(ctx); err != nil && ctx.Err() == nil {
			p.opts.Logger.Warn("poll agents", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// PollOnce polls every server with open jobs once, Concurrency at a time,
// and returns the servers' errors joined (each naming its server).
func (p *Poller) PollOnce(ctx context.Context) error {
	open, err := p.opts.Source.OpenJobs(ctx)
	if err != nil {
		return fmt.Errorf("list open jobs: %w", err)
	}
	servers := make([]string, 0, len(open))
	for s, jobs := range open {
		if len(jobs) > 0 {
			servers = append(servers, s)
		}
	}
	sort.Strings(servers)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, p.opts.Concurrency)
	)
	for _, server := range servers {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := p.pollServer(ctx, server, open[server]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *Poller) pollServer(ctx context.Context, server string, open []OpenJob) error {
	ids := make([]string, len(open))
	for i, j := range open {
		ids[i] = j.ID
	}
	var (
		jobs    []agentapi.Job
		pollErr error
	)
	client, err := p.opts.Clients.Client(server)
	if err != nil {
		pollErr = fmt.Errorf("server %s: client: %w", server, err)
	} else {
		jobs, pollErr = client.Poll(ctx, ids)
	}
	var errs []error
	if pollErr != nil {
		errs = append(errs, pollErr)
	}
	if len(jobs) > 0 {
		if err := p.opts.Sink.Update(ctx, server, jobs); err != nil {
			errs = append(errs, fmt.Errorf("server %s: update %d jobs: %w", server, len(jobs), err))
		}
	}
	if ctx.Err() != nil {
		return errors.Join(errs...)
	}
	reported := make(map[string]*agentapi.Job, len(jobs))
	for i := range jobs {
		reported[jobs[i].ID] = &jobs[i]
	}
	now := p.opts.Clock.Now()
	var expired []Expired
	for _, j := range open {
		if j.Deadline.IsZero() || now.Before(j.Deadline) {
			continue
		}
		last := reported[j.ID]
		if last != nil && last.Status.Ended() {
			continue // the agent finished it after all: Update has it
		}
		expired = append(expired, Expired{ID: j.ID, Deadline: j.Deadline, Last: last, Reason: DeadlineReason})
	}
	if len(expired) > 0 {
		p.opts.Logger.Warn("jobs past their deadline", "server", server, "jobs", len(expired))
		if err := p.opts.Sink.Expire(ctx, server, expired); err != nil {
			errs = append(errs, fmt.Errorf("server %s: expire %d jobs: %w", server, len(expired), err))
		}
	}
	return errors.Join(errs...)
}
