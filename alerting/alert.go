package alerting

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// Alert is one alert as the rules evaluator produces it and a Receiver gets
// it. It is firing while EndsAt is zero or in the future, resolved after.
type Alert struct {
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
}

// Receiver takes alerts, firing and resolved alike, and returns nil once it
// has accepted them all; the Notifier then never sends it those states
// again. It is called from one goroutine at a time, with alerts it must not
// modify (other receivers share them). It returns a *PermanentError when
// retrying the same alerts cannot succeed; any other error is retried.
type Receiver interface {
	Notify(ctx context.Context, alerts []Alert) error
}

// Status values, as Alertmanager names them.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Name is the alertname label.
func (a Alert) Name() string { return a.Labels[model.AlertNameLabel] }

// Resolved says whether the alert is resolved at now.
func (a Alert) Resolved(now time.Time) bool {
	return !a.EndsAt.IsZero() && !a.EndsAt.After(now)
}

// Status is StatusFiring or StatusResolved at now.
func (a Alert) Status(now time.Time) string {
	if a.Resolved(now) {
		return StatusResolved
	}
	return StatusFiring
}

// Fingerprint is Alertmanager's fingerprint of the label set, as it appears
// in webhook payloads.
func (a Alert) Fingerprint() string {
	ls := make(model.LabelSet, len(a.Labels))
	for k, v := range a.Labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// key identifies an alert by its exact label set; the newest state per key
// is what gets delivered.
func (a Alert) key() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		b.WriteString(k)
		b.WriteByte(0xff)
		b.WriteString(a.Labels[k])
		b.WriteByte(0xfe)
	}
	return b.String()
}

func (a Alert) clone() Alert {
	a.Labels = maps.Clone(a.Labels)
	a.Annotations = maps.Clone(a.Annotations)
	return a
}

// validate rejects what Alertmanager (0.25 included) would reject with 400,
// so that one bad alert never gets a whole batch refused.
func (a Alert) validate() error {
	var errs []error
	if len(a.Labels) == 0 {
		errs = append(errs, errors.New("no labels"))
	}
	for k, v := range a.Labels {
		if !model.LegacyValidation.IsValidLabelName(k) {
			errs = append(errs, fmt.Errorf("invalid label name %q", k))
		}
		if !utf8.ValidString(v) {
			errs = append(errs, fmt.Errorf("label %s: value is not valid UTF-8", k))
		}
	}
	for k, v := range a.Annotations {
		if !model.LegacyValidation.IsValidLabelName(k) {
			errs = append(errs, fmt.Errorf("invalid annotation name %q", k))
		}
		if !utf8.ValidString(v) {
			errs = append(errs, fmt.Errorf("annotation %s: value is not valid UTF-8", k))
		}
	}
	if !a.StartsAt.IsZero() && !a.EndsAt.IsZero() && a.EndsAt.Before(a.StartsAt) {
		errs = append(errs, fmt.Errorf("ends at %s, before it starts at %s", a.EndsAt.Format(time.RFC3339), a.StartsAt.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// resendDelay is how often the evaluator re-sends a firing alert (Prometheus'
// --rules.alert.resend-delay default).
const resendDelay = time.Minute

// firingEndsAt is when a firing alert sent at now resolves by itself unless it
// is sent again: four resend rounds, as Prometheus' rules manager sets it.
func firingEndsAt(now time.Time, evaluationInterval time.Duration) time.Time {
	return now.Add(4 * max(evaluationInterval, resendDelay))
}

// PermanentError is a delivery the receiver refused for the alerts
// themselves (Alertmanager's 400): sending them again cannot succeed, so the
// Notifier drops them instead of retrying.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }
