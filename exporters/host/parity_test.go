package host

import (
	"bufio"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/exporters"
)

// readNames reads a names file: one metric name a line, # comments.
func readNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestHost_NodeExporterFullDashboard_ExposedNamesNeverShrink gathers every
// host collector as the agent serves them (through exporters.Set, with the
// node_scrape_collector_* names, and the process collector) and checks which
// of the names that Grafana's "Node Exporter Full" dashboard queries are
// exposed. testdata/node-exporter-full.exposed is the list it must keep: a
// name that goes missing fails, and a name newly exposed must be added with
// -update, so the list only grows.
func TestHost_NodeExporterFullDashboard_ExposedNamesNeverShrink(t *testing.T) {
	dashboard := readNames(t, "testdata/node-exporter-full.names")
	require.Greater(t, len(dashboard), 200, "the dashboard's name list")

	set := exporters.NewSet(slog.New(slog.DiscardHandler), 10*time.Second, fixtureHost.Collectors(),
		exporters.AlsoAsNode(fixtureHost.NodeCollectorNames()...))
	reg := prometheus.NewRegistry()
	reg.MustRegister(set, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	exposed := map[string]bool{}
	for _, mf := range mfs {
		exposed[mf.GetName()] = true
	}
	var now []string
	for _, name := range dashboard {
		if exposed[name] {
			now = append(now, name)
		}
	}

	const baseline = "testdata/node-exporter-full.exposed"
	if *update {
		header := "# names of testdata/node-exporter-full.names the host collectors expose on the fixture trees;\n" +
			"# TestHost_NodeExporterFullDashboard_ExposedNamesNeverShrink fails when one goes missing\n"
		require.NoError(t, os.WriteFile(baseline, []byte(header+strings.Join(now, "\n")+"\n"), 0o644))
	}
	kept := readNames(t, baseline)
	var lost []string
	for _, name := range kept {
		if !slices.Contains(now, name) {
			lost = append(lost, name)
		}
	}
	require.Empty(t, lost, "names of Node Exporter Full no longer exposed")
	var gained []string
	for _, name := range now {
		if !slices.Contains(kept, name) {
			gained = append(gained, name)
		}
	}
	require.Empty(t, gained, "newly exposed: run go test ./exporters/host -update to keep them in %s", baseline)
	t.Logf("%d of the dashboard's %d names exposed", len(now), len(dashboard))

	for _, name := range []string{
		"node_scrape_collector_duration_seconds", "node_scrape_collector_success", "node_arp_entries",
		"node_entropy_available_bits", "node_entropy_pool_size_bits", "node_softnet_processed_total",
		"node_softnet_dropped_total", "node_softnet_times_squeezed_total", "node_textfile_scrape_error",
		"node_udp_queues",
	} {
		require.True(t, exposed[name], "%s: node_exporter 1.5 exposes it on this kind of machine", name)
	}
}
