package evaluator

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// prober checks every configured site with GET <url>/api/method/ping and
// stores blackbox_exporter's series for it: probe_success,
// probe_http_status_code and probe_duration_seconds, with job="site-probe",
// instance and site set to the site's name.
type prober struct {
	sites    []Site
	interval time.Duration
	client   *http.Client
	store    storage.Appendable
	logger   *slog.Logger
	failures *prometheus.CounterVec
	now      func() time.Time
}

func newProber(cfg Config, store storage.Appendable, logger *slog.Logger, reg prometheus.Registerer) *prober {
	p := &prober{
		sites:    cfg.Sites,
		interval: cfg.Probe.Interval,
		client: &http.Client{
			Timeout: cfg.Probe.Timeout,
			// A redirect is an answer: a site that redirects is up.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		store:  store,
		logger: logger,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hybrid_monitor_probe_store_failures_total",
			Help: "Probe results that could not be stored in the TSDB.",
		}, []string{"site"}),
		now: time.Now,
	}
	reg.MustRegister(p.failures)
	return p
}

func (p *prober) run(ctx context.Context) {
	if len(p.sites) == 0 {
		return
	}
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.probeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *prober) probeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range p.sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.store1(ctx, s, p.probe(ctx, s))
		}()
	}
	wg.Wait()
}

type probeResult struct {
	success  bool
	status   int
	duration time.Duration
	at       time.Time
}

func (p *prober) probe(ctx context.Context, s Site) probeResult {
	start := p.now()
	res := probeResult{at: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.siteURL(), "/")+"/api/method/ping", nil)
	if err != nil {
		return res
	}
	req.Host = s.Name
	req.Header.Set("User-Agent", "hybrid-monitor probe")
	resp, err := p.client.Do(req)
	res.duration = p.now().Sub(start)
	if err != nil {
		p.logger.Debug("probe failed", "site", s.Name, "err", err)
		return res
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	res.status = resp.StatusCode
	res.success = resp.StatusCode >= 200 && resp.StatusCode < 400
	return res
}

func (p *prober) store1(ctx context.Context, s Site, r probeResult) {
	app := p.store.Appender(ctx)
	ts := r.at.UnixMilli()
	base := labels.FromStrings("instance", s.Name, "job", "site-probe", "site", s.Name)
	add := func(name string, v float64) error {
		b := labels.NewBuilder(base)
		b.Set(model.MetricNameLabel, name)
		_, err := app.Append(0, b.Labels(), ts, v)
		return err
	}
	success := 0.0
	if r.success {
		success = 1
	}
	err := add("probe_success", success)
	if err == nil {
		err = add("probe_http_status_code", float64(r.status))
	}
	if err == nil {
		err = add("probe_duration_seconds", r.duration.Seconds())
	}
	if err != nil {
		app.Rollback()
		p.failures.WithLabelValues(s.Name).Inc()
		p.logger.Warn("store probe result", "site", s.Name, "err", err)
		return
	}
	if err := app.Commit(); err != nil {
		p.failures.WithLabelValues(s.Name).Inc()
		p.logger.Warn("store probe result", "site", s.Name, "err", err)
	}
}
