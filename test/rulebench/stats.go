package main

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// stats tells, per scraper, which agents it scraped and when: the script's
// check that both scrapers see every agent, independent of either. A
// scraper names itself with ?scraper=<name>; `hybrid monitor` cannot add
// query parameters, so no parameter means "hybrid".
type stats struct {
	n  int
	mu sync.Mutex
	by map[string]*scraperStats
}

type scraperStats struct {
	last    []atomic.Int64 // unix nanoseconds of each agent's last complete scrape
	scrapes atomic.Int64
}

func newStats(n int) *stats { return &stats{n: n, by: map[string]*scraperStats{}} }

func (s *stats) scraper(name string) *scraperStats {
	if name == "" {
		name = "hybrid"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.by[name]
	if !ok {
		st = &scraperStats{last: make([]atomic.Int64, s.n)}
		s.by[name] = st
	}
	return st
}

func (st *scraperStats) done(agent int, at time.Time) {
	st.last[agent].Store(at.UnixNano())
	st.scrapes.Add(1)
}

// ServeHTTP writes, per scraper, how many agents it scraped within the
// `within` parameter (default 30s) and its scrapes so far.
func (s *stats) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	within, err := time.ParseDuration(r.URL.Query().Get("within"))
	if err != nil {
		within = 30 * time.Second
	}
	since := time.Now().Add(-within).UnixNano()
	s.mu.Lock()
	names := make([]string, 0, len(s.by))
	for name := range s.by {
		names = append(names, name)
	}
	s.mu.Unlock()
	sort.Strings(names)
	for _, name := range names {
		st := s.scraper(name)
		recent := 0
		for i := range st.last {
			if st.last[i].Load() >= since {
				recent++
			}
		}
		fmt.Fprintf(w, "%s %d %d\n", name, recent, st.scrapes.Load())
	}
}
