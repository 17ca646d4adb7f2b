package rules

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

func TestCheck_ValidFile_NoError(t *testing.T) {
	require.NoError(t, Check("testdata/host.yml"))
}

func TestLoadFiles_ValidFile_ReturnsItsGroupsAndRules(t *testing.T) {
	files, err := LoadFiles("testdata/host.yml")
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.Equal(t, "testdata/host.yml", files[0].Path)
	require.Len(t, files[0].Groups, 1)
	g := files[0].Groups[0]
	require.Equal(t, "host", g.Name)
	require.Len(t, g.Rules, 3)
	require.Equal(t, "instance:node_memory_available:ratio", g.Rules[0].Record)
	require.Equal(t, "HostOutOfMemory", g.Rules[1].Alert)
}

func TestCheck_YAMLSyntaxError_NamesFileTheMistakesLineAndReason(t *testing.T) {
	err := Check("testdata/bad/syntax.yml")
	// The YAML parser itself says "line 3", where the enclosing block
	// starts; the misindented key is on line 8.
	require.EqualError(t, err, "testdata/bad/syntax.yml:8: yaml: did not find expected key")
}

func TestCheck_UnknownFunction_NamesFileLineRuleAndReason(t *testing.T) {
	err := Check("testdata/bad/unknown_function.yml")
	var ce *CheckError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 2, "every problem in the file: %v", err)
	require.Equal(t,
		`testdata/bad/unknown_function.yml:8: group "host", rule "HostOutOfMemory": expr: parse error: unknown function with name "nosuch"`,
		ce.Problems[0].Error())
	// In a literal block (expr: |) the line is the one inside the expression.
	require.Equal(t,
		`testdata/bad/unknown_function.yml:17: group "host", rule "HostMultiline": expr: parse error: unclosed left parenthesis`,
		ce.Problems[1].Error())
}

func TestCheck_SeveralFiles_ReportsEveryProblemInFileOrder(t *testing.T) {
	err := Check("testdata/bad/syntax.yml", "testdata/host.yml", "testdata/bad/unknown_function.yml")
	var ce *CheckError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 3)
	require.Equal(t, "testdata/bad/syntax.yml", ce.Problems[0].File)
	require.Equal(t, "testdata/bad/unknown_function.yml", ce.Problems[1].File)
	require.Equal(t, "testdata/bad/unknown_function.yml", ce.Problems[2].File)
}

func TestCheck_MissingFile_NamesIt(t *testing.T) {
	err := Check("testdata/nosuch.yml")
	require.EqualError(t, err, "testdata/nosuch.yml: open: no such file or directory")
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestCheck_OtherProblems_NameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{
			name: "unknown field",
			content: `groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        severity: critical
`,
			want: `:6: field severity not found in type rulefmt.Rule`,
		},
		{
			name: "template that does not parse",
			content: `groups:
  - name: g
    rules:
      - record: r:up
        expr: up
      - alert: A
        expr: up == 0
        annotations:
          summary: "{{ $labels.instance"
`,
			want: `:6: group "g", rule "A": annotation "summary": template: __alert_A:1: unclosed action`,
		},
		{
			name: "second YAML document",
			content: `groups: []
---
groups:
  - name: g
    rules: []
`,
			want: `:2: a second YAML document: Prometheus loads only the first`,
		},
		{
			name: "name valid only in Prometheus 3",
			content: `groups:
  - name: g
    rules:
      - record: "host.memory"
        expr: up
`,
			want: `:4: group "g", rule "host.memory": invalid recording rule name: host.memory`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rules.yml")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			require.EqualError(t, Check(path), path+tc.want)
		})
	}
}

func TestRuleFiles_Folder_ListsRuleFilesWithoutTests(t *testing.T) {
	files, err := RuleFiles("testdata")
	require.NoError(t, err)
	require.Equal(t, []string{"testdata/host.yml"}, files)

	tests, err := TestFiles("testdata")
	require.NoError(t, err)
	require.Equal(t, []string{"testdata/host_test.yml"}, tests)
}

func TestRuleFiles_MissingFolder_ReturnsError(t *testing.T) {
	_, err := RuleFiles("testdata/nosuch")
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoader_InRulesManager_ReportsFileAndLine(t *testing.T) {
	m := promrules.NewManager(&promrules.ManagerOptions{
		GroupLoader: Loader{},
		Logger:      slog.New(slog.DiscardHandler),
	})
	_, errs := m.LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, "testdata/bad/unknown_function.yml")
	require.Len(t, errs, 2)
	require.EqualError(t, errs[0], `testdata/bad/unknown_function.yml:8: group "host", rule "HostOutOfMemory": expr: parse error: unknown function with name "nosuch"`)
	var p Problem
	require.True(t, errors.As(errs[0], &p), "the manager returns our Problem: %v", errs[0])
	require.Equal(t, 8, p.Line)
}
