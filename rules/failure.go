package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Failure is a test whose verdict went wrong: alerts or samples other than
// expected, or a rule or query that failed to evaluate.
type Failure struct {
	File     string
	Test     int    // index in tests[]
	TestName string // tests[].name, often empty
	// Check names the check in the test: "alert_rule_test[1]",
	// "promql_expr_test[0]", or "rules" when a rule failed to evaluate.
	Check     string
	EvalTime  time.Duration
	Alertname string // for alert_rule_test
	Expr      string // for promql_expr_test
	Reason    string
	// Expected and Got are the sorted alerts or samples, one per line, for
	// the alert and expression checks.
	Expected, Got []string
}

// String reads like:
//
//	rules/host_test.yml: tests[0] "memory": alert_rule_test[1]: alertname "HostOutOfMemory" at eval_time 10m: alerts differ
//	  expected (1):
//	  - {alertname="HostOutOfMemory", severity="warning"} annotations {summary="..."}
//	  got (1):
//	  + {alertname="HostOutOfMemory", severity="critical"} annotations {summary="..."}
//
// where "-" marks what was expected and not got, and "+" what was got and not expected.
func (f Failure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: %s:", f.File, testLabel(f.Test, f.TestName), f.Check)
	switch {
	case f.Alertname != "":
		fmt.Fprintf(&b, " alertname %q", f.Alertname)
	case f.Expr != "":
		fmt.Fprintf(&b, " expr %q", f.Expr)
	}
	fmt.Fprintf(&b, " at eval_time %s: %s", model.Duration(f.EvalTime), f.Reason)
	if f.Expected == nil && f.Got == nil {
		return b.String()
	}
	list := func(title, mark string, items, other []string) {
		fmt.Fprintf(&b, "\n  %s (%d):", title, len(items))
		for _, it := range items {
			m := " "
			if !slices.Contains(other, it) {
				m = mark
			}
			fmt.Fprintf(&b, "\n  %s %s", m, it)
		}
	}
	list("expected", "-", f.Expected, f.Got)
	list("got", "+", f.Got, f.Expected)
	return b.String()
}
