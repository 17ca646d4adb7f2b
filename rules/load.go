package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
)

// File is one parsed rule file.
type File struct {
	Path   string
	Groups []rulefmt.RuleGroup
}

// Problem is one thing wrong in a rule file: where, in which rule, and why.
type Problem struct {
	File  string
	Line  int    // 1-based; 0 when the YAML parser did not give one
	Group string // "" when the problem is outside any group
	Rule  string // the alert or record name; "" when outside any rule
	Err   error
}

func (p Problem) Error() string {
	at := p.File
	if p.Line > 0 {
		at += ":" + strconv.Itoa(p.Line)
	}
	parts := []string{at}
	var where []string
	if p.Group != "" {
		where = append(where, fmt.Sprintf("group %q", p.Group))
	}
	if p.Rule != "" {
		where = append(where, fmt.Sprintf("rule %q", p.Rule))
	}
	if len(where) > 0 {
		parts = append(parts, strings.Join(where, ", "))
	}
	return strings.Join(append(parts, p.Err.Error()), ": ")
}

func (p Problem) Unwrap() error { return p.Err }

// CheckError lists every problem found in a set of rule files, in file order.
type CheckError struct {
	Problems []Problem
}

func (e *CheckError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func (e *CheckError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// Check parses every rule file and validates its PromQL and templates. The
// error, a *CheckError, names file, line and reason of every problem.
func Check(paths ...string) error {
	_, err := LoadFiles(paths...)
	return err
}

// LoadFiles parses rule files in the given order. Names are held to
// Prometheus 2's legacy rules ([a-zA-Z_:][a-zA-Z0-9_:]*): the same files must
// load on an external Prometheus 2 and in Debian's promtool. On any problem it
// returns a *CheckError with all of them and no files.
func LoadFiles(paths ...string) ([]File, error) {
	l := Loader{}
	files := make([]File, 0, len(paths))
	var problems []Problem
	for _, path := range paths {
		rgs, ps := l.load(path, false, model.LegacyValidation)
		if len(ps) > 0 {
			problems = append(problems, ps...)
			continue
		}
		files = append(files, File{Path: path, Groups: rgs.Groups})
	}
	if len(problems) > 0 {
		return nil, &CheckError{Problems: problems}
	}
	return files, nil
}

// Loader is a rules.GroupLoader (Prometheus's rules package) whose errors are
// Problems, so a rules.Manager reports file and line the way Check does.
// The zero value uses the default PromQL parser.
type Loader struct {
	Parser parser.Parser
}

var _ promrules.GroupLoader = Loader{}

// Load parses and validates one rule file.
func (l Loader) Load(path string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	rgs, problems := l.load(path, ignoreUnknownFields, scheme)
	if len(problems) == 0 {
		return rgs, nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return nil, errs
}

// Parse parses a rule's expression.
func (l Loader) Parse(query string) (parser.Expr, error) {
	return l.parser().ParseExpr(query)
}

func (l Loader) parser() parser.Parser {
	if l.Parser == nil {
		return parser.NewParser(parser.Options{})
	}
	return l.Parser
}

func (l Loader) load(path string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []Problem) {
	content, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return nil, []Problem{{File: path, Err: err}}
	}
	// rulefmt only logs a second YAML document, which Prometheus then
	// ignores; locate reports it as a problem instead.
	quiet := slog.New(slog.DiscardHandler)
	rgs, errs := rulefmt.Parse(content, ignoreUnknownFields, scheme, l.parser(), quiet)
	pos := newPositions(content)
	var problems []Problem
	for _, err := range errs {
		for _, p := range pos.locate(err) {
			p.File = path
			if !slices.ContainsFunc(problems, func(q Problem) bool { return q.Line == p.Line && q.Error() == p.Error() }) {
				problems = append(problems, p)
			}
		}
	}
	if line := pos.secondDocument(); line > 0 {
		problems = append(problems, Problem{File: path, Line: line,
			Err: errors.New("a second YAML document: Prometheus loads only the first")})
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return rgs, nil
}

// RuleFiles returns the rule files in dir, sorted: every *.yml and *.yaml
// except the unit-test files (*_test.yml, *_test.yaml).
func RuleFiles(dir string) ([]string, error) {
	all, err := yamlFiles(dir)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, isTestFile), nil
}

// TestFiles returns the rule unit-test files in dir (*_test.yml, *_test.yaml), sorted.
func TestFiles(dir string) ([]string, error) {
	all, err := yamlFiles(dir)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(p string) bool { return !isTestFile(p) }), nil
}

func yamlFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list rule files: %w", err)
	}
	var paths []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.Type().IsRegular() && (ext == ".yml" || ext == ".yaml") {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	return paths, nil
}

func isTestFile(path string) bool {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return strings.HasSuffix(name, "_test")
}
