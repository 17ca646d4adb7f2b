package jobs

import (
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

func (s *secrets) add(values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) >= minSecret {
			s.values = append(s.values, v)
		}
	}
}

// child is a set for one job: its own secrets and s's.
func (s *secrets) child() *secrets { return &secrets{parent: s} }

func (s *secrets) redact(text string) string {
	if s == nil || text == "" {
		return text
	}
	text = s.parent.redact(text)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.values {
		text = strings.ReplaceAll(text, v, redacted)
	}
	return text
}
