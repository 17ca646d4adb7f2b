package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hybridsuite/hybrid/exporters"
	"github.com/hybridsuite/hybrid/exporters/host"
	"github.com/hybridsuite/hybrid/internal/webauth"
)

// Agent serves the exporters' metrics.
type Agent struct {
	cfg        Config
	logger     *slog.Logger
	collectors *collectorSet
	registry   *prometheus.Registry
	webConfig  string
	ops        *operations // nil when the API is disabled
}

// New validates cfg and builds the collectors. A collector whose backend is
// down (MariaDB, Docker) does not stop the agent: it reports failure per scrape.
func New(cfg Config, logger *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	webConfig := cfg.WebConfigFile()
	if err := webauth.Prepare(webConfig, cfg.Web.ConfigFile != "", logger); err != nil {
		return nil, err
	}
	var ops *operations
	if cfg.API.Enabled {
		var err error
		if ops, err = newOperations(context.Background(), cfg, logger); err != nil {
			return nil, err
		}
	}
	set, err := buildCollectors(cfg, logger, ops)
	if err != nil {
		if ops != nil {
			err = errors.Join(err, ops.close())
		}
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		exporters.NewSet(logger, cfg.CollectorTimeout, set.collectors, exporters.AlsoAsNode(set.nodeNames...)),
		collectors.NewGoCollector(),
		host.NewSelfCollector(""), // client_golang's process collector's series, for less
	)
	return &Agent{cfg: cfg, logger: logger, collectors: set, registry: reg, webConfig: webConfig, ops: ops}, nil
}

// Registry is the agent's own registry (nothing is registered globally).
func (a *Agent) Registry() *prometheus.Registry { return a.registry }

// Handler serves /metrics and /healthz, without authentication: Serve adds it.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", fastGzip(promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(a.logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             a.cfg.CollectorTimeout + 5*time.Second,
		DisableCompression:  true,
	})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if a.ops != nil {
			if err := a.ops.queue.Healthy(); err != nil { // jobs cannot record their progress
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintln(w, `<html><head><title>hybrid-agent</title></head><body><h1>hybrid-agent</h1><p><a href="/metrics">Metrics</a></p></body></html>`)
	})
	return mux
}

// Serve runs the collectors' background work and serves the metrics on l,
// behind the web configuration's basic auth and TLS, and the job API on apiL
// (nil when the API is disabled), until ctx ends.
func (a *Agent) Serve(ctx context.Context, l, apiL net.Listener) error {
	if a.ops != nil && apiL == nil {
		return errors.New("serve: the API is enabled but has no listener")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.collectors.start(ctx)
	defer a.collectors.close()
	apiDone := make(chan error, 1)
	if a.ops != nil {
		a.ops.start(ctx)
		defer a.ops.close()
		go func() { apiDone <- a.ops.serve(ctx, apiL) }()
	} else {
		apiDone <- nil
	}
	err := webauth.ServeWith(ctx, l, a.Handler(), a.webConfig, metricsLimits(a.cfg), a.logger)
	cancel() // the metrics server stopping stops the API too
	return errors.Join(err, <-apiDone)
}

// metricsLimits are the metrics server's: the defaults, with room in the
// write timeout for a scrape's collectors (collector_timeout, plus the 5 s
// the handler allows beyond it) however long they are configured to run.
func metricsLimits(cfg Config) webauth.Limits {
	limits := webauth.DefaultLimits()
	limits.WriteTimeout = max(limits.WriteTimeout, cfg.CollectorTimeout+5*time.Second+time.Minute)
	return limits
}

// Run listens on the configured address and serves until ctx ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	a, err := New(cfg, logger)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Web.ListenAddress)
	if err != nil {
		return fmt.Errorf("web.listen_address: %w", err)
	}
	var apiL net.Listener
	if cfg.API.Enabled {
		if apiL, err = net.Listen("tcp", cfg.API.ListenAddress); err != nil {
			l.Close()
			return fmt.Errorf("api.listen_address: %w", err)
		}
		logger.Info("job API serving", "address", apiL.Addr().String())
	}
	logger.Info("hybrid-agent serving", "address", l.Addr().String(), "collectors", len(a.collectors.collectors))
	return a.Serve(ctx, l, apiL)
}
