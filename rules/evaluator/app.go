package evaluator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/hybridsuite/hybrid/alerting"
	"github.com/hybridsuite/hybrid/internal/webauth"
)

// receivers are where alerts go: every configured Alertmanager, or, with
// none, a log line per alert and the webhook when one is set (the control
// plane's incident intake will take this place). The webhook gets news and
// reminders only, not every resend.
func receivers(cfg Config, logger *slog.Logger) (map[string]alerting.Receiver, error) {
	out := map[string]alerting.Receiver{}
	for _, am := range cfg.Alerting.Alertmanagers {
		r, err := alerting.NewAlertmanagerReceiver(am, nil)
		if err != nil {
			return nil, fmt.Errorf("alerting.alertmanagers: %w", err)
		}
		out["alertmanager "+am] = r
	}
	if len(out) > 0 {
		return out, nil
	}
	out["log"] = alerting.NewLogReceiver(logger.With("component", "alerts"))
	if cfg.Alerting.WebhookURL != "" {
		r, err := alerting.NewWebhookReceiver(cfg.Alerting.WebhookURL, alerting.WebhookOptions{ExternalURL: cfg.ExternalURL})
		if err != nil {
			return nil, fmt.Errorf("alerting.webhook_url: %w", err)
		}
		if out["webhook"], err = alerting.NewNoticeReceiver(r, alerting.NoticeOptions{
			RepeatInterval:         cfg.Alerting.WebhookRepeatInterval,
			WatchdogRepeatInterval: cfg.Alerting.WebhookWatchdogRepeatInterval,
		}); err != nil {
			return nil, fmt.Errorf("alerting: %w", err)
		}
	}
	return out, nil
}

// Monitor is the whole `hybrid monitor`: evaluator, alert delivery and the
// HTTP server for its own metrics.
type Monitor struct {
	Evaluator *Evaluator
	notifier  *alerting.Notifier
	cfg       Config
	logger    *slog.Logger
	webConfig string
}

// NewMonitor builds the monitor from cfg.
func NewMonitor(cfg Config, logger *slog.Logger) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	webConfig := cfg.WebConfigFile()
	if err := webauth.Prepare(webConfig, cfg.Web.ConfigFile != "", logger); err != nil {
		return nil, err
	}
	rs, err := receivers(cfg, logger)
	if err != nil {
		return nil, err
	}
	m := &Monitor{cfg: cfg, logger: logger, webConfig: webConfig}
	// The evaluator registers its metrics first; the notifier's join them.
	sink := &deferredSink{}
	if m.Evaluator, err = New(cfg, logger, sink); err != nil {
		return nil, err
	}
	m.notifier, err = alerting.NewNotifier(alerting.Options{
		Receivers:          rs,
		EvaluationInterval: cfg.EvaluationInterval,
		Logger:             logger.With("component", "notifier"),
		Registerer:         m.Evaluator.Registry(),
	})
	if err != nil {
		return nil, errors.Join(err, m.Evaluator.db.Close())
	}
	sink.n = m.notifier
	return m, nil
}

// deferredSink lets the evaluator be built before the notifier it feeds.
type deferredSink struct{ n *alerting.Notifier }

func (s *deferredSink) Send(alerts []alerting.Alert) { s.n.Send(alerts) }

// Serve runs everything and serves HTTP on l until ctx ends.
func (m *Monitor) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notifierDone := make(chan error, 1)
	go func() { notifierDone <- m.notifier.Run(ctx) }()
	evalDone := make(chan error, 1)
	go func() { evalDone <- m.Evaluator.Run(ctx) }()

	serveErr := webauth.Serve(ctx, l, m.Evaluator.Handler(), m.webConfig, m.logger)
	cancel() // a server that failed stops the rest
	evalErr := <-evalDone
	notifierErr := <-notifierDone
	if errors.Is(notifierErr, context.Canceled) {
		notifierErr = nil
	}
	return errors.Join(serveErr, evalErr, notifierErr)
}

// Run listens on the configured address and serves until ctx ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	m, err := NewMonitor(cfg, logger)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Web.ListenAddress)
	if err != nil {
		return fmt.Errorf("web.listen_address: %w", err)
	}
	logger.Info("hybrid monitor serving", "address", l.Addr().String(),
		"targets", len(cfg.Targets), "sites", len(cfg.Sites), "groups", m.Evaluator.RuleGroups())
	return m.Serve(ctx, l)
}
