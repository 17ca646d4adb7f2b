package rules

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// The unit-test file format of `promtool test rules`
// (https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/),
// as Prometheus 2.42 knows it. Decoding is strict, as promtool's is: a field
// from a later Prometheus (fuzzy_compare, exp_native_histograms, ...) is an
// error, and would be one in Debian's promtool too.
type testFileYAML struct {
	RuleFiles          []string        `yaml:"rule_files"`
	EvaluationInterval model.Duration  `yaml:"evaluation_interval"`
	GroupEvalOrder     []string        `yaml:"group_eval_order"`
	Tests              []testGroupYAML `yaml:"tests"`
}

type testGroupYAML struct {
	Name            string            `yaml:"name"`
	Interval        model.Duration    `yaml:"interval"`
	InputSeries     []seriesYAML      `yaml:"input_series"`
	AlertRuleTests  []alertTestYAML   `yaml:"alert_rule_test"`
	PromQLExprTests []exprTestYAML    `yaml:"promql_expr_test"`
	ExternalLabels  map[string]string `yaml:"external_labels"`
	ExternalURL     string            `yaml:"external_url"`
}

type seriesYAML struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestYAML struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []expAlertYAML `yaml:"exp_alerts"`
}

type expAlertYAML struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type exprTestYAML struct {
	Expr       string          `yaml:"expr"`
	EvalTime   model.Duration  `yaml:"eval_time"`
	ExpSamples []expSampleYAML `yaml:"exp_samples"`
}

type expSampleYAML struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// testFile is a test file checked and parsed, ready to run.
type testFile struct {
	path         string
	rules        []File
	evalInterval time.Duration
	groupOrder   map[string]int // group name -> position in group_eval_order
	tests        []testCase
}

// testCase is one entry of tests[].
type testCase struct {
	index          int
	name           string
	series         []inputSeries
	alerts         []alertCheck
	exprs          []exprCheck
	externalLabels labels.Labels
	externalURL    string
}

type inputSeries struct {
	labels  labels.Labels
	samples []inputSample
}

type inputSample struct {
	t int64 // milliseconds since the test's time 0
	f float64
	h *histogram.FloatHistogram
}

type alertCheck struct {
	index     int
	at        time.Duration
	alertname string
	want      []firingAlert
}

// firingAlert is an alert as the tests compare it: its labels and its
// annotations, both complete.
type firingAlert struct {
	labels, annotations labels.Labels
}

func (a firingAlert) String() string {
	return a.labels.String() + " annotations " + a.annotations.String()
}

type exprCheck struct {
	index int
	expr  string
	at    time.Duration
	want  []wantSample
}

type wantSample struct {
	labels labels.Labels
	value  float64
}

// readTestFile decodes a test file, loads the rule files it names and parses
// everything a test needs, so that a problem in the file is reported before
// any test runs, and always as an error rather than a failure.
func readTestFile(path string, p parser.Parser) (*testFile, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read test file: %w", err)
	}
	var in testFileYAML
	dec := yaml.NewDecoder(bytes.NewReader(content))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("decode test file: %w", err)
	}

	tf := &testFile{path: path, evalInterval: time.Minute}
	if in.EvaluationInterval != 0 {
		tf.evalInterval = time.Duration(in.EvaluationInterval)
	}
	if tf.evalInterval < 0 {
		return nil, fmt.Errorf("evaluation_interval %s: must be positive", in.EvaluationInterval)
	}

	ruleFiles, err := resolveRuleFiles(filepath.Dir(path), in.RuleFiles)
	if err != nil {
		return nil, err
	}
	if tf.rules, err = LoadFiles(ruleFiles...); err != nil {
		return nil, fmt.Errorf("load rule files: %w", err)
	}
	if tf.groupOrder, err = groupOrder(in.GroupEvalOrder, tf.rules); err != nil {
		return nil, err
	}

	var errs []error
	for i, tg := range in.Tests {
		tc, err := parseTestCase(i, tg, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", testLabel(i, tg.Name), err))
			continue
		}
		tf.tests = append(tf.tests, tc)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tf, nil
}

// resolveRuleFiles reads rule_files relative to the test file's folder and
// expands globs. A name or glob that matches nothing is an error: promtool
// would quietly test no rules.
func resolveRuleFiles(dir string, patterns []string) ([]string, error) {
	var paths []string
	for _, pat := range patterns {
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(dir, pat)
		}
		matches, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("rule_files %q: %w", pat, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("rule_files %q: no such file", pat)
		}
		for _, m := range matches {
			if !slices.Contains(paths, m) {
				paths = append(paths, m)
			}
		}
	}
	return paths, nil
}

