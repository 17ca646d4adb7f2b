package sites

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A bench printing without end keeps the agent's copy of its output to the
// tail the summary is read from.
func TestOutputTail_EndlessOutput_KeepsBoundedTail(t *testing.T) {
	var tail outputTail
	chunk := bytes.Repeat([]byte("x"), 1<<20+7)
	for range 256 {
		n, err := tail.Write(chunk)
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
		require.LessOrEqual(t, cap(tail.b), 4*maxSummary, "memory stays bounded")
	}
	summary := "Database: ./s.example.com/private/backups/20260101_000000-s_example_com-database.sql.gz 1KiB\n"
	tail.Write([]byte(summary))
	got := tail.Bytes()
	require.Len(t, got, maxSummary)
	require.True(t, strings.HasSuffix(string(got), summary))
	for range 1000 {
		tail.Write([]byte("y"))
	}
	require.Len(t, tail.Bytes(), maxSummary)
}
