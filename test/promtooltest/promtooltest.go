// Package promtooltest runs Debian's `promtool check metrics` on a scrape in
// tests. promtool is required: without it a test is skipped, except in CI
// (CI=true), where a missing promtool is a failure.
package promtooltest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// lintProblems is promtool's exit code when the text parsed but the linter
// found problems; 1 means it could not check at all.
const lintProblems = 3

// Problem is one line of promtool's report: the metric it names and what it says.
type Problem struct {
	Metric, Text string
}

// CheckMetrics returns every problem `promtool check metrics` reports on exposition.
func CheckMetrics(t testing.TB, exposition []byte) []Problem {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found: `make test` installs it (Debian package prometheus) through scripts/deps.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == lintProblems) {
		t.Fatalf("promtool check metrics could not check the exposition: %v\n%s", err, out)
	}
	var problems []Problem
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		metric, text, _ := strings.Cut(line, " ")
		problems = append(problems, Problem{Metric: metric, Text: text})
	}
	return problems
}

// compatPrefixes are names we keep identical to node_exporter's and
// mysqld_exporter's, so that existing dashboards and rules keep working, even
// where promtool's naming lint disagrees with them (camelCase from
// /proc/net/netstat, MariaDB status counters without _total, MariaDB variable
// names with _count or days). promtool reports the same on those exporters.
var compatPrefixes = []string{"node_", "mysql_global_status_", "mysql_global_variables_"}

// Unexplained drops the naming-lint problems of names kept for compatibility
// and returns the rest: parse errors, and any problem of our own names.
func Unexplained(problems []Problem) []Problem {
	var rest []Problem
	for _, p := range problems {
		if isNamingLint(p.Text) && hasCompatPrefix(p.Metric) {
			continue
		}
		rest = append(rest, p)
	}
	return rest
}

func isNamingLint(text string) bool {
	for _, s := range []string{
		`counter metrics should have "_total" suffix`,
		`metric names should be written in 'snake_case'`,
		`non-histogram and non-summary metrics should not have "_count" suffix`,
		`use base unit`,
		`metric name should not include type`,
	} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

func hasCompatPrefix(metric string) bool {
	for _, p := range compatPrefixes {
		if strings.HasPrefix(metric, p) {
			return true
		}
	}
	return false
}
