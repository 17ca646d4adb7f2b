// Package rules loads Prometheus rule files and runs their unit tests.
//
// Rule files are ordinary Prometheus rule files, so the same files load into
// an external Prometheus, Thanos or Mimir. Check reports every problem in them
// as file:line: reason. RunTestFile runs a test file in the format of
// `promtool test rules` with the Prometheus engine used as a library, so the
// control core can test its rules without promtool installed; the package's
// tests hold both to the same verdicts.
package rules
