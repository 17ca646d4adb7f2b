package host

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
)

func gatherCollector(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var out bytes.Buffer
	enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		require.NoError(t, enc.Encode(mf))
	}
	return out.String()
}

// This process, read by both: the same lines, and each value between
// client_golang's before and after (the CPU time, memory and traffic move).
func TestSelfCollector_SameAsClientGolang(t *testing.T) {
	ours := NewSelfCollector("")
	t.Cleanup(ours.Close)
	theirs := collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
	var diff string
	for range 5 {
		before := gatherCollector(t, theirs)
		got := gatherCollector(t, ours)
		after := gatherCollector(t, theirs)
		if diff = selfDiff(before, got, after); diff == "" {
			require.Contains(t, got, "process_open_fds ")
			require.Contains(t, got, "process_start_time_seconds ")
			require.Contains(t, got, "process_network_receive_bytes_total ")
			return
		}
	}
	t.Fatal(diff)
}

func selfDiff(before, got, after string) string {
	b, g, a := strings.Split(before, "\n"), strings.Split(got, "\n"), strings.Split(after, "\n")
	if len(g) != len(b) || len(g) != len(a) {
		return "ours:\n" + got + "\nclient_golang's:\n" + before
	}
	for i := range g {
		if g[i] == b[i] || g[i] == a[i] {
			continue
		}
		gn, gv, _ := strings.Cut(g[i], " ")
		bn, bv, _ := strings.Cut(b[i], " ")
		_, av, _ := strings.Cut(a[i], " ")
		x, _ := strconv.ParseFloat(gv, 64)
		lo, _ := strconv.ParseFloat(bv, 64)
		hi, _ := strconv.ParseFloat(av, 64)
		if strings.HasPrefix(g[i], "#") || gn != bn || x < min(lo, hi) || x > max(lo, hi) {
			return "line " + g[i] + ", client_golang's " + b[i] + " and " + a[i]
		}
	}
	return ""
}

func TestSelfCollector_Close_ReopensOnNextCollect(t *testing.T) {
	c := NewSelfCollector("")
	first := gatherCollector(t, c)
	c.Close()
	require.Equal(t, strings.Count(first, "\n"), strings.Count(gatherCollector(t, c), "\n"))
	c.Close()
}

// The count taken from the folder's size, when the kernel gives it, is the
// number of entries a listing finds.
func TestSelfCollector_OpenFDs_SizeIsListingCount(t *testing.T) {
	c := NewSelfCollector("")
	t.Cleanup(c.Close)
	n, err := c.countFDs()
	require.NoError(t, err)
	listed := 0
	require.NoError(t, readDir(c.fds.fd, &c.fds.buf, func([]byte, uint8) { listed++ }))
	require.Equal(t, listed, n)
	require.Greater(t, n, 3)
}
