// Package depsanchor keeps the control core's libraries in go.mod while their
// packages are being written. Delete it once rules/, alerting/ and dashboards/ import them.
package depsanchor

import (
	_ "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	_ "github.com/prometheus/alertmanager/api/v2/client"
	_ "github.com/prometheus/alertmanager/config"
	_ "github.com/prometheus/prometheus/config"
	_ "github.com/prometheus/prometheus/promql"
	_ "github.com/prometheus/prometheus/rules"
	_ "github.com/prometheus/prometheus/scrape"
	_ "github.com/prometheus/prometheus/tsdb"
	_ "github.com/prometheus/prometheus/util/teststorage"
)
