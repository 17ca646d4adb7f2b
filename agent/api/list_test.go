package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

func TestListJobs_Paginated_NoStepOutput(t *testing.T) {
	srv, q := newServer(t)
	ctx := t.Context()
	for i := range 5 {
		code, body := call(t, srv, "POST", "/benches/b1/restart", testToken, "", agentapi.JobIDHeader, fmt.Sprintf("j%d", i))
		require.Equal(t, http.StatusAccepted, code, body)
	}
	require.Eventually(t, func() bool {
		list, err := q.List(ctx, agentapi.Success, 0)
		return err == nil && len(list) == 5
	}, 10*time.Second, 10*time.Millisecond)

	get := func(path string) ([]agentapi.Job, http.Header) {
		t.Helper()
		req, err := http.NewRequest("GET", srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var list []agentapi.Job
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		return list, resp.Header
	}
	var seen []string
	path := "/jobs?limit=2"
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 3, "more pages than jobs/limit")
		list, h := get(path)
		for _, j := range list {
			seen = append(seen, j.ID)
			require.Len(t, j.Steps, 1)
			assert.Equal(t, agentapi.Success, j.Steps[0].Status)
		}
		path = ""
		if cursor := h.Get("X-Next-Cursor"); cursor != "" {
			assert.Equal(t, fmt.Sprintf(`</jobs?before=%s&limit=2>; rel="next"`, cursor), h.Get("Link"))
			path = "/jobs?limit=2&before=" + cursor
		}
	}
	assert.Equal(t, []string{"j4", "j3", "j2", "j1", "j0"}, seen)

	list, h := get("/jobs")
	assert.Len(t, list, 5)
	assert.Empty(t, h.Get("X-Next-Cursor"), "one page")
	list, _ = get("/jobs?status=Pending")
	assert.NotNil(t, list)
	assert.Empty(t, list)

	for _, bad := range []string{"/jobs?limit=0", "/jobs?limit=1001", "/jobs?limit=x", "/jobs?before=-1", "/jobs?before=x"} {
		code, body := call(t, srv, "GET", bad, testToken, "")
		assert.Equal(t, http.StatusBadRequest, code, "%s: %s", bad, body)
	}
}

// A list leaves the steps' output out; GET /jobs/<id> has it.
func TestListJobs_OutputOnlyInGet(t *testing.T) {
	q, err := jobs.Open(t.Context(), jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"), Types: []jobs.Type{{
		Name: agentapi.TypeBenchRestart,
		Steps: func(json.RawMessage) ([]jobs.Step, error) {
			return []jobs.Step{{Name: "work", Run: func(_ context.Context, run *jobs.Run) error {
				run.Log("worked")
				return nil
			}}}, nil
		},
	}}})
	require.NoError(t, err)
	q.Start(t.Context())
	t.Cleanup(func() { q.Close() })
	inv := &inventory{sites: map[string][]string{"b1": nil}}
	srv := httptest.NewServer(New(q, inv, HashToken(testToken), slog.New(slog.DiscardHandler)).Handler())
	t.Cleanup(srv.Close)
	code, body := call(t, srv, "POST", "/benches/b1/restart", testToken, "", agentapi.JobIDHeader, "j1")
	require.Equal(t, http.StatusAccepted, code, body)
	require.Eventually(t, func() bool {
		list, err := q.List(t.Context(), agentapi.Success, 0)
		return err == nil && len(list) == 1
	}, 10*time.Second, 10*time.Millisecond)
	code, body = call(t, srv, "GET", "/jobs", testToken, "")
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, body, "worked")
	code, body = call(t, srv, "GET", "/jobs/j1", testToken, "")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "worked")
}
