package rules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// Runner runs rule unit-test files in the format of `promtool test rules`,
// with Prometheus's own rules manager, PromQL engine and TSDB as libraries.
// The zero value is ready to use.
type Runner struct {
	// Logger receives the rules engine's warnings (a rule that failed to
	// evaluate, a template that failed to expand); nil discards them.
	Logger *slog.Logger
	// Dir is where each test's scratch TSDB lives while it runs; "" is the
	// system's temporary folder.
	Dir string
}

// RunTestFile runs every test in a rule unit-test file. The error says the
// file cannot be run: bad YAML, a missing or invalid rule file, a series or
// an expression that does not parse. A test that runs and does not get what
// it expects is a Failure.
func RunTestFile(ctx context.Context, path string) ([]Failure, error) {
	var r Runner
	return r.RunFile(ctx, path)
}

// RunFile runs every test in a rule unit-test file; see RunTestFile.
func (r *Runner) RunFile(ctx context.Context, path string) ([]Failure, error) {
	logger := r.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("test_file", path)
	p := parser.NewParser(parser.Options{})
	tf, err := readTestFile(path, p)
	if err != nil {
		return nil, fmt.Errorf("rule test file %s: %w", path, err)
	}
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:     logger,
		MaxSamples: 50_000_000, // Prometheus's default; promtool's is 10000
		Timeout:    2 * time.Minute,
		// A subquery without a step uses the evaluation interval, as in
		// Prometheus and promtool.
		NoStepSubqueryIntervalFn: func(int64) int64 { return tf.evalInterval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   p,
	})
	var failures []Failure
	for _, tc := range tf.tests {
		fs, err := r.runTest(ctx, tf, tc, engine, p, logger.With("test", tc.index))
		if err != nil {
			return failures, fmt.Errorf("rule test file %s: %s: %w", path, testLabel(tc.index, tc.name), err)
		}
		failures = append(failures, fs...)
	}
	return failures, nil
}

// testRun is one test's scratch world: its storage and its rule groups.
type testRun struct {
	tf      *testFile
	tc      testCase
	db      *tsdb.DB
	engine  *promql.Engine
	groups  []*promrules.Group
	pending []pendingSample // input not yet appended, by time
}

type pendingSample struct {
	labels labels.Labels
	inputSample
}

