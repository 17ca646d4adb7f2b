package jobs

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// callbackServer answers 500 to the first fails posts, then 204.
type callbackServer struct {
	mu    sync.Mutex
	fails int
	posts []agentapi.Job
	at    []time.Time
}

func (s *callbackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var job agentapi.Job
	if err := json.NewDecoder(r.Body).Decode(&job); err != nil || r.Header.Get(agentapi.JobIDHeader) != job.ID {
		http.Error(w, "bad callback", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts = append(s.posts, job)
	s.at = append(s.at, time.Now())
	if len(s.posts) <= s.fails {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *callbackServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.posts)
}

func callbackState(t *testing.T, q *Queue, id string) (state string, attempts int) {
	t.Helper()
	require.NoError(t, q.r.QueryRowContext(t.Context(), `SELECT callback_state, callback_attempts FROM jobs WHERE id = ?`, id).
		Scan(&state, &attempts))
	return state, attempts
}

func TestCallback_First500_Retried(t *testing.T) {
	cb := &callbackServer{fails: 1}
	srv := httptest.NewServer(cb)
	defer srv.Close()
	q := openTestQueue(t, Options{})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "a"}),
		CallbackURL: srv.URL + "/callback"})
	require.NoError(t, err)

	require.Eventually(t, func() bool { s, _ := callbackState(t, q, "j1"); return s == "delivered" },
		10*time.Second, 10*time.Millisecond)
	state, attempts := callbackState(t, q, "j1")
	assert.Equal(t, "delivered", state)
	assert.Equal(t, 2, attempts)
	cb.mu.Lock()
	defer cb.mu.Unlock()
	require.Len(t, cb.posts, 2)
	assert.Equal(t, agentapi.Success, cb.posts[1].Status)
	assert.Equal(t, "j1", cb.posts[1].ID)
	assert.Len(t, cb.posts[1].Steps, 1)
	assert.GreaterOrEqual(t, cb.at[1].Sub(cb.at[0]), 900*time.Millisecond, "backoff before the retry")
}

func TestCallback_Undelivered_ContinuesAfterRestart(t *testing.T) {
	cb := &callbackServer{fails: 1 << 30}
	srv := httptest.NewServer(cb)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "jobs.db")
	ctx := t.Context()
	q, err := Open(ctx, Options{Path: path, Types: []Type{scriptedType("test")}})
	require.NoError(t, err)
	q.Start(ctx)
	_, _, err = q.Submit(ctx, Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "a"}), CallbackURL: srv.URL})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return cb.count() >= 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, q.Close())
	state, _ := callbackState(t, openReadOnly(t, path), "j1")
	assert.Equal(t, "pending", state)

	cb.mu.Lock()
	cb.fails = 0
	cb.mu.Unlock()
	q = openTestQueue(t, Options{Path: path})
	q.Start(ctx)
	require.Eventually(t, func() bool { s, _ := callbackState(t, q, "j1"); return s == "delivered" },
		10*time.Second, 10*time.Millisecond)
}

// openReadOnly opens a store without recovering or running it, to look.
func openReadOnly(t *testing.T, path string) *Queue {
	t.Helper()
	w, r, err := openDB(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close(); r.Close() })
	return &Queue{w: w, r: r}
}
