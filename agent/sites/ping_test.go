package sites

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// A bench answering its site's ping with a redirect does not have the agent
// request the URL it names (the agent's API, a metadata service), nor pass
// the check with that URL's answer.
func TestCheckPing_BenchRedirects_NotFollowedCheckFails(t *testing.T) {
	var hit atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit.Add(1)
		w.Write([]byte(`{"message":"pong"}`))
	}))
	defer internal.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked atomic.Int32
	bench := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) == 2 {
			cancel() // asked again: the redirect was not taken as an answer
		}
		http.Redirect(w, r, internal.URL+"/latest/meta-data/", http.StatusFound)
	}))
	defer bench.Close()
	o := &Operations{SiteURL: bench.URL}
	job := runJob(t, func(json.RawMessage) ([]jobs.Step, error) {
		return []jobs.Step{{Name: "ping", Run: func(_ context.Context, run *jobs.Run) error {
			return o.checkPing(ctx, run, "a.example.com")
		}}}, nil
	})
	require.Zero(t, hit.Load(), "the agent followed the bench's redirect")
	require.Equal(t, agentapi.Failure, job.Status, "the check passed on the redirect's target")
}
