package mariadb

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
)

// Why a scrape could not reach the server. They tell "MariaDB is down" (page:
// every site fails) from "MariaDB is up but refuses the exporter's login"
// (warn: the sites are fine, the monitoring is blind).
const (
	// reasonUnreachable: nothing answered (connection refused, reset, no
	// route, the socket missing).
	reasonUnreachable = "unreachable"
	// reasonAccessDenied: the server answered and refused the login or the
	// host (errors 1044, 1045, 1130, 1698).
	reasonAccessDenied = "access_denied"
	// reasonTimeout: no answer within the query timeout.
	reasonTimeout = "timeout"
	// reasonOther: anything else, e.g. too many connections (1040).
	reasonOther = "other"
)

var connectReasons = [...]string{reasonUnreachable, reasonAccessDenied, reasonTimeout, reasonOther}

// connectErrors counts failed connections by reason; every reason is sent
// from the first scrape on, at 0, so increase() sees the first failure.
type connectErrors struct {
	desc   *prometheus.Desc
	counts [len(connectReasons)]atomic.Uint64
}

func newConnectErrors() *connectErrors {
	return &connectErrors{desc: prometheus.NewDesc("hybrid_mariadb_connect_errors_total",
		"Scrapes that could not reach MariaDB, by reason: unreachable, access_denied (the server is up but refuses the exporter's login), timeout, other.",
		[]string{"reason"}, nil)}
}

// add counts err and returns its reason.
func (c *connectErrors) add(err error) string {
	reason := connectReason(err)
	for i, r := range connectReasons {
		if r == reason {
			c.counts[i].Add(1)
		}
	}
	return reason
}

func (c *connectErrors) collect(emit func(prometheus.Metric)) {
	for i, r := range connectReasons {
		emit(prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.counts[i].Load()), r))
	}
}

// connectReason classifies a failed connection by the error's type and the
// server's error number, never by its text.
func connectReason(err error) string {
	var server *mysql.MySQLError
	if errors.As(err, &server) {
		switch server.Number {
		case 1044, 1045, 1130, 1698:
			return reasonAccessDenied
		}
		return reasonOther
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return reasonTimeout
	case errors.As(err, new(*net.OpError)), errors.Is(err, mysql.ErrInvalidConn):
		return reasonUnreachable
	}
	return reasonOther
}
