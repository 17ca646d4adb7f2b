package rules

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// positions finds the line a rulefmt error is about. rulefmt keeps an error's
// YAML node unexported but names the group and the rule's index, which is
// enough to find the node again in our own parse of the same bytes.
type positions struct {
	content []byte
	root    *yaml.Node // the document's top mapping; nil when the YAML does not parse
}

func newPositions(content []byte) positions {
	var doc yaml.Node
	p := positions{content: content}
	if err := yaml.Unmarshal(content, &doc); err == nil && doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		p.root = doc.Content[0]
	}
	return p
}

// locate turns one error of rulefmt.Parse into problems with lines; a YAML
// type error holds several.
func (p positions) locate(err error) []Problem {
	if re, ok := errors.AsType[*rulefmt.Error](err); ok {
		return []Problem{p.ruleProblem(re)}
	}
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		problems := make([]Problem, 0, len(te.Errors))
		for _, msg := range te.Errors {
			line, reason := splitLine(msg)
			problems = append(problems, Problem{Line: line, Err: errors.New(reason)})
		}
		return problems
	}
	line, reason := splitLine(err.Error())
	if strings.HasPrefix(reason, "yaml: ") {
		if at := p.syntaxLine(reason); at > 0 {
			line = at
		}
	}
	if reason == err.Error() {
		return []Problem{{Err: err}}
	}
	// A position of 0:0 is one rulefmt lost (group-level checks, as of
	// v0.316); the reason is still worth reporting without it.
	return []Problem{{Line: line, Err: errors.New(reason)}}
}

// syntaxLine returns the line a YAML syntax error is on: the end of the
// shortest prefix of whole lines that fails to parse with the same reason.
// The YAML parser itself reports where the enclosing block starts, counted
// from 0, which for a misindented key can be many lines above the mistake.
func (p positions) syntaxLine(reason string) int {
	if len(p.content) > 1<<20 {
		return 0 // quadratic below; a rule file this big keeps the parser's line
	}
	end := 0
	for n := 1; end < len(p.content); n++ {
		next := bytes.IndexByte(p.content[end:], '\n')
		if next < 0 {
			end = len(p.content)
		} else {
			end += next + 1
		}
		var doc yaml.Node
		err := yaml.Unmarshal(p.content[:end], &doc)
		if err == nil {
			continue
		}
		if _, r := splitLine(err.Error()); r == reason {
			return n
		}
	}
	return 0
}

func (p positions) ruleProblem(re *rulefmt.Error) Problem {
	inner := re.Err.Unwrap()
	problem := Problem{Group: re.Group, Rule: re.RuleName, Err: inner}
	rule := p.rule(re.Group, re.Rule-1)
	if rule != nil {
		problem.Line = rule.Line
	}
	var perr *parser.ParseErr
	if errs, ok := errors.AsType[parser.ParseErrors](inner); ok && len(errs) > 0 {
		perr = &errs[0]
	} else if e, ok := errors.AsType[*parser.ParseErr](inner); ok {
		perr = e
	}
	if perr != nil {
		problem.Err = fmt.Errorf("expr: parse error: %w", perr.Err)
		if expr := mappingValue(rule, "expr"); expr != nil {
			problem.Line = exprLine(expr, int(perr.PositionRange.Start))
		}
	}
	return problem
}

// rule returns the node of the index-th rule of the first group named group.
func (p positions) rule(group string, index int) *yaml.Node {
	groups := mappingValue(p.root, "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return nil
	}
	for _, g := range groups.Content {
		name := mappingValue(g, "name")
		if name == nil || name.Value != group {
			continue
		}
		rules := mappingValue(g, "rules")
		if rules == nil || rules.Kind != yaml.SequenceNode || index < 0 || index >= len(rules.Content) {
			return nil
		}
		return rules.Content[index]
	}
	return nil
}

// secondDocument returns the line where a second YAML document starts, or 0.
func (p positions) secondDocument() int {
	dec := yaml.NewDecoder(bytes.NewReader(p.content))
	var first, second yaml.Node
	if dec.Decode(&first) != nil || dec.Decode(&second) != nil {
		return 0
	}
	return second.Line
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// exprLine is the file line of byte offset in an expression. Only a literal
// block (expr: |) keeps the expression's lines as they are in the file;
// other styles fold them, so they point at the expression's start.
func exprLine(expr *yaml.Node, offset int) int {
	switch {
	case expr.Style&yaml.LiteralStyle != 0:
		offset = min(max(offset, 0), len(expr.Value))
		return expr.Line + 1 + strings.Count(expr.Value[:offset], "\n")
	case expr.Style&yaml.FoldedStyle != 0:
		return expr.Line + 1
	default:
		return expr.Line
	}
}

// YAML syntax and type errors, and rulefmt's group-level errors, carry their
// position only in their text: "yaml: line 7: ...", "line 7: ...", "7:3: ...".
var linePrefix = regexp.MustCompile(`^(yaml: )?(?:line (\d+)|(\d+):\d+): `)

// splitLine lifts a position out of such a message; line is 0 when there is none.
func splitLine(msg string) (line int, reason string) {
	m := linePrefix.FindStringSubmatchIndex(msg)
	if m == nil {
		return 0, msg
	}
	var digits string
	if m[4] >= 0 {
		digits = msg[m[4]:m[5]]
	} else {
		digits = msg[m[6]:m[7]]
	}
	line, _ = strconv.Atoi(digits)
	prefix := ""
	if m[2] >= 0 {
		prefix = msg[m[2]:m[3]]
	}
	return line, prefix + msg[m[1]:]
}
