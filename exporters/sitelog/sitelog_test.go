package sitelog

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestParseLine_Fields(t *testing.T) {
	l, ok := parseLine([]byte("<190>Dec  4 14:40:00 hybrid: v1 502 12.345 77 3 HTTP/1.1 a.example.com"))
	require.True(t, ok)
	require.Equal(t, 502, l.code)
	require.EqualValues(t, 12345, l.ms)
	require.EqualValues(t, 77, l.conn)
	require.EqualValues(t, 3, l.reqs)
	require.True(t, l.http1)
	require.Equal(t, "a.example.com", string(l.host))

	l, ok = parseLine([]byte("<190>Dec  4 14:40:00 hybrid: v1 200 0.000 1 1 HTTP/2.0 a b\\x22c"))
	require.True(t, ok)
	require.False(t, l.http1)
	require.Equal(t, `a b\x22c`, string(l.host), "the host is the rest of the line")
}

func TestParseLine_Malformed_Refused(t *testing.T) {
	for _, in := range []string{
		"",
		"no header",
		"<190>Dec  4 14:40:00 hybrid: v2 200 0.001 1 1 HTTP/1.1 a.example.com",
		"<190>Dec  4 14:40:00 hybrid: v1 20 0.001 1 1 HTTP/1.1 a.example.com",
		"<190>Dec  4 14:40:00 hybrid: v1 2000 0.001 1 1 HTTP/1.1 a.example.com",
		"<190>Dec  4 14:40:00 hybrid: v1 200 0.01 1 1 HTTP/1.1 a.example.com",
		"<190>Dec  4 14:40:00 hybrid: v1 200 -.001 1 1 HTTP/1.1 a.example.com",
		"<190>Dec  4 14:40:00 hybrid: v1 200 0.001 x 1 HTTP/1.1 a.example.com",
		"<190>Dec  4 14:40:00 hybrid: v1 200 0.001 1 1 HTTP/1.1",
		"<190>Dec  4 14:40:00 hybrid: v1 200 0.001 1 1 HTTP/1.1 ",
		"<190>Dec  4 14:40:00 hybrid: v1 200 0.001 1234567890123456789012 1 HTTP/1.1 a",
	} {
		_, ok := parseLine([]byte(in))
		require.False(t, ok, in)
	}
}

func TestParseLine_NoAllocation(t *testing.T) {
	c := newTestCollector(t)
	c.SetSites([]string{"a.example.com"})
	b := []byte("<190>Dec  4 14:40:00 hybrid: v1 200 0.004 77 3 HTTP/1.1 a.example.com")
	c.count(b)
	require.Zero(t, testing.AllocsPerRun(1000, func() { c.count(b) }))
}

func newTestCollector(t *testing.T) *Collector {
	t.Helper()
	c, err := New(Options{Socket: filepath.Join(t.TempDir(), "s.sock"), GID: -1})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, path string, lines ...string) {
	t.Helper()
	conn, err := net.Dial("unixgram", path)
	require.NoError(t, err)
	defer conn.Close()
	for _, l := range lines {
		_, err := conn.Write([]byte(l))
		require.NoError(t, err)
	}
}

