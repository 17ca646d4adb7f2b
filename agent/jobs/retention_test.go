package jobs

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func targetedScripted(name string) Type {
	t := scriptedType(name)
	t.Targets = RequestTargets
	return t
}

// onSite is a scripted request on a site: one step that prints "hello".
func onSite(site string) json.RawMessage {
	if site == "" {
		return json.RawMessage(`{"steps":[{"name":"a","print":"hello"}]}`)
	}
	return json.RawMessage(`{"bench":"b1","site":"` + site + `","steps":[{"name":"a","print":"hello"}]}`)
}

func TestPrune_OldJobsDeleted_LastOfEachTypePerSiteKept(t *testing.T) {
	clk := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	q := openTestQueue(t, Options{Now: clk.Now, Workers: 1, PruneInterval: time.Hour,
		Types: []Type{targetedScripted("site.backup"), targetedScripted("site.migrate"), scriptedType("plain")}})
	ctx := t.Context()
	run := func(id, typ, site string) {
		t.Helper()
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: typ, Request: onSite(site)})
		require.NoError(t, err)
		require.Equal(t, agentapi.Success, waitEnded(t, q, id).Status)
	}
	q.Start(ctx)
	run("a1", "site.backup", "a.example.com")
	run("a2", "site.backup", "a.example.com")
	run("c1", "site.backup", "c.example.com")
	run("m1", "site.migrate", "a.example.com")
	run("n1", "plain", "")
	run("n2", "plain", "")
	clk.Add(29 * 24 * time.Hour)
	n, err := q.Prune(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "pruned jobs younger than 30 days")
	clk.Add(2 * 24 * time.Hour)
	run("a3", "site.backup", "a.example.com")

	n, err = q.Prune(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	for _, id := range []string{"a1", "a2", "n1"} {
		_, err := q.Get(ctx, id)
		assert.ErrorIs(t, err, ErrNotFound, id)
	}
	_, err = q.Get(ctx, "c1", "m1", "n2", "a3") // the last of their type on their site, or of a type holding nothing
	require.NoError(t, err)
	s, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 3, s.Pruned)
	assert.Len(t, s.Ended, 3, "counters kept")

	n, err = q.Prune(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestListPage_Paginated_NoOutput(t *testing.T) {
	q := openTestQueue(t, Options{Workers: 1})
	ctx := t.Context()
	q.Start(ctx)
	for _, id := range []string{"j1", "j2", "j3", "j4", "j5"} {
		_, _, err := q.Submit(ctx, Submission{ID: id, Type: "test", Request: onSite("")})
		require.NoError(t, err)
		waitEnded(t, q, id)
	}
	page, next, err := q.ListPage(ctx, ListQuery{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"j5", "j4"}, ids(page))
	require.NotZero(t, next)
	assert.Empty(t, page[0].Steps[0].Output, "a list carries no step output")
	assert.Equal(t, agentapi.Success, page[0].Steps[0].Status)
	page, next, err = q.ListPage(ctx, ListQuery{Limit: 2, Before: next})
	require.NoError(t, err)
	assert.Equal(t, []string{"j3", "j2"}, ids(page))
	page, next, err = q.ListPage(ctx, ListQuery{Limit: 2, Before: next})
	require.NoError(t, err)
	assert.Equal(t, []string{"j1"}, ids(page))
	assert.Zero(t, next, "the last page")

	page, next, err = q.ListPage(ctx, ListQuery{Limit: 5})
	require.NoError(t, err)
	assert.Len(t, page, 5)
	assert.Zero(t, next, "exactly a page")
	page, _, err = q.ListPage(ctx, ListQuery{Status: agentapi.Pending})
	require.NoError(t, err)
	assert.Empty(t, page)

	full, err := q.Get(ctx, "j5")
	require.NoError(t, err)
	assert.Equal(t, "hello", full[0].Steps[0].Output, "Get keeps the output")
}
