package evaluator

import (
	"context"
	"net/url"

	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/hybridsuite/hybrid/alerting"
)

// notifyFunc turns the rules manager's alerts into ours, with Prometheus'
// semantics: a firing alert ends at its ValidUntil (now + 4 x max(interval,
// resend delay)) unless re-sent; a resolved one ends when it resolved.
func notifyFunc(sink AlertSink, externalURL string) rules.NotifyFunc {
	return func(_ context.Context, expr string, alerts ...*rules.Alert) {
		if len(alerts) == 0 {
			return
		}
		out := make([]alerting.Alert, 0, len(alerts))
		for _, a := range alerts {
			endsAt := a.ValidUntil
			if !a.ResolvedAt.IsZero() {
				endsAt = a.ResolvedAt
			}
			out = append(out, alerting.Alert{
				Labels:       a.Labels.Map(),
				Annotations:  a.Annotations.Map(),
				StartsAt:     a.FiredAt,
				EndsAt:       endsAt,
				GeneratorURL: externalURL + strutil.TableLinkForExpression(expr),
			})
		}
		sink.Send(out)
	}
}

func mustParseURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err) // Validate has checked it
	}
	return u
}
