package promtooltest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckMetrics_ReportsOurNamingProblems_KeepsCompatNames(t *testing.T) {
	exposition := []byte(`# HELP hybrid_bad_requests Requests, a counter without _total.
# TYPE hybrid_bad_requests counter
hybrid_bad_requests 1
# HELP mysql_global_status_queries Kept as mysqld_exporter names it.
# TYPE mysql_global_status_queries counter
mysql_global_status_queries 5
# HELP hybrid_good_total A good counter.
# TYPE hybrid_good_total counter
hybrid_good_total 1
`)
	problems := CheckMetrics(t, exposition)
	require.Len(t, problems, 2, "promtool flags both counters without _total: %v", problems)
	rest := Unexplained(problems)
	require.Len(t, rest, 1)
	require.Equal(t, "hybrid_bad_requests", rest[0].Metric)
}
