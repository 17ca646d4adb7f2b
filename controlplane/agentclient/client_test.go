package agentclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

func TestPing_RealAgent_Pongs(t *testing.T) {
	srv, inj := newAgent(t, agentOptions{}).serve(t)
	c := newClient(t, srv.URL, nil)
	require.NoError(t, c.Ping(t.Context()))
	assert.Equal(t, []string{"GET /ping"}, inj.seen())
	assert.Equal(t, Closed, c.State())
}

func TestDeliver_Twice_OneJobOnTheAgent(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, _ := a.serve(t)
	c := newClient(t, srv.URL, nil)
	d := siteNew("cp-job-1", "b1", "new.example.com")
	id, err := c.Deliver(t.Context(), d)
	require.NoError(t, err)
	assert.Equal(t, "cp-job-1", id)
	id, err = c.Deliver(t.Context(), d)
	require.NoError(t, err, "the same job delivered again is the same job, not a conflict")
	assert.Equal(t, "cp-job-1", id)
	assert.Equal(t, 1, a.jobCount(t))
	job := waitEnded(t, a.queue, "cp-job-1")
	assert.Equal(t, agentapi.TypeSiteNew, job.Type)
	assert.Equal(t, agentapi.Success, job.Status)

	// Delivered again after it ran: still the same job.
	id, err = c.Deliver(t.Context(), d)
	require.NoError(t, err)
	assert.Equal(t, "cp-job-1", id)
	assert.Equal(t, 1, a.jobCount(t))
}

func TestDeliver_5xxTwiceThenOK_DeliveredAfterRetries(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, inj := a.serve(t)
	inj.set(func(i *injector) { i.fail = 2 })
	c := newClient(t, srv.URL, nil)
	id, err := c.Deliver(t.Context(), siteNew("cp-job-2", "b1", "new.example.com"))
	require.NoError(t, err)
	assert.Equal(t, "cp-job-2", id)
	assert.Equal(t, []string{"POST /benches/b1/sites", "POST /benches/b1/sites", "POST /benches/b1/sites"}, inj.seen())
	assert.Equal(t, 1, a.jobCount(t))
	assert.Equal(t, Closed, c.State(), "a success resets the failures")
}

func TestDeliver_5xxEveryTime_GivesUpAfterMaxAttempts(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, inj := a.serve(t)
	inj.set(func(i *injector) { i.down = true })
	c := newClient(t, srv.URL, func(o *Options) {
		o.Retry.MaxAttempts = 3
		o.Breaker.FailureThreshold = 100
	})
	_, err := c.Deliver(t.Context(), siteNew("cp-job-3", "b1", "new.example.com"))
	require.Error(t, err)
	requireNoSecret(t, "error", err.Error())
	var rej *RejectedError
	assert.False(t, errors.As(err, &rej), "a 5xx is not a rejection: the job is delivered later")
	assert.Contains(t, err.Error(), "gave up after 3 attempts")
	assert.Contains(t, err.Error(), "503")
	assert.Contains(t, err.Error(), "injected: agent overloaded", "the agent's message is kept")
	assert.Equal(t, 3, inj.count())
	assert.Equal(t, 0, a.jobCount(t))
}

func TestDeliver_ConnectionRefusedThenAgentStarts_Delivered(t *testing.T) {
	a := newAgent(t, agentOptions{})
	// A free port, closed: connections to it are refused until the agent listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	logs := &logBuffer{}
	c := newClient(t, "http://"+addr, func(o *Options) {
		o.Retry = Retry{MaxAttempts: 200, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxTime: 20 * time.Second}
		o.Breaker.FailureThreshold = 1000
		o.Logger = logs.logger()
	})
	inj := &injector{next: a.handler}
	started := make(chan struct{})
	go func() {
		defer close(started)
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen again on %s: %v", addr, err)
			return
		}
		srv := &http.Server{Handler: inj}
		t.Cleanup(func() { srv.Close() })
		go srv.Serve(l)
	}()
	id, err := c.Deliver(t.Context(), siteNew("cp-job-4", "b1", "new.example.com"))
	<-started
	require.NoError(t, err)
	assert.Equal(t, "cp-job-4", id)
	assert.Equal(t, 1, inj.count(), "one request reached the agent, once it listened")
	assert.Equal(t, 1, a.jobCount(t))
	assert.Contains(t, logs.String(), "connection refused", "the refused attempts were logged")
	requireNoSecret(t, "logs", logs.String())
}

