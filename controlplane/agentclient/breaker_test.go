package agentclient

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBreaker_OpensAfterNFailures_FailsFastWithoutNetwork_ClosesOnPingAfterCoolDown(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, inj := a.serve(t)
	inj.set(func(i *injector) { i.down = true })
	clock := newFakeClock()
	logs := &logBuffer{}
	c := newClient(t, srv.URL, func(o *Options) {
		o.Retry.MaxAttempts = 1
		o.Breaker = BreakerOptions{FailureThreshold: 3, CoolDown: 30 * time.Second}
		o.Clock = clock
		o.Logger = logs.logger()
	})
	metrics := NewCircuitCollector(func() []*Client { return []*Client{c} })
	requireState := func(want State, value string) {
		t.Helper()
		assert.Equal(t, want, c.State())
		require.NoError(t, testutil.CollectAndCompare(metrics, strings.NewReader(`
# HELP hybrid_controlplane_agent_circuit_state State of the circuit breaker in front of a server's agent: 0 closed, 1 half-open, 2 open.
# TYPE hybrid_controlplane_agent_circuit_state gauge
hybrid_controlplane_agent_circuit_state{server="srv1"} `+value+`
`)))
	}

	for i := range 3 {
		requireState(Closed, "0")
		_, err := c.Deliver(t.Context(), siteNew("cp-job-"+itoa(i), "b1", "new.example.com"))
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrCircuitOpen)
	}
	requireState(Open, "2")
	assert.Equal(t, 3, inj.count())

	// Open: fail fast, no request, through every call.
	_, err := c.Deliver(t.Context(), siteNew("cp-job-x", "b1", "new.example.com"))
	require.ErrorIs(t, err, ErrCircuitOpen)
	requireNoSecret(t, "error", err.Error())
	require.ErrorIs(t, c.Ping(t.Context()), ErrCircuitOpen)
	_, err = c.Poll(t.Context(), []string{"cp-job-0"})
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.Equal(t, 3, inj.count(), "no request while open")

	// Not yet: the cool-down is 30 s (and up to 20% more).
	clock.Advance(29 * time.Second)
	_, err = c.Deliver(t.Context(), siteNew("cp-job-x", "b1", "new.example.com"))
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.Equal(t, 3, inj.count())

	// After the cool-down: half-open; the ping fails, so open again.
	clock.Advance(7*time.Second + time.Millisecond)
	requireState(HalfOpen, "1")
	_, err = c.Deliver(t.Context(), siteNew("cp-job-x", "b1", "new.example.com"))
	require.ErrorIs(t, err, ErrCircuitOpen)
	assert.Equal(t, []string{"GET /ping"}, inj.seen()[3:], "half-open: a ping, not the delivery")
	requireState(Open, "2")

	// The agent is back; after another cool-down the ping closes the circuit
	// and the delivery goes out.
	inj.set(func(i *injector) { i.down = false })
	clock.Advance(37 * time.Second)
	requireState(HalfOpen, "1")
	id, err := c.Deliver(t.Context(), siteNew("cp-job-x", "b1", "new.example.com"))
	require.NoError(t, err)
	assert.Equal(t, "cp-job-x", id)
	assert.Equal(t, []string{"GET /ping", "POST /benches/b1/sites"}, inj.seen()[4:])
	requireState(Closed, "0")
	assert.Equal(t, 1, a.jobCount(t))
	assert.Contains(t, logs.String(), "agent circuit open")
	assert.Contains(t, logs.String(), "agent circuit closed")
	requireNoSecret(t, "logs", logs.String())
}

func TestBreaker_PingWhileHalfOpen_IsTheProbe_OneRequest(t *testing.T) {
	srv, inj := newAgent(t, agentOptions{}).serve(t)
	inj.set(func(i *injector) { i.fail = 1 })
	clock := newFakeClock()
	c := newClient(t, srv.URL, func(o *Options) {
		o.Breaker = BreakerOptions{FailureThreshold: 1, CoolDown: time.Second, CoolDownJitter: -1}
		o.Clock = clock
	})
	require.Error(t, c.Ping(t.Context()))
	require.Equal(t, Open, c.State())
	clock.Advance(time.Second)
	require.Equal(t, HalfOpen, c.State())
	require.NoError(t, c.Ping(t.Context()))
	assert.Equal(t, Closed, c.State())
	assert.Equal(t, 2, inj.count())
}

func TestBreaker_4xxAnswers_NeverOpenIt(t *testing.T) {
	srv, inj := newAgent(t, agentOptions{}).serve(t)
	c := newClient(t, srv.URL, func(o *Options) { o.Breaker.FailureThreshold = 2 })
	for i := range 5 {
		_, err := c.Deliver(t.Context(), siteNew("cp-job-"+itoa(i), "nope", "a.example.com"))
		var rej *RejectedError
		require.ErrorAs(t, err, &rej)
	}
	assert.Equal(t, Closed, c.State())
	assert.Equal(t, 5, inj.count())
}
