// Package exporters runs the agent's collectors. Each sub-package (host, mariadb,
// bench, agentjobs, sitelog) provides collectors; a Set runs them concurrently on every
// scrape, each under its own deadline, and reports for each one
// hybrid_exporter_collector_success and hybrid_exporter_collector_duration_seconds,
// so that one failing or slow collector never fails the scrape.
package exporters
