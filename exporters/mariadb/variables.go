package mariadb

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// globalVariables exports the numeric rows of SHOW GLOBAL VARIABLES as
// mysql_global_variables_* gauges (settings such as max_connections and
// innodb_buffer_pool_size), and mysql_version_info from its text rows, as
// mysqld_exporter does.
//
// Settings almost never change, and the statement returns some 600 rows, the
// larger part of a scrape's work. So it is read at most once per interval
// (Options.VariablesInterval, a minute by default) and the scrapes in between
// send the metrics of the last read: a SET GLOBAL shows within the interval.
// It is read again at once, whatever the interval, when the server restarted
// since the last read (its Uptime went back; a restart is when read-only
// settings and the version change) or was unreachable in between, and after a
// read that failed, which leaves no metrics to send.
type globalVariables struct {
	interval    time.Duration
	now         func() time.Time
	uptime      func() float64 // the server's Uptime in this scrape, -1 if unknown
	generic     *descCache
	versionInfo *prometheus.Desc

	// Used by one scrape at a time (Update is single-flight).
	metrics  []prometheus.Metric // of the last read, nil if none is valid; never modified
	readAt   time.Time
	uptimeAt float64 // the server's Uptime at the last read, -1 if unknown
}

func newGlobalVariables(interval time.Duration, now func() time.Time, uptime func() float64) *globalVariables {
	return &globalVariables{
		interval: interval,
		now:      now,
		uptime:   uptime,
		generic:  newDescCache("mysql_global_variables_", "Generic gauge metric from SHOW GLOBAL VARIABLES."),
		versionInfo: prometheus.NewDesc("mysql_version_info", "MySQL version and distribution.",
			[]string{"innodb_version", "version", "version_comment"}, nil),
	}
}

// invalidate makes the next scrape read the variables again.
func (g *globalVariables) invalidate() { g.metrics = nil }

// statement is SHOW GLOBAL VARIABLES when the metrics kept are too old, or
// none are, or the server restarted since they were read.
func (g *globalVariables) statement() string {
	uptime := g.uptime()
	restarted := uptime >= 0 && g.uptimeAt >= 0 && uptime < g.uptimeAt
	if g.metrics == nil || restarted || g.now().Sub(g.readAt) >= g.interval {
		return "SHOW GLOBAL VARIABLES"
	}
	return ""
}

func (g *globalVariables) failed(err error) error {
	g.metrics = nil
	return fmt.Errorf("show global variables: %w", err)
}

// read builds the metrics from the statement's rows and keeps them, or sends
// the ones kept when rows is nil.
func (g *globalVariables) read(rows *sql.Rows, emit func(prometheus.Metric)) error {
	if rows != nil {
		g.metrics = nil
		metrics, err := g.parse(rows)
		if err != nil {
			return err
		}
		g.metrics, g.readAt, g.uptimeAt = metrics, g.now(), g.uptime()
	}
	for _, m := range g.metrics {
		emit(m)
	}
	return nil
}

func (g *globalVariables) parse(rows *sql.Rows) ([]prometheus.Metric, error) {
	var (
		name    string
		raw     sql.RawBytes
		metrics []prometheus.Metric
	)
	text := map[string]string{"innodb_version": "", "version": "", "version_comment": ""}
	for rows.Next() {
		if err := rows.Scan(&name, &raw); err != nil {
			return nil, err
		}
		name = metricName(name)
		if _, wanted := text[name]; wanted {
			text[name] = string(raw)
		}
		if v, ok := parseValue(raw); ok {
			metrics = append(metrics, prometheus.MustNewConstMetric(g.generic.get(name), prometheus.GaugeValue, v))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	metrics = append(metrics, prometheus.MustNewConstMetric(g.versionInfo, prometheus.GaugeValue, 1,
		text["innodb_version"], text["version"], text["version_comment"]))
	return metrics, nil
}
