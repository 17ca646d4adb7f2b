package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// maxOutput is how much of a step's output is kept: its tail.
const maxOutput = 64 << 10

// Run is what a step gets: its job's request and result data, and a place to
// write output.
type Run struct {
	q       *Queue
	seq     int64
	id      string
	request json.RawMessage
	attempt int
	out     *tail
	secrets *secrets

	mu     sync.Mutex
	result json.RawMessage
}

// JobID is the job's id.
func (r *Run) JobID() string { return r.id }

// Request is the job's request JSON ("null" when it had none).
func (r *Run) Request() json.RawMessage { return r.request }

// Attempt is the times this step has started, this time included: more than
// 1 means an earlier run was interrupted (the agent stopped), so the step
// may find its own leftovers.
func (r *Run) Attempt() int { return r.attempt }

// Output is where the step writes what it prints; the last 64 KiB are kept
// with the step, saved every second while it runs.
func (r *Run) Output() io.Writer { return r.out }

// Log writes a line to the step's output.
func (r *Run) Log(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	io.WriteString(r.out, s)
}

// Secret registers values the job never records as they are: from now on
// they are replaced in its steps' output, errors and result. Call it as soon
// as a step handles a secret (a site's database password).
func (r *Run) Secret(values ...string) { r.secrets.add(values...) }

// SetResult sets the job's result data to v as JSON, saved at once so a
// later step, and a resumed job, have it.
func (r *Run) SetResult(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("set result of job %s: %w", r.id, err)
	}
	b = []byte(r.secrets.redact(string(b)))
	if err := r.q.exec(context.Background(), `UPDATE jobs SET result = ? WHERE seq = ?`, b, r.seq); err != nil {
		return fmt.Errorf("set result of job %s: %w", r.id, err)
	}
	r.mu.Lock()
	r.result = b
	r.mu.Unlock()
	return nil
}

// Result decodes the job's result data so far into into; it leaves into as
// it is when there is none yet.
func (r *Run) Result(into any) error {
	r.mu.Lock()
	b := r.result
	r.mu.Unlock()
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("result of job %s: %w", r.id, err)
	}
	return nil
}

func (r *Run) currentResult() json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result
}

// tail keeps the last maxOutput bytes written to it.
type tail struct {
	mu    sync.Mutex
	buf   []byte
	dirty bool
	cut   bool // something was dropped from the front
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= maxOutput {
		t.cut = t.cut || len(p) > maxOutput || len(t.buf) > 0
		t.buf = append(t.buf[:0], p[len(p)-maxOutput:]...)
	} else {
		t.buf = append(t.buf, p...)
		if len(t.buf) > 2*maxOutput {
			t.buf = append(t.buf[:0], t.buf[len(t.buf)-maxOutput:]...)
			t.cut = true
		}
	}
	t.dirty = true
	return n, nil
}

// take returns the tail, as valid UTF-8 without terminal control
// sequences, and whether it changed since the last take. When the front
// was cut, the first line, which lost its start, goes too: it may hold the
// end of a secret whose start was dropped, which redaction cannot match
// (unless it is the only line).
func (t *tail) take() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, cut := t.buf, t.cut
	if len(b) > maxOutput {
		b, cut = b[len(b)-maxOutput:], true
	}
	if cut {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	dirty := t.dirty
	t.dirty = false
	return cleanOutput(b), dirty
}

// terminalSequence matches ANSI escape sequences: CSI (colours, cursor
// moves, screen clears), OSC (window titles, hyperlinks, clipboard writes)
// and the two-byte ones.
var terminalSequence = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]`)

// cleanOutput makes a bench's output safe to show: valid UTF-8, without
// terminal control sequences and control characters (but tabs and line
// ends; a lone carriage return, which would let a line overwrite what was
// printed before it on a terminal, becomes a line end). The output is
// hostile: whoever reads a job in a terminal must see what it printed, not
// have their terminal driven by it.
func cleanOutput(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = terminalSequence.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r == '\r':
			return '\n'
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, s)
}
