package evaluator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/hybridsuite/hybrid/alerting"
	hybridrules "github.com/hybridsuite/hybrid/rules"
	"github.com/hybridsuite/hybrid/runbooks"
)

// resendDelay is how often firing alerts are re-sent, as Prometheus'
// --rules.alert.resend-delay.
const resendDelay = time.Minute

// AlertSink receives the alerts the rules produce: firing ones every resend
// interval, resolved ones for 15 minutes after they resolve.
type AlertSink interface {
	Send(alerts []alerting.Alert)
}

// Evaluator scrapes, stores, evaluates and hands alerts on.
type Evaluator struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	db       *tsdb.DB
	engine   *promql.Engine
	scrapes  *scrape.Manager
	rules    *rules.Manager
	prober   *prober
	holder   *holder
	cancel   context.CancelFunc
	ctx      context.Context

	mu        sync.Mutex
	ruleFiles []string
}

// New opens the TSDB under cfg.DataDir and builds the scrape and rule managers.
// Nothing runs until Run.
func New(cfg Config, logger *slog.Logger, sink AlertSink) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	db, err := tsdb.Open(filepath.Join(cfg.DataDir, "tsdb"), logger.With("component", "tsdb"), reg, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open TSDB in %s: %w", cfg.DataDir, err)
	}
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:               logger.With("component", "promql"),
		Reg:                  reg,
		MaxSamples:           50_000_000,
		Timeout:              2 * time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})

	ctx, cancel := context.WithCancel(context.Background())
	e := &Evaluator{cfg: cfg, logger: logger, registry: reg, db: db, engine: engine, ctx: ctx, cancel: cancel}
	fail := func(err error) (*Evaluator, error) {
		cancel()
		db.Close()
		return nil, err
	}

	e.scrapes, err = scrape.NewManager(&scrape.Options{}, logger.With("component", "scrape"), nil, nil, db, reg)
	if err != nil {
		return fail(fmt.Errorf("scrape manager: %w", err))
	}
	scrapeCfg, err := e.scrapeConfig()
	if err != nil {
		return fail(err)
	}
	if err := e.scrapes.ApplyConfig(scrapeCfg); err != nil {
		return fail(fmt.Errorf("apply scrape config: %w", err))
	}

	externalURL := cfg.ExternalURL
	e.holder = newHolder(sink, resendDelay, logger.With("component", "hold"), reg)
	e.holder.state = e
	e.rules = rules.NewManager(&rules.ManagerOptions{
		ExternalURL:  mustParseURL(externalURL),
		QueryFunc:    rules.EngineQueryFunc(engine, db),
		NotifyFunc:   notifyFunc(e.holder, externalURL),
		Context:      ctx,
		AppendableV2: db,
		Queryable:    db,
		Logger:       logger.With("component", "rules"),
		Registerer:   reg,
		// As Prometheus: an alert's `for` survives a restart of up to an
		// hour, and firing alerts are re-sent every minute.
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     resendDelay,
	})

	files := cfg.RuleFiles
	if len(files) == 0 {
		if files, err = hybridrules.WriteBuiltin(filepath.Join(cfg.DataDir, "rules")); err != nil {
			return fail(err)
		}
	}
	if err := e.LoadRules(files...); err != nil {
		return fail(err)
	}
	e.prober = newProber(cfg, db, logger.With("component", "probe"), reg)
	return e, nil
}

// LoadRules checks the rule files and, only when every one is valid, replaces
// the rules being evaluated. On error the previous rules keep running, and the
// error names each file, line and reason.
func (e *Evaluator) LoadRules(files ...string) error {
	if err := hybridrules.Check(files...); err != nil {
		return fmt.Errorf("rules refused, the previous rules keep running:\n%w", err)
	}
	if err := e.rules.Update(e.cfg.EvaluationInterval, files, labels.EmptyLabels(), e.cfg.ExternalURL, nil); err != nil {
		return fmt.Errorf("rules refused, the previous rules keep running: %w", err)
	}
	e.mu.Lock()
	e.ruleFiles = append([]string(nil), files...)
	e.mu.Unlock()
	e.logger.Info("rules loaded", "files", len(files), "groups", len(e.rules.RuleGroups()))
	return nil
}

// RuleGroups lists the names of the groups being evaluated, sorted.
func (e *Evaluator) RuleGroups() []string {
	var names []string
	for _, g := range e.rules.RuleGroups() {
		names = append(names, g.Name())
	}
	sort.Strings(names)
	return names
}

