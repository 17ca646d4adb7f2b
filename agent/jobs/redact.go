package jobs

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
)

// redacted stands where a known secret was.
const redacted = "[redacted]"

// minSecret is the shortest value treated as a secret: shorter ones would
// blank out ordinary words.
const minSecret = 6

// secrets replaces known secret values in what a job records: step output,
// step and job errors, results. It is a second line of defence; secrets are
// kept out of commands and errors in the first place.
type secrets struct {
	parent *secrets
	mu     sync.Mutex
	values []string
}

// add records each value, and its form inside a JSON string (a result is
// redacted after encoding, where ", \, <, >, & and control characters are
// escaped).
func (s *secrets) add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < minSecret || slices.Contains(s.values, v) {
			continue // the same secret again (each new admin connection reads it)
		}
		s.values = append(s.values, v)
		if b, err := json.Marshal(v); err == nil {
			if quoted := string(b[1 : len(b)-1]); quoted != v {
				s.values = append(s.values, quoted)
			}
		}
	}
}

// child is a set for one job: its own secrets and s's.
func (s *secrets) child() *secrets { return &secrets{parent: s} }

// all is every value of s and its parents, longest first: a secret that
// contains another is replaced whole, not cut by the shorter one first.
func (s *secrets) all() []string {
	var out []string
	for ; s != nil; s = s.parent {
		s.mu.Lock()
		out = append(out, s.values...)
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

func (s *secrets) redact(text string) string {
	if s == nil || text == "" {
		return text
	}
	for _, v := range s.all() {
		text = strings.ReplaceAll(text, v, redacted)
	}
	return text
}
