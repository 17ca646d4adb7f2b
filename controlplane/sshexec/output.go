package sshexec

import (
	"bytes"
	"strings"
	"sync"
)

const redacted = "***"

// redact replaces every non-empty value of secrets in s by "***".
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}

// output keeps the last OutputTail bytes written to it, with secrets
// replaced as the bytes stream through, so that a secret split across
// writes, or across the start of the tail, never shows a part of itself.
type output struct {
	mu      sync.Mutex
	secrets [][]byte
	hold    int    // longest secret minus one: bytes kept back in case a secret starts there
	pending []byte // not yet redacted
	tail    []byte
}

func newOutput(secrets []string) *output {
	o := &output{}
	for _, s := range secrets {
		if s != "" {
			o.secrets = append(o.secrets, []byte(s))
			o.hold = max(o.hold, len(s)-1)
		}
	}
	return o
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.secrets) == 0 {
		o.keep(p)
		return len(p), nil
	}
	o.pending = append(o.pending, p...)
	o.flush(false)
	return len(p), nil
}

// flush redacts and keeps what can no longer be the start of a secret (all
// of it when final).
func (o *output) flush(final bool) {
	for {
		at, n := -1, 0
		for _, s := range o.secrets {
			if i := bytes.Index(o.pending, s); i >= 0 && (at < 0 || i < at || i == at && len(s) > n) {
				at, n = i, len(s)
			}
		}
		if at < 0 {
			break
		}
		o.keep(o.pending[:at])
		o.keep([]byte(redacted))
		o.pending = o.pending[at+n:]
	}
	// No whole secret is left in pending: one cut off at its end starts in
	// its last hold bytes.
	cut := len(o.pending)
	if !final {
		cut = max(0, len(o.pending)-o.hold)
	}
	o.keep(o.pending[:cut])
	o.pending = append([]byte(nil), o.pending[cut:]...)
}

func (o *output) keep(p []byte) {
	o.tail = append(o.tail, p...)
	if len(o.tail) > 2*OutputTail {
		o.tail = append([]byte(nil), o.tail[len(o.tail)-OutputTail:]...)
	}
}

// String is the tail, redacted; call it once writing has ended.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flush(true)
	t := o.tail
	if len(t) > OutputTail {
		t = t[len(t)-OutputTail:]
	}
	return string(t)
}
