package sites

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/agent/nginx"
)

// slowRouter holds its first Apply until released, and keeps the last
// sites applied.
type slowRouter struct {
	first   chan struct{} // closed when the first Apply has started
	release chan struct{}
	once    sync.Once

	mu   sync.Mutex
	last []nginx.Site
}

func (r *slowRouter) Apply(ctx context.Context, _ []nginx.Bench, sites []nginx.Site) error {
	held := false
	r.once.Do(func() { held = true; close(r.first) })
	if held {
		<-r.release
	}
	r.mu.Lock()
	r.last = sites
	r.mu.Unlock()
	return nil
}

// Two jobs routing at once: the one that listed first applies last, and
// before, its older list won, dropping the site the other job had made.
func TestRoute_TwoAtOnce_NewerListAppliedLast(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("bench folders are owned by uid 1000: run as root")
	}
	root := t.TempDir()
	rt := benches.New(nil, benches.Options{Root: root})
	_, err := rt.Prepare("b1", "image", agentapi.Limits{})
	require.NoError(t, err)
	router := &slowRouter{first: make(chan struct{}), release: make(chan struct{})}
	o := &Operations{Root: root, Runtime: rt, Router: router}
	addSite := func(site string) {
		require.NoError(t, o.recordSite(site, "b1"))
		require.NoError(t, os.MkdirAll(o.siteDir("b1", site), 0o755))
		require.NoError(t, os.WriteFile(o.siteConfig("b1", site), []byte("{}"), 0o644))
	}
	addSite("a.example.com")
	logf := func(string, ...any) {}

	firstDone := make(chan error, 1)
	go func() { firstDone <- o.applyRoutes(context.Background(), logf) }()
	<-router.first // the first has listed a.example.com only
	addSite("b.example.com")
	secondDone := make(chan error, 1)
	go func() { secondDone <- o.applyRoutes(context.Background(), logf) }()
	select {
	case err := <-secondDone:
		t.Errorf("the second route ran beside the first (err %v)", err)
		close(router.release)
	case <-time.After(200 * time.Millisecond):
		close(router.release)
		require.NoError(t, <-secondDone)
	}
	require.NoError(t, <-firstDone)
	router.mu.Lock()
	defer router.mu.Unlock()
	require.Equal(t, []nginx.Site{{Name: "a.example.com", Bench: "b1"}, {Name: "b.example.com", Bench: "b1"}}, router.last,
		"what nginx is left with is what is on disk")
}
