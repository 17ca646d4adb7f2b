package agentclient

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestErrors_EveryFailingCase_NeverHoldTheToken makes every call fail every
// way it can, including agents that echo the Authorization header back, and
// greps the errors and the logs for the token.
func TestErrors_EveryFailingCase_NeverHoldTheToken(t *testing.T) {
	echo := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			w.Write([]byte(`{"error":"you sent ` + r.Header.Get("Authorization") + `"}`))
		})
	}
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	realAgent, _ := newAgent(t, agentOptions{}).serve(t)

	targets := map[string]string{"refused": refused, "real agent": realAgent.URL}
	for name, h := range map[string]http.Handler{"echo 400": echo(400), "echo 500": echo(500), "echo 401": echo(401), "slow": slow} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		targets[name] = srv.URL
	}
	logs := &logBuffer{}
	var errs []error
	for name, url := range targets {
		c := newClient(t, url, func(o *Options) {
			o.Server = name
			o.RequestTimeout = 200 * time.Millisecond
			o.Retry = Retry{MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxTime: time.Second}
			o.Breaker.FailureThreshold = 2
			o.Logger = logs.logger()
		})
		for range 2 { // the second round meets an open circuit where the first failed
			_, err := c.Deliver(t.Context(), siteNew("cp-job-1", "nope", "a.example.com"))
			errs = append(errs, err)
			_, err = c.Poll(t.Context(), []string{"cp-unknown"})
			errs = append(errs, err)
			errs = append(errs, c.Ping(t.Context()))
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			_, err = c.Deliver(ctx, siteNew("cp-job-2", "b1", "x.example.com"))
			cancel()
			errs = append(errs, err)
		}
	}
	_, err = New(Options{Server: "s", BaseURL: "http://u:hunter2@h:1", Token: testToken})
	errs = append(errs, err)

	failures := 0
	for _, err := range errs {
		if err != nil {
			failures++
			requireNoSecret(t, "error", err.Error())
		}
	}
	require.Greater(t, failures, 30, "the cases failed")
	requireNoSecret(t, "logs", logs.String())
}