func TestDeliver_4xx_RejectedErrorWithTheAgentsMessage_NoRetry(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, inj := a.serve(t)
	c := newClient(t, srv.URL, func(o *Options) { o.Breaker.FailureThreshold = 1 })
	_, err := c.Deliver(t.Context(), siteNew("cp-job-0", "b1", "taken.example.com"))
	require.NoError(t, err)

	cases := []struct {
		name   string
		d      Delivery
		status int
		msg    string
	}{
		{"unknown bench", siteNew("cp-job-5", "nope", "a.example.com"), 404, `bench "nope" does not exist`},
		{"bad site name", siteNew("cp-job-6", "b1", "a;b"), 400, "site name"},
		{"unknown field", Delivery{JobID: "cp-job-7", Path: "/benches", Body: []byte(`{"name":"b2","image":"x/y","privileged":true}`)}, 400, "unknown field"},
		{"same id, another request", siteNew("cp-job-0", "b1", "other.example.com"), 409, `job "cp-job-0" exists with another type or request`},
		{"bench exists", Delivery{JobID: "cp-job-8", Path: "/benches", Body: []byte(`{"name":"b1","image":"x/y:1"}`)}, 409, `bench "b1" exists`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := inj.count()
			_, err := c.Deliver(t.Context(), tc.d)
			var rej *RejectedError
			require.ErrorAs(t, err, &rej)
			assert.Equal(t, tc.status, rej.Status)
			assert.Contains(t, rej.Message, tc.msg)
			assert.Contains(t, err.Error(), tc.d.JobID, "the error names the job")
			assert.Equal(t, before+1, inj.count(), "a 4xx is never retried")
			assert.Equal(t, Closed, c.State(), "a 4xx is an answer: the agent is up")
			requireNoSecret(t, "error", err.Error())
		})
	}
	assert.Equal(t, 1, a.jobCount(t))
}

func TestDeliver_WrongToken_Rejected401_TokenNotInTheError(t *testing.T) {
	srv, _ := newAgent(t, agentOptions{}).serve(t)
	c := newClient(t, srv.URL, func(o *Options) { o.Token = "hunter2-wrong-token" })
	_, err := c.Deliver(t.Context(), siteNew("cp-job-9", "b1", "new.example.com"))
	var rej *RejectedError
	require.ErrorAs(t, err, &rej)
	assert.Equal(t, http.StatusUnauthorized, rej.Status)
	assert.Contains(t, rej.Message, "bearer token")
	requireNoSecret(t, "error", err.Error())
}

func TestDeliver_BadDelivery_RefusedWithoutARequest(t *testing.T) {
	srv, inj := newAgent(t, agentOptions{}).serve(t)
	c := newClient(t, srv.URL, nil)
	for name, d := range map[string]Delivery{
		"no job id":     {Path: "/benches"},
		"bad job id":    {JobID: "../x", Path: "/benches"},
		"relative path": {JobID: "j", Path: "benches"},
		"dot-dot path":  {JobID: "j", Path: "/benches/../jobs"},
		"query":         {JobID: "j", Path: "/benches?x=1"},
		"GET":           {JobID: "j", Method: "GET", Path: "/jobs"},
		"body not JSON": {JobID: "j", Path: "/benches", Body: []byte("{")},
	} {
		_, err := c.Deliver(t.Context(), d)
		assert.Error(t, err, name)
	}
	assert.Zero(t, inj.count())
}

