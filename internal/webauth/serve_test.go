package webauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serveTest serves an always-200 handler behind a generated basic-auth web
// config under limits until the test ends, and returns its address.
func serveTest(t *testing.T, limits Limits) string {
	t.Helper()
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	logger := slog.New(slog.DiscardHandler)
	require.NoError(t, Prepare(webConfig, false, logger))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	go func() { done <- ServeWith(ctx, l, h, webConfig, limits, logger) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return l.Addr().String()
}

// closedWithin reads from c until the server closes it, and says how long that took.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(limit)))
	_, err := io.Copy(io.Discard, c)
	var netErr net.Error
	require.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the server kept the connection open for %s", limit)
	return time.Since(start)
}

func TestServe_SilentConnection_ClosedAfterReadHeaderTimeout(t *testing.T) {
	addr := serveTest(t, Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	took := closedWithin(t, c, 5*time.Second)
	require.GreaterOrEqual(t, took, 250*time.Millisecond)
}

func TestServe_IdleKeepAliveAfterUnauthenticatedRequest_Closed(t *testing.T) {
	addr := serveTest(t, Limits{IdleTimeout: 300 * time.Millisecond, ReadHeaderTimeout: 10 * time.Second})
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.False(t, resp.Close, "a keep-alive connection, left open by the answer")

	// The connection now idles: the idle timeout (not the 10 s header
	// timeout) closes it.
	took := closedWithin(t, c, 5*time.Second)
	require.Less(t, took, 5*time.Second)
}

func TestServe_OversizedHeader_431(t *testing.T) {
	addr := serveTest(t, Limits{MaxHeaderBytes: 1 << 10})
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	require.NoError(t, err)
	// net/http allows 4 KiB beyond MaxHeaderBytes; 16 KiB is well over.
	req.Header.Set("X-Padding", strings.Repeat("a", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	// A request of ordinary size is served (401: no credentials).
	resp, err = http.Get("http://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestDefaultLimits_AllSet(t *testing.T) {
	d := DefaultLimits()
	require.Equal(t, d, Limits{}.orDefaults(), "zero limits take the defaults")
	require.Positive(t, d.ReadTimeout)
	require.Positive(t, d.WriteTimeout)
	require.Positive(t, d.IdleTimeout)
	require.Positive(t, d.MaxHeaderBytes)
}
