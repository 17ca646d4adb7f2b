package mariadb

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// globalVariables exports the numeric rows of SHOW GLOBAL VARIABLES as
// mysql_global_variables_* gauges (settings such as max_connections and
// innodb_buffer_pool_size), and mysql_version_info from its text rows, as
// mysqld_exporter does.
type globalVariables struct {
	generic     *descCache
	versionInfo *prometheus.Desc
}

func newGlobalVariables() *globalVariables {
	return &globalVariables{
		generic: newDescCache("mysql_global_variables_", "Generic gauge metric from SHOW GLOBAL VARIABLES."),
		versionInfo: prometheus.NewDesc("mysql_version_info", "MySQL version and distribution.",
			[]string{"innodb_version", "version", "version_comment"}, nil),
	}
}

func (g *globalVariables) scrape(ctx context.Context, db *sql.DB, emit func(prometheus.Metric)) error {
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL VARIABLES")
	if err != nil {
		return fmt.Errorf("show global variables: %w", err)
	}
	defer rows.Close()
	var (
		name string
		raw  sql.RawBytes
	)
	text := map[string]string{"innodb_version": "", "version": "", "version_comment": ""}
	for rows.Next() {
		if err := rows.Scan(&name, &raw); err != nil {
			return fmt.Errorf("show global variables: %w", err)
		}
		name = metricName(name)
		if _, wanted := text[name]; wanted {
			text[name] = string(raw)
		}
		if v, ok := parseValue(raw); ok {
			emit(prometheus.MustNewConstMetric(g.generic.get(name), prometheus.GaugeValue, v))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("show global variables: %w", err)
	}
	emit(prometheus.MustNewConstMetric(g.versionInfo, prometheus.GaugeValue, 1,
		text["innodb_version"], text["version"], text["version_comment"]))
	return nil
}