func TestDeliver_Redirect_NotFollowed(t *testing.T) {
	var hit atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Add(1) }))
	defer elsewhere.Close()
	srv, inj := newAgent(t, agentOptions{}).serve(t)
	inj.set(func(i *injector) { i.redirect = elsewhere.URL + "/steal" })
	c := newClient(t, srv.URL, func(o *Options) { o.Retry.MaxAttempts = 2 })
	_, err := c.Deliver(t.Context(), siteNew("cp-job-10", "b1", "new.example.com"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirect")
	assert.Zero(t, hit.Load(), "the token never went to the redirect's target")
	requireNoSecret(t, "error", err.Error())
}

func TestDeliver_CallerCancels_StopsRetrying(t *testing.T) {
	srv, inj := newAgent(t, agentOptions{}).serve(t)
	inj.set(func(i *injector) { i.down = true })
	c := newClient(t, srv.URL, func(o *Options) {
		o.Retry = Retry{MaxAttempts: 1000, MinBackoff: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxTime: time.Minute}
		o.Breaker.FailureThreshold = 1000
	})
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Deliver(ctx, siteNew("cp-job-11", "b1", "new.example.com"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	n := inj.count()
	time.Sleep(60 * time.Millisecond)
	assert.Equal(t, n, inj.count(), "no request after the caller gave up")
}

func TestClient_TLSWithTheAgentsCA_Delivers_WithoutIt_Refused(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv := httptest.NewTLSServer(a.handler)
	defer srv.Close()
	caPEM := pemCert(srv.Certificate().Raw)

	c := newClient(t, srv.URL, func(o *Options) { o.CACertPEM = caPEM })
	require.NoError(t, c.Ping(t.Context()))
	_, err := c.Deliver(t.Context(), siteNew("cp-job-12", "b1", "new.example.com"))
	require.NoError(t, err)

	untrusting := newClient(t, srv.URL, func(o *Options) { o.Retry.MaxAttempts = 1 })
	err = untrusting.Ping(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate")
}

func TestNew_BadOptions_EveryProblemNamed_NoSecretInTheError(t *testing.T) {
	_, err := New(Options{Server: "s", BaseURL: "http://admin:hunter2@agent.example.com:9475", Token: testToken})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "userinfo")
	requireNoSecret(t, "error", err.Error())

	_, err = New(Options{BaseURL: "ftp://x", CACertPEM: []byte("not pem")})
	require.Error(t, err)
	for _, want := range []string{"server: empty", "http(s)://host:port", "token: empty", "no PEM certificate"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestPoll_150Ids_TwoRequests(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, inj := a.serve(t)
	c := newClient(t, srv.URL, nil)
	var ids []string
	for i := range 150 {
		d := siteNew("cp-poll-"+itoa(i), "b1", "s"+itoa(i)+".example.com")
		ids = append(ids, d.JobID)
		_, _, err := a.queue.Submit(t.Context(), submission(t, d))
		require.NoError(t, err)
	}
	got, err := c.Poll(t.Context(), ids)
	require.NoError(t, err)
	require.Len(t, got, 150)
	for i, job := range got {
		assert.Equal(t, ids[i], job.ID)
		assert.Equal(t, agentapi.TypeSiteNew, job.Type)
		assert.NotEmpty(t, job.Steps)
	}
	seen := inj.seen()
	require.Len(t, seen, 2, "150 ids: one request of 100, one of 50")
	assert.Equal(t, 100, strings.Count(seen[0], ",")+1)
	assert.Equal(t, 50, strings.Count(seen[1], ",")+1)
}

func TestPoll_UnknownIDs_NotFoundErrorBesideTheJobsRead(t *testing.T) {
	a := newAgent(t, agentOptions{})
	srv, _ := a.serve(t)
	c := newClient(t, srv.URL, nil)
	var ids []string
	for i := range 10 {
		d := siteNew("cp-known-"+itoa(i), "b1", "s"+itoa(i)+".example.com")
		_, _, err := a.queue.Submit(t.Context(), submission(t, d))
		require.NoError(t, err)
		ids = append(ids, d.JobID)
		if i == 3 || i == 7 {
			ids = append(ids, "cp-unknown-"+itoa(i))
		}
	}
	got, err := c.Poll(t.Context(), ids)
	var nf *NotFoundError
	require.ErrorAs(t, err, &nf)
	assert.ElementsMatch(t, []string{"cp-unknown-3", "cp-unknown-7"}, nf.IDs)
	assert.Len(t, got, 10)
	assert.Equal(t, Closed, c.State())
}

func TestPoll_NoIDs_NoRequest(t *testing.T) {
	srv, inj := newAgent(t, agentOptions{}).serve(t)
	c := newClient(t, srv.URL, nil)
	got, err := c.Poll(t.Context(), nil)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Zero(t, inj.count())
}
