package rules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// promtool returns the path of Debian's promtool. It is required: without it
// a test is skipped, except in CI (CI=true), where that is a failure.
func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool not found: `make test` installs it (Debian package prometheus) through scripts/deps.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// runPromtool runs promtool with args and tells whether it exited 0; any
// other outcome than exit 0 or 1 is a broken test.
func runPromtool(t *testing.T, bin string, args ...string) (passed bool, output string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if exit, ok := errors.AsType[*exec.ExitError](err); ok && exit.ExitCode() == 1 {
		return false, string(out)
	}
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return true, string(out)
}

// verdict is what each engine must say about a test file.
type verdict struct{ promtool, ours bool }

// Every rule unit-test file here and in testdata/, with the verdict each
// engine must reach. The rule files' own tests (*_test.yml beside this file)
// must pass under both.
func testFileVerdicts(t *testing.T) map[string]verdict {
	t.Helper()
	want := map[string]verdict{}
	for dir, v := range map[string]verdict{
		".":                  {promtool: true, ours: true},
		"testdata":           {promtool: true, ours: true},
		"testdata/fail":      {promtool: false, ours: false}, // a wrong expectation
		"testdata/broken":    {promtool: false, ours: false}, // cannot run
		"testdata/stricter":  {promtool: true, ours: false},  // promtool 2.42 lets these through
		"testdata/divergent": {promtool: true, ours: false},  // Prometheus 2 semantics, changed in 3
	} {
		files, err := TestFiles(dir)
		require.NoError(t, err)
		for _, f := range files {
			want[f] = v
		}
	}
	return want
}

func TestTestFiles_PromtoolAndRunTestFile_SameVerdicts(t *testing.T) {
	bin := promtool(t)
	for path, want := range testFileVerdicts(t) {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			promtoolPassed, promtoolOut := runPromtool(t, bin, "test", "rules", path)

			failures, err := RunTestFile(t.Context(), path)
			oursPassed := err == nil && len(failures) == 0
			var ours strings.Builder
			if err != nil {
				fmt.Fprintf(&ours, "error: %v\n", err)
			}
			for _, f := range failures {
				fmt.Fprintf(&ours, "%s\n", f)
			}

			require.Equal(t, want.promtool, promtoolPassed, "promtool test rules %s:\n%s", path, promtoolOut)
			require.Equal(t, want.ours, oursPassed, "RunTestFile(%s):\n%s\npromtool said:\n%s", path, ours.String(), promtoolOut)
		})
	}
}

func TestCheck_PromtoolCheckRules_SameVerdicts(t *testing.T) {
	bin := promtool(t)
	ruleFiles, err := RuleFiles(".")
	require.NoError(t, err)
	bad, err := filepath.Glob("testdata/bad/*.yml")
	require.NoError(t, err)
	for _, path := range append(append(ruleFiles, "testdata/host.yml"), bad...) {
		t.Run(path, func(t *testing.T) {
			promtoolPassed, out := runPromtool(t, bin, "check", "rules", path)
			checkErr := Check(path)
			require.Equal(t, promtoolPassed, checkErr == nil, "promtool check rules %s:\n%s\nCheck: %v", path, out, checkErr)
		})
	}
}
