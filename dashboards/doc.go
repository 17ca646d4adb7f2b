// Package dashboards builds the suite's Grafana dashboards as code, with the
// grafana-foundation-sdk, and renders them to the JSON files committed beside
// it (host.json, mariadb.json, ...), which are what people import into
// Grafana 10 or later. The JSON is generated (go run ./dashboards/cmd/gen -out
// dashboards) and a test fails when it drifts from the code.
//
// Conventions every dashboard follows, because import and the tests rely on
// them:
//
//   - a data source variable named datasource (type prometheus), and every
//     panel and query pointing at ${datasource}, so the JSON imports into any
//     Grafana whatever its data source is called;
//   - template variables are multi-value with an "All" value of .+, and queries
//     use them only in regex matchers (instance=~"$instance"), so any
//     selection, and SubstituteVariables' stand-in value, are valid PromQL;
//   - expanded rows, with their panels following the row at the top level:
//     Grafana ignores the panels nested in a row that is not collapsed;
//   - nothing that changes between runs (no ids from Grafana, no timestamps),
//     so regenerating is byte-identical.
package dashboards
