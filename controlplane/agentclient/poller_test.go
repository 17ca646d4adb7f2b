package agentclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

type staticSource map[string][]OpenJob

func (s staticSource) OpenJobs(context.Context) (map[string][]OpenJob, error) { return s, nil }

// recordingSink keeps what it is given.
type recordingSink struct {
	mu      sync.Mutex
	updates map[string][]agentapi.Job
	expired map[string][]Expired
	calls   int
}

func newRecordingSink() *recordingSink {
	return &recordingSink{updates: map[string][]agentapi.Job{}, expired: map[string][]Expired{}}
}

func (s *recordingSink) Update(_ context.Context, server string, jobs []agentapi.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.updates[server] = append(s.updates[server], jobs...)
	return nil
}

func (s *recordingSink) Expire(_ context.Context, server string, jobs []Expired) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired[server] = append(s.expired[server], jobs...)
	return nil
}

func (s *recordingSink) jobs(server string) []agentapi.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agentapi.Job(nil), s.updates[server]...)
}

func clientMap(m map[string]*Client) Clients {
	return ClientsFunc(func(server string) (*Client, error) {
		if c, ok := m[server]; ok {
			return c, nil
		}
		return nil, fmt.Errorf("no client for %q", server)
	})
}

func TestPoller_TwoServers_OneRequestEach_FeedsTheSink(t *testing.T) {
	source := staticSource{}
	clients := map[string]*Client{}
	injectors := map[string]*injector{}
	for _, server := range []string{"srv-a", "srv-b"} {
		a := newAgent(t, agentOptions{})
		srv, inj := a.serve(t)
		injectors[server] = inj
		clients[server] = newClient(t, srv.URL, func(o *Options) { o.Server = server })
		for i := range 30 {
			d := siteNew(server+"-job-"+itoa(i), "b1", "s"+itoa(i)+".example.com")
			_, _, err := a.queue.Submit(t.Context(), submission(t, d))
			require.NoError(t, err)
			source[server] = append(source[server], OpenJob{ID: d.JobID})
		}
	}
	sink := newRecordingSink()
	p, err := NewPoller(PollerOptions{Source: source, Sink: sink, Clients: clientMap(clients)})
	require.NoError(t, err)
	require.NoError(t, p.PollOnce(t.Context()))
	for server, inj := range injectors {
		assert.Len(t, inj.seen(), 1, "%s: one request per server", server)
		got := sink.jobs(server)
		require.Len(t, got, 30, server)
		for _, job := range got {
			assert.Contains(t, job.ID, server+"-job-")
			assert.Equal(t, agentapi.TypeSiteNew, job.Type)
		}
	}
}

func TestPoller_DeadlinePassed_ReportedToTheSinkAsExpired(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, _ := a.serve(t)
	clock := newFakeClock()
	c := newClient(t, srv.URL, nil)
	// A job that never finishes (bench.restart holds its step), and one that did.
	_, err := c.Deliver(t.Context(), Delivery{JobID: "cp-stuck", Path: "/benches/b1/restart"})
	require.NoError(t, err)
	_, err = c.Deliver(t.Context(), siteNew("cp-done", "b1", "new.example.com"))
	require.NoError(t, err)
	waitEnded(t, a.queue, "cp-done")
	require.Eventually(t, func() bool {
		list, err := a.queue.Get(t.Context(), "cp-stuck")
		return err == nil && list[0].Status == agentapi.Running
	}, 10*time.Second, 5*time.Millisecond)

	// A server whose agent cannot be reached, with a job past its deadline.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	unreachable := newClient(t, gone, func(o *Options) { o.Server = "srv-gone" })

	deadline := clock.Now().Add(time.Hour)
	source := staticSource{
		"srv1":     {{ID: "cp-stuck", Deadline: deadline}, {ID: "cp-done", Deadline: deadline}},
		"srv-gone": {{ID: "cp-lost", Deadline: deadline}, {ID: "cp-later", Deadline: deadline.Add(time.Hour)}},
	}
	sink := newRecordingSink()
	p, err := NewPoller(PollerOptions{Source: source, Sink: sink, Clock: clock,
		Clients: clientMap(map[string]*Client{"srv1": c, "srv-gone": unreachable})})
	require.NoError(t, err)

	// Before the deadline: updates only.
	err = p.PollOnce(t.Context())
	require.Error(t, err, "srv-gone cannot be reached")
	assert.Contains(t, err.Error(), "srv-gone")
	requireNoSecret(t, "error", err.Error())
	assert.Empty(t, sink.expired)
	require.Len(t, sink.jobs("srv1"), 2)

	clock.Advance(time.Hour + time.Second)
	_ = p.PollOnce(t.Context())
	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.Len(t, sink.expired["srv1"], 1, "the job the agent finished is not expired")
	stuck := sink.expired["srv1"][0]
	assert.Equal(t, "cp-stuck", stuck.ID)
	assert.Equal(t, DeadlineReason, stuck.Reason)
	assert.Equal(t, "deadline passed: the agent never finished it", stuck.Reason)
	assert.True(t, deadline.Equal(stuck.Deadline))
	require.NotNil(t, stuck.Last)
	assert.Equal(t, agentapi.Running, stuck.Last.Status)

	require.Len(t, sink.expired["srv-gone"], 1, "only the job past its deadline")
	lost := sink.expired["srv-gone"][0]
	assert.Equal(t, "cp-lost", lost.ID)
	assert.Nil(t, lost.Last, "the agent could not be asked")
	assert.Equal(t, DeadlineReason, lost.Reason)
	assert.Equal(t, DeadlineReason, ErrDeadlinePassed.Error())
}

// failingSink fails every update.
type failingSink struct{ recordingSink }

func (*failingSink) Update(context.Context, string, []agentapi.Job) error {
	return errors.New("store down")
}

func TestPoller_SinkFails_ErrorNamesTheServer(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, _ := a.serve(t)
	c := newClient(t, srv.URL, nil)
	_, err := c.Deliver(t.Context(), siteNew("cp-job-1", "b1", "new.example.com"))
	require.NoError(t, err)
	p, err := NewPoller(PollerOptions{Source: staticSource{"srv1": {{ID: "cp-job-1"}}}, Sink: &failingSink{},
		Clients: clientMap(map[string]*Client{"srv1": c})})
	require.NoError(t, err)
	err = p.PollOnce(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "server srv1: update 1 jobs: store down")
}

func TestPoller_Run_PollsEveryInterval(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, inj := a.serve(t)
	c := newClient(t, srv.URL, nil)
	_, err := c.Deliver(t.Context(), siteNew("cp-job-1", "b1", "new.example.com"))
	require.NoError(t, err)
	sink := newRecordingSink()
	p, err := NewPoller(PollerOptions{Source: staticSource{"srv1": {{ID: "cp-job-1"}}}, Sink: sink,
		Clients: clientMap(map[string]*Client{"srv1": c}), Interval: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	require.Eventually(t, func() bool { return len(sink.jobs("srv1")) >= 3 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	<-done
	assert.GreaterOrEqual(t, inj.count(), 4, "a delivery and three polls")
}

func TestNewPoller_MissingParts_Refused(t *testing.T) {
	_, err := NewPoller(PollerOptions{})
	require.Error(t, err)
	for _, want := range []string{"source", "sink", "clients"} {
		assert.Contains(t, err.Error(), want)
	}
}
