package agentclient

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/api"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// memQueue is an agent job queue in memory, so that hundreds of simulated
// agents fit in one process: the API in front of it is the agent's own
// (agent/api), so they speak the agent API as a real one does.
type memQueue struct {
	mu   sync.Mutex
	jobs map[string]agentapi.Job
}

var _ api.Queue = (*memQueue)(nil)

func (q *memQueue) Submit(_ context.Context, s jobs.Submission) (agentapi.Job, bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if j, ok := q.jobs[s.ID]; ok {
		return j, false, nil
	}
	j := agentapi.Job{ID: s.ID, Type: s.Type, Status: agentapi.Pending, Request: s.Request, CreatedAt: time.Now()}
	q.jobs[s.ID] = j
	return j, true, nil
}

func (q *memQueue) Get(_ context.Context, ids ...string) ([]agentapi.Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]agentapi.Job, 0, len(ids))
	for _, id := range ids {
		j, ok := q.jobs[id]
		if !ok {
			return nil, fmt.Errorf("job %q: %w", id, jobs.ErrNotFound)
		}
		out = append(out, j)
	}
	return out, nil
}

func (q *memQueue) List(context.Context, agentapi.Status, int) ([]agentapi.Job, error) {
	return nil, nil
}

func (q *memQueue) ListPage(context.Context, jobs.ListQuery) ([]agentapi.Job, int64, error) {
	return nil, 0, nil
}

func (q *memQueue) Cancel(context.Context, string) error { return nil }

// countingSink counts the jobs it is given.
type countingSink struct {
	mu   sync.Mutex
	jobs int
}

func (s *countingSink) Update(_ context.Context, _ string, jobs []agentapi.Job) error {
	s.mu.Lock()
	s.jobs += len(jobs)
	s.mu.Unlock()
	return nil
}

func (s *countingSink) Expire(context.Context, string, []Expired) error { return nil }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkPoller_OneCycle is issue 9's performance target: N simulated
// agents (HYBRID_BENCH_AGENTS, 500) with M open jobs each
// (HYBRID_BENCH_JOBS_PER_AGENT, 120: 60,000 in all), one full poll cycle
// (under 5 s on a 2-core machine). Run it with
// `go test -run '^$' -bench Poller_OneCycle ./controlplane/agentclient/`.
func BenchmarkPoller_OneCycle(b *testing.B) {
	agents := envInt("HYBRID_BENCH_AGENTS", 500)
	perAgent := envInt("HYBRID_BENCH_JOBS_PER_AGENT", 120)
	now := time.Now()
	source := staticSource{}
	clients := map[string]*Client{}
	for a := range agents {
		server := fmt.Sprintf("srv-%03d", a)
		q := &memQueue{jobs: map[string]agentapi.Job{}}
		for j := range perAgent {
			id := fmt.Sprintf("%s-job-%03d", server, j)
			started := now
			q.jobs[id] = agentapi.Job{ID: id, Type: agentapi.TypeSiteBackup, Status: agentapi.Running, CreatedAt: now, StartedAt: &started,
				Request: []byte(fmt.Sprintf(`{"bench":"b1","site":"s%d.example.com","with_files":true}`, j)),
				Steps: []agentapi.Step{
					{Name: "backup", Status: agentapi.Success, StartedAt: &started, EndedAt: &started, Output: "Backup for site written to /home/frappe/benches/b1/sites/x/private/backups"},
					{Name: "seal", Status: agentapi.Running, StartedAt: &started},
					{Name: "offsite", Status: agentapi.Pending},
				}}
			source[server] = append(source[server], OpenJob{ID: id, Deadline: now.Add(time.Hour)})
		}
		srv := httptest.NewServer(api.New(q, &inventory{}, api.HashToken(testToken), slog.New(slog.DiscardHandler)).Handler())
		b.Cleanup(srv.Close)
		c, err := New(Options{Server: server, BaseURL: srv.URL, Token: testToken})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		clients[server] = c
	}
	sink := &countingSink{}
	p, err := NewPoller(PollerOptions{Source: source, Sink: sink, Clients: clientMap(clients)})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cycles := 0
	start := time.Now()
	for b.Loop() {
		if err := p.PollOnce(b.Context()); err != nil {
			b.Fatal(err)
		}
		cycles++
	}
	b.StopTimer()
	perCycle := time.Since(start) / time.Duration(cycles)
	if want := cycles * agents * perAgent; sink.jobs != want {
		b.Fatalf("sink got %d jobs, want %d", sink.jobs, want)
	}
	b.ReportMetric(perCycle.Seconds(), "s/cycle")
	fmt.Printf("poll cycle: %d agents, %d open jobs: %s per cycle (%d cycles)\n", agents, agents*perAgent, perCycle.Round(time.Millisecond), cycles)
}
