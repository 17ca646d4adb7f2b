package dashboards

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// Query is one query a dashboard sends to its data source: a panel's target
// or a template variable's.
type Query struct {
	// Where names it for a person: `panel "CPU busy" target A` or
	// `variable "instance"`.
	Where string
	// Expr is the text as stored in the dashboard, with Grafana variables
	// ($instance, $__rate_interval) left in: PromQL for a panel target, a
	// Grafana variable query (label_values(...)) for a variable.
	Expr string
	// Variable is true for a template variable's query.
	Variable bool
	// Instant is true for a target Grafana runs as an instant query.
	Instant bool
}

// Queries lists every query of d: the panels' targets in layout order, then
// the template variables' queries.
func Queries(d Dashboard) []Query {
	var out []Query
	for _, p := range panels(d.Model) {
		title := ""
		if p.Title != nil {
			title = *p.Title
		}
		for i, t := range p.Targets {
			q, ok := t.(prometheus.Dataquery)
			if !ok {
				continue
			}
			ref := string(rune('A' + i))
			if q.RefId != nil {
				ref = *q.RefId
			}
			out = append(out, Query{
				Where:   fmt.Sprintf("panel %q target %s", title, ref),
				Expr:    q.Expr,
				Instant: q.Instant != nil && *q.Instant && (q.Range == nil || !*q.Range),
			})
		}
	}
	for _, v := range d.Model.Templating.List {
		if v.Type != "query" || v.Query == nil || v.Query.String == nil {
			continue
		}
		out = append(out, Query{
			Where:    fmt.Sprintf("variable %q", v.Name),
			Expr:     *v.Query.String,
			Variable: true,
		})
	}
	return out
}

// PromQL returns the PromQL the query runs, variables still in: Expr for a
// panel target; for a variable, the series selector of
// label_values(<selector>, <label>) or the expression of
// query_result(<expr>). Variable queries without PromQL in them
// (label_values(<label>), label_names(), metrics(...)) are an error.
func (q Query) PromQL() (string, error) {
	if !q.Variable {
		return q.Expr, nil
	}
	expr := strings.TrimSpace(q.Expr)
	if inner, ok := call(expr, "query_result"); ok {
		return strings.TrimSpace(inner), nil
	}
	if inner, ok := call(expr, "label_values"); ok {
		i := lastTopLevelComma(inner)
		if i < 0 {
			return "", fmt.Errorf("%s: %s has no series selector", q.Where, expr)
		}
		return strings.TrimSpace(inner[:i]), nil
	}
	return "", fmt.Errorf("%s: %s is not label_values(<selector>, <label>) or query_result(<expr>)", q.Where, expr)
}

// call returns the argument text of name(...) when expr is that call.
func call(expr, name string) (string, bool) {
	rest, ok := strings.CutPrefix(expr, name)
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
		return "", false
	}
	return rest[1 : len(rest)-1], true
}

// lastTopLevelComma is the index of the last comma outside brackets and
// quotes, or -1.
func lastTopLevelComma(s string) int {
	depth, last := 0, -1
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '{' || c == '[':
			depth++
		case c == ')' || c == '}' || c == ']':
			depth--
		case c == ',' && depth == 0:
			last = i
		}
	}
	return last
}

// builtins are the stand-ins for Grafana's own variables: a range wide enough
// for rate() over samples scraped every 15 to 30 seconds.
var builtins = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "1m",
	"__interval_ms":   "60000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

// variableRef matches $name, ${name}, ${name:format} and [[name]].
var variableRef = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]`)

// SubstituteVariables replaces Grafana's variables in a query with values
// that make it PromQL a TSDB can run: $__rate_interval and $__interval
// become 1m, $__range 1h ($__range_s 3600), and every template variable
// ($instance, $bench, $site, ...) becomes .+, which in the regex matchers the
// dashboards use them in (instance=~"$instance") selects every value, as
// "All" does. Unknown built-ins ($__name) are left as they are, so parsing
// the result fails.
func SubstituteVariables(expr string) string {
	return substitute(expr, func(string) string { return allValue })
}

// substitute replaces template variables with value(name) and built-ins
// with their stand-ins.
func substitute(expr string, value func(name string) string) string {
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if strings.HasPrefix(name, "__") {
			if v, ok := builtins[name]; ok {
				return v
			}
			return ref
		}
		return value(name)
	})
}
