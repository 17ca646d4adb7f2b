package mariadb

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
)

// errSpecificAccessDenied is ER_SPECIFIC_ACCESS_DENIED_ERROR: "you need (at
// least one of) the ... privilege(s) for this operation".
const errSpecificAccessDenied = 1227

// replicaStatus exports SHOW ALL SLAVES STATUS as mysql_slave_status_*, one
// gauge per numeric column (Seconds_Behind_Master, Slave_IO_Running and
// Slave_SQL_Running as 1/0, ...) for each replication connection, labelled as
// mysqld_exporter labels them. MariaDB names a connection Connection_name
// where MySQL says Channel_Name: both labels carry it, so rules written for
// either work. A server that replicates from nowhere has no series.
//
// Since MariaDB 10.5.9 the statement needs the SLAVE MONITOR privilege,
// which mysqld_exporter's documented grant (PROCESS, REPLICATION CLIENT,
// SELECT) lacks. Without it the replica metrics are skipped and the reason
// logged once, rather than failing every scrape of a server that likely has
// no replicas.
type replicaStatus struct {
	logger  *slog.Logger
	generic *descCache

	mu     sync.Mutex
	denied bool // last attempt lacked the privilege
}

func newReplicaStatus(logger *slog.Logger) *replicaStatus {
	return &replicaStatus{
		logger: logger,
		generic: newDescCache("mysql_slave_status_", "Generic metric from SHOW SLAVE STATUS.",
			"master_host", "master_uuid", "channel_name", "connection_name"),
	}
}

func (r *replicaStatus) statement() string { return "SHOW ALL SLAVES STATUS" }

func (r *replicaStatus) failed(err error) error {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == errSpecificAccessDenied {
		r.setDenied(true, myErr)
		return nil
	}
	return fmt.Errorf("show all slaves status: %w", err)
}

func (r *replicaStatus) read(rows *sql.Rows, emit func(prometheus.Metric)) error {
	r.setDenied(false, nil)
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	values := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range values {
		dest[i] = &values[i]
	}
	column := func(name string) string {
		for i, c := range cols {
			if c == name {
				return string(values[i])
			}
		}
		return ""
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		connection := column("Connection_name")
		channel := column("Channel_Name") // MySQL; empty on MariaDB
		if channel == "" {
			channel = connection
		}
		labels := []string{column("Master_Host"), column("Master_UUID"), channel, connection}
		for i, col := range cols {
			v, ok := parseValue(values[i]) // NULL (Seconds_Behind_Master when stopped) is skipped
			if !ok {
				continue
			}
			emit(prometheus.MustNewConstMetric(r.generic.get(metricName(col)), prometheus.GaugeValue, v, labels...))
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return nil
}

// setDenied logs when the privilege goes missing, once, and when it is back.
func (r *replicaStatus) setDenied(denied bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if denied == r.denied {
		return
	}
	r.denied = denied
	if denied {
		r.logger.Warn("mariadb: replica status skipped: the exporter's user lacks the SLAVE MONITOR privilege (GRANT SLAVE MONITOR ON *.* TO ...)",
			"err", err)
		return
	}
	r.logger.Info("mariadb: replica status readable again")
}
