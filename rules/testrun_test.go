package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRunTestFile_PassingCases_NoFailures(t *testing.T) {
	failures, err := RunTestFile(t.Context(), "testdata/host_test.yml")
	require.NoError(t, err)
	require.Empty(t, failures, "%v", failures)
}

func TestRunTestFile_WrongExpectedLabels_ReportsFailureNamingIt(t *testing.T) {
	failures, err := RunTestFile(t.Context(), "testdata/fail/wrong_labels_test.yml")
	require.NoError(t, err)
	require.Len(t, failures, 1)
	f := failures[0]
	require.Equal(t, 0, f.Test)
	require.Equal(t, "wrong severity expected", f.TestName)
	require.Equal(t, "alert_rule_test[0]", f.Check)
	require.Equal(t, "HostDown", f.Alertname)
	require.Equal(t, 3*time.Minute, f.EvalTime)
	require.Equal(t, `testdata/fail/wrong_labels_test.yml: tests[0] "wrong severity expected": alert_rule_test[0]: alertname "HostDown" at eval_time 3m: alerts differ
  expected (1):
  - {alertname="HostDown", instance="b", job="hybrid", severity="warning"} annotations {runbook_url="/runbooks/HostDown", summary="b is down"}
  got (1):
  + {alertname="HostDown", instance="b", job="hybrid", severity="critical"} annotations {runbook_url="/runbooks/HostDown", summary="b is down"}`,
		f.String())
}