func TestCollector_Datagrams_CountedBySiteCodeAndDuration(t *testing.T) {
	c := newTestCollector(t)
	c.SetSites([]string{"a.example.com", "b.example.com"})
	c.Start(t.Context())
	hdr := "<190>Dec  4 14:40:00 hybrid: v1 "
	send(t, c.sock.path,
		hdr+"200 0.003 1 1 HTTP/1.1 a.example.com",
		hdr+"200 0.120 1 2 HTTP/1.1 a.example.com",
		hdr+"500 1.500 1 3 HTTP/1.1 a.example.com",
		hdr+"404 0.000 2 1 HTTP/1.1 b.example.com",
		hdr+"404 0.000 3 1 HTTP/1.1 evil.example.com",
		hdr+"200 0.000 4 1 HTTP/1.1 a.example.com",
		hdr+"200 0.000 4 4 HTTP/1.1 a.example.com", // 2 lines of connection 4 lost
		"garbage",
	)
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.bad == 1
	}, 5*time.Second, 10*time.Millisecond)

	want := `
# HELP hybrid_site_http_requests_total HTTP requests nginx served per site and status code; site="_other" for a Host that is no served site.
# TYPE hybrid_site_http_requests_total counter
hybrid_site_http_requests_total{code="200",site="a.example.com"} 4
hybrid_site_http_requests_total{code="500",site="a.example.com"} 1
hybrid_site_http_requests_total{code="404",site="b.example.com"} 1
hybrid_site_http_requests_total{code="404",site="_other"} 1
# HELP hybrid_site_log_lines_invalid_total Datagrams on the site log socket that are no access log line of the expected format.
# TYPE hybrid_site_log_lines_invalid_total counter
hybrid_site_log_lines_invalid_total 1
# HELP hybrid_site_log_lines_lost_total Access log lines nginx could not hand over, as far as they show: gaps in the request numbers of a kept-alive connection (a lower bound).
# TYPE hybrid_site_log_lines_lost_total counter
hybrid_site_log_lines_lost_total 2
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectorFunc(c))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"hybrid_site_http_requests_total", "hybrid_site_log_lines_invalid_total", "hybrid_site_log_lines_lost_total"))

	mfs, err := reg.Gather()
	require.NoError(t, err)
	var hist string
	for _, mf := range mfs {
		if mf.GetName() == "hybrid_site_http_request_duration_seconds" {
			for _, m := range mf.Metric {
				if m.Label[0].GetValue() == "a.example.com" {
					h := m.Histogram
					hist = fmt.Sprintf("count=%d sum=%.3f le0.005=%d le0.25=%d le1=%d le2.5=%d",
						h.GetSampleCount(), h.GetSampleSum(), h.Bucket[0].GetCumulativeCount(),
						h.Bucket[5].GetCumulativeCount(), h.Bucket[7].GetCumulativeCount(), h.Bucket[8].GetCumulativeCount())
				}
			}
		}
	}
	require.Equal(t, "count=5 sum=1.623 le0.005=3 le0.25=4 le1=4 le2.5=5", hist)

	cpu, err := c.ReaderCPU()
	require.NoError(t, err)
	require.Positive(t, cpu)

	// A site no longer served leaves; its Host counts as _other from then on.
	c.SetSites([]string{"a.example.com"})
	send(t, c.sock.path, hdr+"200 0.000 9 1 HTTP/1.1 b.example.com")
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.other.codes[200] == 1
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close())
	c.Wait()
	require.NoFileExists(t, c.sock.path)
}

func TestNew_StaleSocket_Replaced_OtherFile_Refused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	c, err := New(Options{Socket: path, GID: -1})
	require.NoError(t, err)
	// Not closed: the file stays, as after a crash.
	c2, err := New(Options{Socket: path, GID: -1})
	require.NoError(t, err)
	c2.Close()
	c.Close()

	require.NoError(t, os.WriteFile(path, []byte("x"), 0o644))
	_, err = New(Options{Socket: path, GID: -1})
	require.ErrorContains(t, err, "is not a socket")

	_, err = New(Options{Socket: "relative.sock", GID: -1})
	require.ErrorContains(t, err, `"relative.sock": must be an absolute path`)
}

func TestClose_NeverStarted_ReleasesSocket(t *testing.T) {
	c, err := New(Options{Socket: filepath.Join(t.TempDir(), "s.sock"), GID: -1})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	c.Wait()
	require.NoFileExists(t, c.Socket())
	c.Start(t.Context()) // after Close: nothing to run
	require.NoError(t, c.Close())
}

// The host's net.unix.max_dgram_qlen may be 10: the socket gets a longer
// queue, and the setting is left as it was.
func TestNew_AsRoot_QueueLongerThanHostSetting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising the queue length needs root")
	}
	before, err := os.ReadFile(qlenSysctl)
	require.NoError(t, err)
	c := newTestCollector(t) // not started: nothing reads
	after, err := os.ReadFile(qlenSysctl)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after))

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.Connect(fd, &unix.SockaddrUnix{Name: c.Socket()}))
	line := []byte("<190>Dec  4 14:40:00 hybrid: v1 200 0.000 1 1 HTTP/1.1 a.example.com")
	for i := range 200 {
		require.NoError(t, unix.Send(fd, line, 0), "datagram %d", i)
	}
}

// An agent killed between raising the host's queue length and setting it
// back left the old value in the lock file: the next socket sets it back.
func TestNew_AsRoot_EarlierAgentKilledMidRaise_HostSettingRestored(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing the queue length needs root")
	}
	raw, err := os.ReadFile(qlenSysctl)
	require.NoError(t, err)
	orig := strings.TrimSpace(string(raw))
	t.Cleanup(func() { _ = os.WriteFile(qlenSysctl, []byte(orig), 0o644) })
	origN, err := strconv.Atoi(orig)
	require.NoError(t, err)
	lock := lockQlen()
	require.NotNil(t, lock)
	require.NoError(t, writeLockValue(lock, orig)) // what the killed agent meant to restore
	require.NoError(t, lock.Close())
	require.NoError(t, os.WriteFile(qlenSysctl, []byte(strconv.Itoa(origN+4000)), 0o644))

	newTestCollector(t)

	now, err := os.ReadFile(qlenSysctl)
	require.NoError(t, err)
	require.Equal(t, orig, strings.TrimSpace(string(now)))
	left, err := os.ReadFile(qlenLock)
	require.NoError(t, err)
	require.Empty(t, strings.TrimSpace(string(left)), "nothing left to restore")
}
