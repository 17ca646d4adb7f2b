package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// secrets maps servers to their callback secrets.
type secrets map[string][][]byte

func (s secrets) CallbackSecrets(_ context.Context, server string) ([][]byte, error) {
	if server == "srv-broken-store" {
		return nil, errors.New("database is locked")
	}
	v, ok := s[server]
	if !ok {
		return nil, ErrUnknownServer
	}
	return v, nil
}

func serveCallbacks(t *testing.T, sink Updater, clock Clock, logs *logBuffer) *httptest.Server {
	t.Helper()
	h, err := NewCallbackHandler(CallbackOptions{
		Secrets: secrets{"srv1": {[]byte(testCallbackSecret)}, "srv-rotating": {[]byte("new-secret"), []byte(testCallbackSecret)}},
		Sink:    sink, Clock: clock, MaxBody: 64 << 10, Logger: logs.logger(),
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/agent-callbacks/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestCallback_SignedByTheRealAgent_FedToTheSink(t *testing.T) {
	a := newAgent(t, agentOptions{callbackSecret: []byte(testCallbackSecret)})
	agentSrv, _ := a.serve(t)
	sink := newRecordingSink()
	logs := &logBuffer{}
	cp := serveCallbacks(t, sink, nil, logs)
	c := newClient(t, agentSrv.URL, nil)
	d := siteNew("cp-job-cb", "b1", "new.example.com")
	d.CallbackURL = CallbackURL(cp.URL+"/agent-callbacks", "srv1")
	_, err := c.Deliver(t.Context(), d)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(sink.jobs("srv1")) == 1 }, 10*time.Second, 10*time.Millisecond)
	job := sink.jobs("srv1")[0]
	assert.Equal(t, "cp-job-cb", job.ID)
	assert.Equal(t, agentapi.Success, job.Status)
	assert.Len(t, job.Steps, 1)
	requireNoSecret(t, "logs", logs.String())
}

func TestCallback_UnsignedTamperedReplayedOrTooLarge_Refused(t *testing.T) {
	clock := newFakeClock()
	sink := newRecordingSink()
	logs := &logBuffer{}
	cp := serveCallbacks(t, sink, clock, logs)
	job, err := json.Marshal(agentapi.Job{ID: "cp-job-1", Type: agentapi.TypeSiteNew, Status: agentapi.Success})
	require.NoError(t, err)
	secret := []byte(testCallbackSecret)
	now := clock.Now()
	signed := agentapi.Sign(secret, job, now)
	big := []byte(`{"id":"cp-job-1","status":"Success","error":"` + strings.Repeat("x", 70<<10) + `"}`)

	cases := []struct {
		name      string
		method    string
		server    string
		body      []byte
		signature string
		code      int
	}{
		{"unsigned", "POST", "srv1", job, "", 401},
		{"tampered body", "POST", "srv1", []byte(strings.Replace(string(job), "Success", "Failure", 1)), signed, 401},
		{"another secret", "POST", "srv1", job, agentapi.Sign([]byte("not-the-secret"), job, now), 401},
		{"replayed an hour later", "POST", "srv1", job, agentapi.Sign(secret, job, now.Add(-time.Hour)), 401},
		{"garbage signature", "POST", "srv1", job, "t=1,v1=zz", 401},
		{"unknown server", "POST", "srv-unknown", job, signed, 401},
		{"another server's callback", "POST", "srv-rotating", job, agentapi.Sign([]byte("third"), job, now), 401},
		{"too large", "POST", "srv1", big, agentapi.Sign(secret, big, now), 413},
		{"signed, not a job", "POST", "srv1", []byte(`[1]`), agentapi.Sign(secret, []byte(`[1]`), now), 400},
		{"GET", "GET", "srv1", nil, signed, 405},
		{"secret store down", "POST", "srv-broken-store", job, signed, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := postCallback(t, tc.method, cp.URL+"/agent-callbacks/"+tc.server, tc.body, tc.signature)
			assert.Equal(t, tc.code, code, body)
			requireNoSecret(t, "answer", body)
		})
	}
	assert.Zero(t, sink.calls, "nothing refused reached the sink")

	// The same callback, signed now, is taken; a rotated secret's too.
	code, body := postCallback(t, "POST", cp.URL+"/agent-callbacks/srv1", job, signed)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = postCallback(t, "POST", CallbackURL(cp.URL+"/agent-callbacks", "srv-rotating"), job, signed)
	require.Equal(t, http.StatusNoContent, code, body)
	assert.Len(t, sink.jobs("srv1"), 1)
	assert.Len(t, sink.jobs("srv-rotating"), 1)
	assert.Contains(t, logs.String(), "callback refused")
	requireNoSecret(t, "logs", logs.String())
}

func postCallback(t *testing.T, method, url string, body []byte, signature string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(agentapi.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}
