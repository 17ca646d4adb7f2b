package jobs

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
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

func TestCallback_Signed_VerifiesWithTheControlPlanesCode(t *testing.T) {
	secret := []byte("callback-secret-for-the-test-0123")
	type received struct {
		body      []byte
		signature string
		at        time.Time
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{body, r.Header.Get(agentapi.SignatureHeader), time.Now()}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	q := openTestQueue(t, Options{CallbackSecret: secret})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "a"}),
		CallbackURL: srv.URL})
	require.NoError(t, err)

	var r received
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no callback")
	}
	require.NotEmpty(t, r.signature)
	require.NoError(t, agentapi.VerifySignature(secret, r.body, r.signature, r.at, agentapi.DefaultSignatureTolerance))
	var job agentapi.Job
	require.NoError(t, json.Unmarshal(r.body, &job))
	require.Equal(t, "j1", job.ID)

	tampered := []byte(strings.Replace(string(r.body), `"Success"`, `"Failure"`, 1))
	require.NotEqual(t, r.body, tampered)
	require.ErrorIs(t, agentapi.VerifySignature(secret, tampered, r.signature, r.at, agentapi.DefaultSignatureTolerance),
		agentapi.ErrSignatureMismatch)
	require.ErrorIs(t, agentapi.VerifySignature(secret, r.body, r.signature, r.at.Add(10*time.Minute), agentapi.DefaultSignatureTolerance),
		agentapi.ErrSignatureExpired, "a replay ten minutes later is refused")
}

func TestCallback_Redirect_NotFollowed_CountsAsFailedAndRetried(t *testing.T) {
	target := &callbackServer{}
	targetSrv := httptest.NewServer(target)
	defer targetSrv.Close()
	var mu sync.Mutex
	redirect := true
	redirects := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if redirect {
			redirects++
			http.Redirect(w, r, targetSrv.URL, http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	q := openTestQueue(t, Options{})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "test", Request: request(t, scriptedStep{Name: "a"}),
		CallbackURL: srv.URL})
	require.NoError(t, err)

	require.Eventually(t, func() bool { _, attempts := callbackState(t, q, "j1"); return attempts >= 1 },
		10*time.Second, 10*time.Millisecond)
	state, _ := callbackState(t, q, "j1")
	require.Equal(t, "pending", state, "a redirect is a failed delivery, to retry")
	var msg string
	require.NoError(t, q.r.QueryRowContext(t.Context(), `SELECT callback_error FROM jobs WHERE id = 'j1'`).Scan(&msg))
	require.Contains(t, msg, "307")
	require.Contains(t, msg, "redirects are not followed")
	require.Zero(t, target.count(), "the redirect's target got nothing")

	mu.Lock()
	redirect = false
	mu.Unlock()
	require.Eventually(t, func() bool { s, _ := callbackState(t, q, "j1"); return s == "delivered" },
		10*time.Second, 10*time.Millisecond)
	require.Zero(t, target.count())
}

func TestCallback_HangingURL_DoesNotDelayAnotherJobsCallback(t *testing.T) {
	release := make(chan struct{})
	hung := make(chan struct{}, 1)
	hangSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hung <- struct{}{}:
		default:
		}
		select { // a black hole: no answer until the test ends
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hangSrv.Close()
	defer close(release)
	good := &callbackServer{}
	goodSrv := httptest.NewServer(good)
	defer goodSrv.Close()

	q := openTestQueue(t, Options{CallbackClient: &http.Client{Timeout: time.Minute}})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "hangs", Type: "test", Request: request(t, scriptedStep{Name: "a"}),
		CallbackURL: hangSrv.URL})
	require.NoError(t, err)
	select {
	case <-hung:
	case <-time.After(10 * time.Second):
		t.Fatal("the first callback was not sent")
	}

	start := time.Now()
	_, _, err = q.Submit(t.Context(), Submission{ID: "fine", Type: "test", Request: request(t, scriptedStep{Name: "a"}),
		CallbackURL: goodSrv.URL})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return good.count() == 1 }, 2*time.Second, 10*time.Millisecond,
		"the second job's callback arrives while the first one hangs")
	t.Logf("second callback after %s", time.Since(start))
	state, attempts := callbackState(t, q, "hangs")
	require.Equal(t, "pending", state)
	require.Zero(t, attempts, "the first attempt is still in flight")
}
