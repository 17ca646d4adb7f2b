package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// A bench's output is hostile: what a step keeps of it cannot drive the
// terminal of whoever reads the job (colours, cursor moves, a cleared
// screen, a window title, a line overwritten by a carriage return).
func TestTail_TerminalControls_Removed(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"colours":            {"\x1b[31mred\x1b[0m ok\n", "red ok\n"},
		"clear screen":       {"a\x1b[2J\x1b[Hb\n", "ab\n"},
		"window title":       {"\x1b]0;owned\x07text\n", "text\n"},
		"hyperlink":          {"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n", "link\n"},
		"carriage return":    {"Database: ./a/../../etc/shadow\rDatabase: fine\n", "Database: ./a/../../etc/shadow\nDatabase: fine\n"},
		"crlf":               {"one\r\ntwo\r\n", "one\ntwo\n"},
		"bell and nul":       {"a\x07b\x00c\x7fd\n", "abcd\n"},
		"C1 CSI":             {"a\u009b31mb\n", "a31mb\n"},
		"invalid UTF-8":      {"a\xff\xfeb\n", "a\uFFFDb\n"},
		"tabs and unicode":   {"é\tü 日本\n", "é\tü 日本\n"},
		"lone escape at end": {"text\x1b", "text"},
	} {
		t.Run(name, func(t *testing.T) {
			var out tail
			out.Write([]byte(tc.in))
			got, dirty := out.take()
			require.True(t, dirty)
			require.Equal(t, tc.want, got)
		})
	}
}

// When the front of the output was dropped, its first line, which lost its
// start, goes too: it may end with the end of a secret whose start is gone,
// which no redaction can match.
func TestTail_FrontCut_PartialFirstLineDropped(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	var out tail
	out.Write([]byte("password " + secret + "\n"))
	// Enough after it that the cut lands inside the secret.
	pad := strings.Repeat("y", maxOutput-20) + "\nlast line\n"
	out.Write([]byte(pad))
	got, _ := out.take()
	require.NotContains(t, got, secret[len(secret)-8:])
	require.True(t, strings.HasSuffix(got, "\nlast line\n"))
	require.True(t, strings.HasPrefix(got, "yyyy"), "the cut line starts the output: %.20q", got)

	// One write larger than the whole tail.
	var big tail
	big.Write([]byte("password " + secret + "\n" + strings.Repeat("z", maxOutput-20) + "\n"))
	got, _ = big.take()
	require.NotContains(t, got, secret[len(secret)-8:])
	require.True(t, strings.HasPrefix(got, "zzzz"))
}

// A step's error quotes what a bench printed (the tail of a failed
// command's output): the job's error is cleaned as its output is.
func TestWorker_ErrorWithTerminalControls_RecordedClean(t *testing.T) {
	typ := Type{Name: "loud", Steps: func(json.RawMessage) ([]Step, error) {
		return []Step{{Name: "fails", Run: func(ctx context.Context, run *Run) error {
			return errors.New("bench command exited 1: \x1b]0;owned\x07\x1b[2Jdone\rfake line")
		}}}, nil
	}}
	q := openTestQueue(t, Options{Types: []Type{typ}})
	q.Start(t.Context())
	_, _, err := q.Submit(t.Context(), Submission{ID: "j1", Type: "loud"})
	require.NoError(t, err)
	job := waitEnded(t, q, "j1")
	require.Equal(t, agentapi.Failure, job.Status)
	require.Equal(t, "step fails: bench command exited 1: done\nfake line", job.Error)
}