// Run scrapes, probes and evaluates until ctx ends, then closes the TSDB.
func (e *Evaluator) Run(ctx context.Context) error {
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	tsets <- e.targetGroups()
	scrapeDone := make(chan error, 1)
	go func() { scrapeDone <- e.scrapes.Run(tsets) }()
	rulesDone := make(chan struct{})
	go func() {
		defer close(rulesDone)
		e.rules.Run() // blocks until Stop
	}()
	proberDone := make(chan struct{})
	go func() {
		defer close(proberDone)
		e.prober.run(ctx)
	}()
	holderDone := make(chan struct{})
	go func() {
		defer close(holderDone)
		e.holder.run(ctx, e.cfg.EvaluationInterval)
	}()

	<-ctx.Done()
	e.rules.Stop()
	<-rulesDone
	<-holderDone
	e.scrapes.Stop()
	close(tsets)
	<-proberDone
	e.cancel()
	err := <-scrapeDone
	return errors.Join(err, e.db.Close())
}

// Query evaluates expr at ts against the TSDB, as the rules and dashboards do.
func (e *Evaluator) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	q, err := e.engine.NewInstantQuery(ctx, e.db, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{{T: v.T, F: v.V}}, nil
	default:
		return nil, fmt.Errorf("query %q: unexpected result type %s", expr, res.Value.Type())
	}
}

// Registry is the monitor's own registry: scrape health, rule evaluation
// duration and missed iterations, TSDB, probes.
func (e *Evaluator) Registry() *prometheus.Registry { return e.registry }

// Handler serves /metrics, /healthz and /runbooks/; the caller adds authentication.
func (e *Evaluator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(e.logger.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// Every alert's runbook_url is <external_url>/runbooks/<alert>.
	mux.Handle("GET /runbooks/", runbooks.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// scrapeConfig is one scrape job per server: each has its own credentials.
// Every job sets job="hybrid-agent" and server=<name>, so rules and
// dashboards see one job.
func (e *Evaluator) scrapeConfig() (*promconfig.Config, error) {
	var b []byte
	b = fmt.Appendf(b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n",
		model.Duration(e.cfg.ScrapeInterval), model.Duration(e.cfg.ScrapeTimeout), model.Duration(e.cfg.EvaluationInterval))
	for _, t := range e.cfg.Targets {
		scheme := t.Scheme
		if scheme == "" {
			scheme = "http"
		}
		b = fmt.Appendf(b, "- job_name: %q\n  scheme: %s\n", jobName(t), scheme)
		if t.Username != "" {
			b = fmt.Appendf(b, "  basic_auth:\n    username: %q\n    password_file: %q\n", t.Username, t.PasswordFile)
		}
		if t.CAFile != "" {
			b = fmt.Appendf(b, "  tls_config:\n    ca_file: %q\n", t.CAFile)
		}
		b = fmt.Appendf(b, "  relabel_configs:\n  - target_label: job\n    replacement: hybrid-agent\n")
	}
	cfg, err := promconfig.Load(string(b), e.logger)
	if err != nil {
		return nil, fmt.Errorf("scrape config: %w", err)
	}
	return cfg, nil
}

func (e *Evaluator) targetGroups() map[string][]*targetgroup.Group {
	groups := map[string][]*targetgroup.Group{}
	for _, t := range e.cfg.Targets {
		groups[jobName(t)] = []*targetgroup.Group{{
			Source:  t.Name,
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(t.Address)}},
			Labels:  model.LabelSet{"server": model.LabelValue(t.Name)},
		}}
	}
	return groups
}

func jobName(t Target) string { return "hybrid-agent/" + t.Name }

// targetsUp is every scrape target by job and instance, true when its last
// scrape succeeded. A failed scrape is reported before its staleness markers
// are committed, so an evaluation that sees the series gone sees the target
// down.
func (e *Evaluator) targetsUp() map[targetID]bool {
	out := map[targetID]bool{}
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, pool := range e.scrapes.TargetsActive() {
		for _, t := range pool {
			ls := t.Labels(b)
			out[targetID{job: ls.Get("job"), instance: ls.Get("instance")}] = t.Health() == scrape.HealthGood
		}
	}
	return out
}

// upAt is the target's up at ts, as the rules saw it at ts.
func (e *Evaluator) upAt(t targetID, ts time.Time) (float64, bool) {
	v, err := e.Query(e.ctx, fmt.Sprintf("up{job=%q,instance=%q}", t.job, t.instance), ts)
	if err != nil || len(v) != 1 {
		return 0, false
	}
	return v[0].F, true
}

// activeAlerts is the label set of every pending or firing alert.
func (e *Evaluator) activeAlerts() map[string]bool {
	out := map[string]bool{}
	for _, r := range e.rules.AlertingRules() {
		for _, a := range r.ActiveAlerts() {
			out[a.Labels.String()] = true
		}
	}
	return out
}

// releaseAfter is two of the longest of the scrape and evaluation
// intervals: a target scraped again has had its series stored and every
// rule group evaluated over them.
func (e *Evaluator) releaseAfter() time.Duration {
	d := max(e.cfg.ScrapeInterval, e.cfg.EvaluationInterval)
	for _, g := range e.rules.RuleGroups() {
		d = max(d, g.Interval())
	}
	return 2 * d
}
