package host

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/node_exporter/collector"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/exporters"
)

// node_exporter's own netstat collector reads the same fixture files (the
// process's flags point it there), with the same field pattern.
func TestNetstat_SameAsNodeExporter(t *testing.T) {
	node, err := collector.NewNetStatCollector(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	want := gatherText(t, collectorFunc{t: t, c: &nodeCollector{name: netstatName, c: node, logger: slog.New(slog.DiscardHandler)}})
	require.Contains(t, string(want), "node_netstat_Tcp_CurrEstab")
	require.Contains(t, string(want), "node_netstat_Ip6_InOctets")

	ours := fixtureHost.Collectors()[netstatName]
	require.IsType(t, &netstatCollector{}, ours)
	for range 2 { // the second update reuses the open files and the fields
		require.NoError(t, testutil.GatherAndCompare(registryOf(t, ours), bytes.NewReader(want)))
	}
}

// netstatFixture writes net/netstat, net/snmp and, unless empty, net/snmp6.
func netstatFixture(t *testing.T, netstat, snmp, snmp6 string) *netstatCollector {
	t.Helper()
	procFS := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(procFS, "net"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(procFS, "net/netstat"), []byte(netstat), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(procFS, "net/snmp"), []byte(snmp), 0o644))
	if snmp6 != "" {
		require.NoError(t, os.WriteFile(filepath.Join(procFS, "net/snmp6"), []byte(snmp6), 0o644))
	}
	c, err := newNetstatCollector(procFS, nodeFlag("collector.netstat.fields"))
	require.NoError(t, err)
	t.Cleanup(c.close)
	return c
}

func netstatSeries(t *testing.T, c exporters.Collector) string {
	t.Helper()
	var lines []string
	for l := range strings.Lines(string(gatherText(t, collectorFunc{t: t, c: c}))) {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "\n")
}

func TestNetstat_LaterFileReplacesProtocol_NoSNMP6(t *testing.T) {
	c := netstatFixture(t,
		"TcpExt: ListenDrops TCPTimeouts\nTcpExt: 3 4\nTcp: CurrEstab InSegs\nTcp: 1 2\n",
		"Tcp: CurrEstab MaxConn\nTcp: 7 -1\nUdp: InDatagrams NoPorts\nUdp: 5 6\n",
		"")
	// Tcp from snmp replaces Tcp from netstat: no InSegs; MaxConn is not a
	// field the pattern selects.
	want := "node_netstat_TcpExt_ListenDrops 3\nnode_netstat_TcpExt_TCPTimeouts 4\nnode_netstat_Tcp_CurrEstab 7\n" +
		"node_netstat_Udp_InDatagrams 5\nnode_netstat_Udp_NoPorts 6"
	require.Equal(t, want, netstatSeries(t, c))
	require.Equal(t, want, netstatSeries(t, c))
}

func TestNetstat_SNMP6_ProtocolUpToTheSix(t *testing.T) {
	c := netstatFixture(t, "", "Udp: InDatagrams\nUdp: 5\n",
		"Ip6InOctets    \t100\nIcmp6InMsgs 2\nUdp6InDatagrams 9\nUdpLite6InDatagrams 1\nnonsense\nNoSixHere 3\n")
	require.Equal(t, "node_netstat_Icmp6_InMsgs 2\nnode_netstat_Ip6_InOctets 100\n"+
		"node_netstat_Udp6_InDatagrams 9\nnode_netstat_Udp_InDatagrams 5", netstatSeries(t, c))
}

func TestNetstat_BadFiles_Fail(t *testing.T) {
	for name, files := range map[string][3]string{
		"value not a number": {"Tcp: CurrEstab InSegs\nTcp: 1 x\n", "", ""},
		"field count":        {"", "Tcp: CurrEstab InSegs\nTcp: 1\n", ""},
	} {
		t.Run(name, func(t *testing.T) {
			c := netstatFixture(t, files[0], files[1], files[2])
			require.Error(t, c.Update(context.Background(), make(chan prometheus.Metric, 64)))
		})
	}
	c, err := newNetstatCollector(t.TempDir(), nodeFlag("collector.netstat.fields"))
	require.NoError(t, err)
	require.ErrorContains(t, c.Update(context.Background(), make(chan prometheus.Metric, 64)), "net/netstat")
}

func TestParseNetstatValue_AsParseFloat(t *testing.T) {
	for _, in := range []string{"0", "42", "-1", "007", "123456789012345", "1234567890123456789012", "1e3", "-0"} {
		got, err := parseNetstatValue([]byte(in))
		require.NoError(t, err, in)
		require.Equal(t, mustParseFloat(t, in), got, in)
	}
	_, err := parseNetstatValue([]byte("x"))
	require.Error(t, err)
	_, err = parseNetstatValue(nil)
	require.Error(t, err)
}

func mustParseFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return v
}