// runTest evaluates the rule groups at every evaluation_interval step from 0
// to the last eval_time in the test, appending input samples as their time
// comes. An alert check at eval_time t sees the alerts of the last step at or
// before t. Expression checks run after the last step.
func (r *Runner) runTest(ctx context.Context, tf *testFile, tc testCase, engine *promql.Engine, p parser.Parser, logger *slog.Logger) (_ []Failure, err error) {
	dir, err := os.MkdirTemp(r.Dir, "rules-test-*")
	if err != nil {
		return nil, fmt.Errorf("create scratch TSDB folder: %w", err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	db, err := openScratchTSDB(dir, logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close scratch TSDB: %w", cerr))
		}
	}()

	run := &testRun{tf: tf, tc: tc, db: db, engine: engine}
	for _, s := range tc.series {
		for _, smp := range s.samples {
			run.pending = append(run.pending, pendingSample{labels: s.labels, inputSample: smp})
		}
	}
	slices.SortStableFunc(run.pending, func(a, b pendingSample) int { return cmp.Compare(a.t, b.t) })

	var extURL *url.URL
	if tc.externalURL != "" {
		extURL, _ = url.Parse(tc.externalURL) // checked in readTestFile
	}
	run.groups, err = newGroups(tf.rules, groupSettings{
		interval:       tf.evalInterval,
		externalLabels: tc.externalLabels,
		externalURL:    tc.externalURL,
		order:          tf.groupOrder,
		parser:         p,
		manager: &promrules.ManagerOptions{
			Context:      ctx,
			Logger:       logger,
			QueryFunc:    promrules.EngineQueryFunc(engine, db),
			Queryable:    db,
			AppendableV2: db,
			ExternalURL:  extURL,
			NotifyFunc:   func(context.Context, string, ...*promrules.Alert) {},
			Metrics:      promrules.NewGroupMetrics(nil),
			Parser:       p,
		},
	})
	if err != nil {
		return nil, err
	}

	var last time.Duration
	for _, c := range tc.alerts {
		last = max(last, c.at)
	}
	for _, c := range tc.exprs {
		last = max(last, c.at)
	}

	var failures []Failure
	step := tf.evalInterval
	for at := time.Duration(0); at <= last; at += step {
		if err := ctx.Err(); err != nil {
			return failures, err
		}
		if err := run.appendUntil(ctx, at); err != nil {
			return failures, err
		}
		if fs := run.evalGroups(ctx, at); len(fs) > 0 {
			// Later steps would only repeat the error; promtool stops here too.
			return append(failures, fs...), nil
		}
		for _, c := range tc.alerts {
			if at <= c.at && c.at < at+step {
				if f, ok := run.checkAlerts(c); !ok {
					failures = append(failures, f)
				}
			}
		}
	}
	for _, c := range tc.exprs {
		if f, ok := run.checkExpr(ctx, c); !ok {
			failures = append(failures, f)
		}
	}
	return failures, nil
}

func openScratchTSDB(dir string, logger *slog.Logger) (*tsdb.DB, error) {
	opts := tsdb.DefaultOptions()
	opts.WALSegmentSize = -1 // scratch data: no write-ahead log
	opts.RetentionDuration = 0
	// Input starts at time 0 and a test may span days: one block range
	// long enough that nothing is compacted away under the test.
	opts.MinBlockDuration = (24 * time.Hour).Milliseconds()
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(dir, logger, nil, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open scratch TSDB: %w", err)
	}
	return db, nil
}

// appendUntil appends the input samples up to and including time at.
func (run *testRun) appendUntil(ctx context.Context, at time.Duration) error {
	n := 0
	for n < len(run.pending) && run.pending[n].t <= at.Milliseconds() {
		n++
	}
	if n == 0 {
		return nil
	}
	app := run.db.AppenderV2(ctx)
	for _, s := range run.pending[:n] {
		var err error
		if s.h != nil {
			_, err = app.Append(0, s.labels, 0, s.t, 0, nil, s.h, storage.AOptions{})
		} else {
			_, err = app.Append(0, s.labels, 0, s.t, s.f, nil, nil, storage.AOptions{})
		}
		if err != nil {
			return errors.Join(fmt.Errorf("append input sample %s at %s: %w", s.labels, time.Duration(s.t)*time.Millisecond, err), app.Rollback())
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit input samples: %w", err)
	}
	run.pending = run.pending[n:]
	return nil
}

// evalGroups evaluates every group at time at and reports the rules that failed.
func (run *testRun) evalGroups(ctx context.Context, at time.Duration) []Failure {
	var failures []Failure
	for _, g := range run.groups {
		g.Eval(ctx, time.UnixMilli(0).UTC().Add(at))
		for _, rule := range g.Rules() {
			if err := rule.LastError(); err != nil {
				failures = append(failures, run.failure("rules", at, fmt.Sprintf("group %q, rule %q failed: %v", g.Name(), rule.Name(), err)))
			}
		}
	}
	return failures
}

// checkAlerts compares the firing alerts named c.alertname, from every group,
// with the expected ones, as sets.
func (run *testRun) checkAlerts(c alertCheck) (Failure, bool) {
	var got []string
	for _, g := range run.groups {
		for _, ar := range g.AlertingRules() {
			if ar.Name() != c.alertname {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State == promrules.StateFiring {
					got = append(got, firingAlert{labels: a.Labels, annotations: a.Annotations}.String())
				}
			}
		}
	}
	want := make([]string, len(c.want))
	for i, a := range c.want {
		want[i] = a.String()
	}
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return Failure{}, true
	}
	f := run.failure(fmt.Sprintf("alert_rule_test[%d]", c.index), c.at, "alerts differ")
	f.Alertname, f.Expected, f.Got = c.alertname, want, got
	return f, false
}

// checkExpr runs c.expr at its eval_time and compares the samples: labels
// exactly, values within floatTolerance.
func (run *testRun) checkExpr(ctx context.Context, c exprCheck) (Failure, bool) {
	fail := func(reason string) Failure {
		f := run.failure(fmt.Sprintf("promql_expr_test[%d]", c.index), c.at, reason)
		f.Expr = c.expr
		return f
	}
	got, err := promrules.EngineQueryFunc(run.engine, run.db)(ctx, c.expr, time.UnixMilli(0).UTC().Add(c.at))
	if err != nil {
		return fail("query failed: " + err.Error()), false
	}

	// Pair each expected sample with a got one of the same labels and a
	// close value; what stays unpaired is the difference.
	used := make([]bool, len(got))
	gotText := make([]string, len(got))
	for i, s := range got {
		gotText[i] = renderSample(s)
	}
	want := make([]string, len(c.want))
	ok := len(got) == len(c.want)
	for i, w := range c.want {
		want[i] = w.labels.String() + " " + strconv.FormatFloat(w.value, 'g', -1, 64)
		j := -1
		for k, s := range got {
			if !used[k] && s.H == nil && labels.Equal(s.Metric, w.labels) && closeEnough(s.F, w.value) {
				j = k
				break
			}
		}
		if j < 0 {
			ok = false
			continue
		}
		used[j] = true
		gotText[j] = want[i] // within tolerance: the same line in the report
	}
	if ok {
		return Failure{}, true
	}
	slices.Sort(want)
	slices.Sort(gotText)
	f := fail("samples differ")
	f.Expected, f.Got = want, gotText
	return f, false
}

// floatTolerance is the relative difference under which two sample values
// are equal, to absorb summation order and float rounding; values near zero
// compare with it as an absolute difference. promtool 2.42 compares exactly.
const floatTolerance = 1e-12

func closeEnough(got, want float64) bool {
	if got == want || (math.IsNaN(got) && math.IsNaN(want)) {
		return true
	}
	scale := max(1, math.Abs(got), math.Abs(want))
	return math.Abs(got-want) <= floatTolerance*scale
}

func renderSample(s promql.Sample) string {
	if s.H != nil {
		return s.Metric.String() + " " + s.H.String()
	}
	return s.Metric.String() + " " + strconv.FormatFloat(s.F, 'g', -1, 64)
}

func (run *testRun) failure(check string, at time.Duration, reason string) Failure {
	return Failure{
		File:     run.tf.path,
		Test:     run.tc.index,
		TestName: run.tc.name,
		Check:    check,
		EvalTime: at,
		Reason:   reason,
	}
}