// groupOrder checks group_eval_order. promtool skips a name no rule file
// defines; a typo there would silently change nothing, so it is an error here.
func groupOrder(names []string, files []File) (map[string]int, error) {
	order := make(map[string]int, len(names))
	for i, name := range names {
		if _, dup := order[name]; dup {
			return nil, fmt.Errorf("group_eval_order: group %q is listed twice", name)
		}
		defined := slices.ContainsFunc(files, func(f File) bool {
			return slices.ContainsFunc(f.Groups, func(g rulefmt.RuleGroup) bool { return g.Name == name })
		})
		if !defined {
			return nil, fmt.Errorf("group_eval_order: no rule file defines group %q", name)
		}
		order[name] = i
	}
	return order, nil
}

func parseTestCase(index int, in testGroupYAML, p parser.Parser) (testCase, error) {
	tc := testCase{
		index:          index,
		name:           in.Name,
		externalLabels: labels.FromMap(in.ExternalLabels),
		externalURL:    in.ExternalURL,
	}
	if in.ExternalURL != "" {
		if _, err := url.Parse(in.ExternalURL); err != nil {
			return tc, fmt.Errorf("external_url: %w", err)
		}
	}
	// The documentation says interval defaults to evaluation_interval, but
	// promtool before 2.48 (Debian 12 ships 2.42) takes 0 and loads every
	// sample at time 0 (prometheus/prometheus#12871), so the two would
	// disagree on the same file: it must be set.
	interval := time.Duration(in.Interval)
	if interval == 0 {
		return tc, errors.New("interval is not set: promtool before 2.48 puts every input sample at time 0 then; set it, e.g. interval: 1m")
	}
	if interval < 0 {
		return tc, fmt.Errorf("interval %s: must be positive", in.Interval)
	}

	var errs []error
	for i, s := range in.InputSeries {
		series, err := parseSeries(s, interval, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("input_series[%d] %q: %w", i, s.Series, err))
			continue
		}
		tc.series = append(tc.series, series)
	}
	for i, at := range in.AlertRuleTests {
		check := alertCheck{index: i, at: time.Duration(at.EvalTime), alertname: at.Alertname}
		if at.Alertname == "" {
			errs = append(errs, fmt.Errorf("alert_rule_test[%d]: alertname is empty", i))
		}
		for _, exp := range at.ExpAlerts {
			lbls := labels.NewBuilder(labels.FromMap(exp.ExpLabels))
			// The rule adds alertname; the file leaves it out.
			lbls.Set(labels.AlertName, at.Alertname)
			check.want = append(check.want, firingAlert{
				labels:      lbls.Labels(),
				annotations: labels.FromMap(exp.ExpAnnotations),
			})
		}
		tc.alerts = append(tc.alerts, check)
	}
	for i, et := range in.PromQLExprTests {
		check := exprCheck{index: i, expr: et.Expr, at: time.Duration(et.EvalTime)}
		if _, err := p.ParseExpr(et.Expr); err != nil {
			errs = append(errs, fmt.Errorf("promql_expr_test[%d]: expr %q: %w", i, et.Expr, err))
		}
		for j, s := range et.ExpSamples {
			lbls, err := p.ParseMetric(s.Labels)
			if err != nil {
				errs = append(errs, fmt.Errorf("promql_expr_test[%d]: exp_samples[%d]: labels %q: %w", i, j, s.Labels, err))
				continue
			}
			check.want = append(check.want, wantSample{labels: lbls, value: s.Value})
		}
		tc.exprs = append(tc.exprs, check)
	}
	return tc, errors.Join(errs...)
}

// parseSeries expands the series notation ('0+10x100', '_', 'stale', '1x10')
// into samples spaced interval apart from time 0; '_' leaves a gap.
func parseSeries(in seriesYAML, interval time.Duration, p parser.Parser) (inputSeries, error) {
	lbls, values, err := p.ParseSeriesDesc(in.Series + " " + in.Values)
	if err != nil {
		return inputSeries{}, err
	}
	s := inputSeries{labels: lbls}
	for i, v := range values {
		if v.Omitted {
			continue
		}
		s.samples = append(s.samples, inputSample{
			t: (time.Duration(i) * interval).Milliseconds(),
			f: v.Value,
			h: v.Histogram,
		})
	}
	return s, nil
}

func testLabel(index int, name string) string {
	if name == "" {
		return fmt.Sprintf("tests[%d]", index)
	}
	return fmt.Sprintf("tests[%d] %q", index, name)
}
