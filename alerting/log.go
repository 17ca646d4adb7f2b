package alerting

import (
	"context"
	"log/slog"
	"time"
)

// LogReceiver logs every alert it gets, one line each: the Receiver to use
// when nothing else is configured yet. Firing alerts are logged at Warn and
// repeat every resend interval while they fire; resolved ones at Info.
type LogReceiver struct {
	logger *slog.Logger
	now    func() time.Time
}

var _ Receiver = (*LogReceiver)(nil)

// NewLogReceiver logs to logger.
func NewLogReceiver(logger *slog.Logger) *LogReceiver {
	return &LogReceiver{logger: logger, now: time.Now}
}

// Notify logs alerts; it never fails.
func (r *LogReceiver) Notify(ctx context.Context, alerts []Alert) error {
	now := r.now()
	for _, a := range alerts {
		attrs := []any{
			"alertname", a.Name(),
			"severity", a.Labels["severity"],
			"instance", a.Labels["instance"],
			"labels", labelString(a.Labels),
			"summary", a.Annotations["summary"],
			"runbook_url", a.Annotations["runbook_url"],
			"starts_at", a.StartsAt,
		}
		if a.Resolved(now) {
			r.logger.InfoContext(ctx, "alert resolved", append(attrs, "ends_at", a.EndsAt)...)
			continue
		}
		r.logger.WarnContext(ctx, "alert firing", attrs...)
	}
	return nil
}
