package mariadb

import (
	"cmp"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// processlistQuery groups the server's threads in the server, so the result
// has one row per (command, state) however many connections there are. The
// exporter's own connection is left out.
const processlistQuery = `SELECT COALESCE(COMMAND, ''), COALESCE(STATE, ''), COUNT(*), COALESCE(SUM(TIME), 0)
FROM information_schema.PROCESSLIST
WHERE ID != CONNECTION_ID()
GROUP BY COMMAND, STATE`

// processlist exports mysqld_exporter's info_schema.processlist summary:
// threads and the seconds they have spent, by command and state. Reading
// information_schema.PROCESSLIST needs the PROCESS privilege to see other
// users' threads.
type processlist struct {
	threads *prometheus.Desc
	seconds *prometheus.Desc
}

func newProcesslist() *processlist {
	return &processlist{
		threads: prometheus.NewDesc("mysql_info_schema_processlist_threads",
			"The number of threads split by current state.", []string{"command", "state"}, nil),
		seconds: prometheus.NewDesc("mysql_info_schema_processlist_seconds",
			"The number of seconds threads have used split by current state.", []string{"command", "state"}, nil),
	}
}

type threadGroup struct {
	command, state string
	threads        float64
	seconds        float64
}

func (p *processlist) statement() string { return processlistQuery }

func (p *processlist) failed(err error) error {
	return fmt.Errorf("read information_schema.PROCESSLIST: %w", err)
}

func (p *processlist) read(rows *sql.Rows, emit func(prometheus.Metric)) error {
	// Different raw states can sanitize to the same label value: sum them.
	groups := map[[2]string]*threadGroup{}
	for rows.Next() {
		var (
			command, state string
			threads        int64
			seconds        float64
		)
		if err := rows.Scan(&command, &state, &threads, &seconds); err != nil {
			return err
		}
		key := [2]string{sanitizeState(command), sanitizeState(state)}
		g, ok := groups[key]
		if !ok {
			g = &threadGroup{command: key[0], state: key[1]}
			groups[key] = g
		}
		g.threads += float64(threads)
		g.seconds += seconds
	}
	if err := rows.Err(); err != nil {
		return err
	}
	sorted := make([]*threadGroup, 0, len(groups))
	for _, g := range groups {
		sorted = append(sorted, g)
	}
	slices.SortFunc(sorted, func(a, b *threadGroup) int {
		return cmp.Or(strings.Compare(a.command, b.command), strings.Compare(a.state, b.state))
	})
	for _, g := range sorted {
		emit(prometheus.MustNewConstMetric(p.threads, prometheus.GaugeValue, g.threads, g.command, g.state))
		emit(prometheus.MustNewConstMetric(p.seconds, prometheus.GaugeValue, g.seconds, g.command, g.state))
	}
	return nil
}

// sanitizeState makes a command or state a label value as mysqld_exporter
// does: "Waiting for table metadata lock" becomes
// "waiting_for_table_metadata_lock", an empty one "unknown".
func sanitizeState(s string) string {
	if s == "" {
		return "unknown"
	}
	return stateReplacer.Replace(strings.ToLower(s))
}

// stateReplacer is built once: a Replacer is immutable and safe for
// concurrent use.
var stateReplacer = strings.NewReplacer(
	";", "", ",", "", ":", "", ".", "", "(", "", ")", "",
	" ", "_", "-", "_",
)