// writeTestFile writes a test file into a temporary folder beside a copy of
// testdata/host.yml, and returns its path.
func writeTestFile(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	host, err := os.ReadFile("testdata/host.yml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "host.yml"), host, 0o600))
	path := filepath.Join(dir, "case_test.yml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestRunTestFile_WrongSampleValue_ReportsExpectedAndGot(t *testing.T) {
	path := writeTestFile(t, `
rule_files: [host.yml]
tests:
  - interval: 1m
    input_series:
      - series: node_memory_MemTotal_bytes{instance="a"}
        values: 1000 1000
      - series: node_memory_MemAvailable_bytes{instance="a"}
        values: 500 250
    promql_expr_test:
      - expr: instance:node_memory_available:ratio
        eval_time: 1m
        exp_samples:
          - labels: instance:node_memory_available:ratio{instance="a"}
            value: 0.5
          - labels: instance:node_memory_available:ratio{instance="b"}
            value: 0.5
`)
	failures, err := RunTestFile(t.Context(), path)
	require.NoError(t, err)
	require.Len(t, failures, 1)
	f := failures[0]
	require.Equal(t, "promql_expr_test[0]", f.Check)
	require.Equal(t, "instance:node_memory_available:ratio", f.Expr)
	require.Equal(t, []string{
		`{__name__="instance:node_memory_available:ratio", instance="a"} 0.5`,
		`{__name__="instance:node_memory_available:ratio", instance="b"} 0.5`,
	}, f.Expected)
	require.Equal(t, []string{`{__name__="instance:node_memory_available:ratio", instance="a"} 0.25`}, f.Got)
	require.Contains(t, f.String(), `at eval_time 1m: samples differ`)
}

func TestRunTestFile_FloatRounding_WithinTolerance(t *testing.T) {
	path := writeTestFile(t, `
rule_files: [host.yml]
tests:
  - interval: 1m
    promql_expr_test:
      - expr: 0.1 + 0.2
        eval_time: 0m
        exp_samples:
          - labels: '{}'
            value: 0.3
      - expr: vector(0.1 + 0.2) - 0.3
        eval_time: 0m
        exp_samples:
          - labels: '{}'
            value: 0
`)
	failures, err := RunTestFile(t.Context(), path)
	require.NoError(t, err)
	require.Empty(t, failures, "%v", failures)
}

func TestRunTestFile_RuleFailsToEvaluate_ReportsFailure(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dup.yml"), []byte(`
groups:
  - name: dup
    rules:
      - alert: Duplicate
        expr: '{__name__=~"a|b"}'
`), 0o600))
	path := filepath.Join(dir, "dup_test.yml")
	require.NoError(t, os.WriteFile(path, []byte(`
rule_files: [dup.yml]
tests:
  - interval: 1m
    input_series:
      - series: a{instance="x"}
        values: 1
      - series: b{instance="x"}
        values: 1
    alert_rule_test:
      - eval_time: 1m
        alertname: Duplicate
        exp_alerts: []
`), 0o600))
	failures, err := RunTestFile(t.Context(), path)
	require.NoError(t, err)
	require.Len(t, failures, 1)
	require.Equal(t, "rules", failures[0].Check)
	require.Equal(t, time.Duration(0), failures[0].EvalTime)
	require.Contains(t, failures[0].Reason, `group "dup", rule "Duplicate" failed: vector contains metrics with the same labelset after applying alert labels`)
}

func TestRunTestFile_GroupEvalOrder_LaterGroupSeesEarlierGroupsOutput(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "chain.yml"), []byte(`
groups:
  - name: second
    rules:
      - record: doubled
        expr: base * 2
  - name: first
    rules:
      - record: base
        expr: vector(21)
`), 0o600))
	test := func(order string) string {
		return `
rule_files: [chain.yml]
` + order + `
tests:
  - interval: 1m
    promql_expr_test:
      - expr: doubled
        eval_time: 0m
        exp_samples:
          - labels: doubled
            value: 42
`
	}
	path := filepath.Join(dir, "chain_test.yml")

	require.NoError(t, os.WriteFile(path, []byte(test("group_eval_order: [first, second]")), 0o600))
	failures, err := RunTestFile(t.Context(), path)
	require.NoError(t, err)
	require.Empty(t, failures, "%v", failures)

	// In file order, "second" runs before "base" exists.
	require.NoError(t, os.WriteFile(path, []byte(test("")), 0o600))
	failures, err = RunTestFile(t.Context(), path)
	require.NoError(t, err)
	require.Len(t, failures, 1)
	require.Empty(t, failures[0].Got)
}

func TestRunTestFile_FileCannotRun_ReturnsErrorSayingWhy(t *testing.T) {
	const series = `
    input_series:
      - series: up{job="hybrid", instance="b"}
        values: 0 0 0`
	for _, tc := range []struct {
		name, content, want string
	}{
		{"bad YAML", "rule_files: [host.yml\n", "decode test file: yaml: line 1: did not find expected ',' or ']'"},
		{"unknown field", "rule_files: [host.yml]\nfuzzy_compare: true\n", "field fuzzy_compare not found"},
		{"missing rule file", "rule_files: [nosuch.yml]\n", "nosuch.yml\": no such file"},
		{"invalid rule file", "rule_files: [host.yml, bad.yml]\n", "load rule files: "},
		{"interval not set", "rule_files: [host.yml]\ntests:\n  - name: t\n" + series + "\n", `tests[0] "t": interval is not set`},
		{"bad series", "rule_files: [host.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: up\n        values: 1 2 three\n", `input_series[0] "up": `},
		{"bad expression", "rule_files: [host.yml]\ntests:\n  - interval: 1m\n    promql_expr_test:\n      - expr: sum(\n        eval_time: 0m\n", `promql_expr_test[0]: expr "sum(": `},
		{"bad expected labels", "rule_files: [host.yml]\ntests:\n  - interval: 1m\n    promql_expr_test:\n      - expr: up\n        eval_time: 0m\n        exp_samples: [{labels: 'up{', value: 1}]\n", `exp_samples[0]: labels "up{": `},
		{"unknown group in group_eval_order", "rule_files: [host.yml]\ngroup_eval_order: [hots]\n", `no rule file defines group "hots"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTestFile(t, tc.content)
			require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), "bad.yml"), []byte("groups: [{name: x, rules: [{alert: X, expr: 'nosuch()'}]}]\n"), 0o600))
			failures, err := RunTestFile(t.Context(), path)
			require.ErrorContains(t, err, tc.want)
			require.True(t, strings.HasPrefix(err.Error(), "rule test file "+path+": "), "the error names the file: %v", err)
			require.Empty(t, failures)
		})
	}
}

func TestRunTestFile_Canceled_ReturnsContextError(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := RunTestFile(ctx, "testdata/host_test.yml")
	require.ErrorIs(t, err, context.Canceled)
}

func TestRunner_Dir_LeavesNoScratchBehind(t *testing.T) {
	dir := t.TempDir()
	r := Runner{Dir: dir}
	failures, err := r.RunFile(t.Context(), "testdata/host_test.yml")
	require.NoError(t, err)
	require.Empty(t, failures)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}
