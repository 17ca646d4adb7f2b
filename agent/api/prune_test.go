package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// newPruneServer runs the API over a real queue whose site.prune_backups
// records its request and does nothing.
func newPruneServer(t *testing.T) (*httptest.Server, *jobs.Queue) {
	t.Helper()
	q, err := jobs.Open(context.Background(), jobs.Options{Path: filepath.Join(t.TempDir(), "jobs.db"), Workers: 1,
		Logger: slog.New(slog.DiscardHandler),
		Types: []jobs.Type{{Name: agentapi.TypeSitePruneBackups, Steps: func(json.RawMessage) ([]jobs.Step, error) {
			return []jobs.Step{{Name: "prune", Run: func(context.Context, *jobs.Run) error { return nil }}}, nil
		}}}})
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	inv := &inventory{sites: map[string][]string{"b1": {"erp.example.com"}}}
	srv := httptest.NewServer(New(q, inv, HashToken(testToken), slog.New(slog.DiscardHandler)).Handler())
	t.Cleanup(srv.Close)
	return srv, q
}

func TestAPI_PruneBackups_BodyOptional_PolicyChecked(t *testing.T) {
	srv, q := newPruneServer(t)
	const path = "/benches/b1/sites/erp.example.com/backups/prune"
	for _, tc := range []struct {
		name, body string
		code       int
		want       string // in the error, or the recorded request
	}{
		{"no body", "", http.StatusAccepted, `{"bench":"b1","site":"erp.example.com"}`},
		{"policy", `{"keep_last":3,"keep_days":10,"offsite":false}`, http.StatusAccepted,
			`{"bench":"b1","site":"erp.example.com","keep_last":3,"keep_days":10,"offsite":false}`},
		{"keep_last 0", `{"keep_last":0}`, http.StatusBadRequest, "keep_last 0"},
		{"negative days", `{"keep_days":-1}`, http.StatusBadRequest, "keep_days -1"},
		{"unknown field", `{"keep":1}`, http.StatusBadRequest, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, "POST", path, testToken, tc.body)
			require.Equal(t, tc.code, code, body)
			if code != http.StatusAccepted {
				require.Contains(t, body, tc.want)
				return
			}
			var created agentapi.JobCreated
			require.NoError(t, json.Unmarshal([]byte(body), &created))
			got, err := q.Get(context.Background(), created.Job)
			require.NoError(t, err)
			require.Equal(t, agentapi.TypeSitePruneBackups, got[0].Type)
			require.JSONEq(t, tc.want, string(got[0].Request))
		})
	}
	code, body := call(t, srv, "POST", "/benches/b1/sites/other.example.com/backups/prune", testToken, "")
	require.Equal(t, http.StatusNotFound, code, body)
	code, _ = call(t, srv, "POST", path, "", "")
	require.Equal(t, http.StatusUnauthorized, code)
}
