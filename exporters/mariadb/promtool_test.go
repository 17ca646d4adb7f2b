package mariadb

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/exporters"
	"github.com/hybridsuite/hybrid/test/promtooltest"
)

// exposition is the text format of one real scrape through the framework's
// Set, as the agent serves it.
func exposition(t *testing.T, c *Collector) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(exporters.NewSet(discardLogger(), 10*time.Second, map[string]exporters.Collector{"mariadb": c}))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		require.NoError(t, enc.Encode(mf))
	}
	return buf.Bytes()
}

func TestPromtool_RealScrape_NoProblemsBeyondKeptMysqldExporterNames(t *testing.T) {
	c, srv := exporterCollector(t)
	srv.Exec(t, "CREATE DATABASE promtool_site", "CREATE TABLE promtool_site.t (id INT PRIMARY KEY)")
	t.Cleanup(func() { srv.Exec(t, "DROP DATABASE promtool_site") })
	refresh(t, c)
	text := exposition(t, c)
	require.Contains(t, string(text), `hybrid_exporter_collector_success{collector="mariadb"} 1`)
	require.Contains(t, string(text), `hybrid_mariadb_database_size_bytes{database="promtool_site"}`)

	problems := promtooltest.CheckMetrics(t, text)
	require.NotEmpty(t, problems, "promtool lints mysqld_exporter's status names; none means it did not run")
	require.Empty(t, promtooltest.Unexplained(problems))
	t.Logf("promtool: %d warnings on names kept from mysqld_exporter, no other problem", len(problems))
}
