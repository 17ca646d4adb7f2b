// Package alerting delivers the alerts the rules evaluator produces to people:
// to Alertmanager (API v2) when one is configured, otherwise straight to a
// Receiver such as the control plane's incident intake, and it generates the
// alertmanager.yml that routes them.
//
// Delivery follows Prometheus' notifier: the evaluator calls Notifier.Send with
// its firing alerts every resend interval and with resolved ones for 15 minutes
// after they resolve. A firing alert without an end gets EndsAt = now + 4 x
// max(evaluation interval, 1m), so that Alertmanager resolves it by itself if
// the evaluator stops; a resolved alert carries EndsAt = its resolve time.
// Unlike Prometheus' notifier, which drops a batch that failed, every receiver
// has its own bounded queue holding the newest state of each alert (keyed by
// its label set) until that receiver has accepted it, retried with capped
// exponential backoff; only a full queue (oldest dropped) or a receiver that
// rejects the alerts themselves (PermanentError) loses an alert, and both are
// counted in hybrid_alerting_dropped_total.
//
// A plain webhook (no Alertmanager in between) goes behind a NoticeReceiver:
// it gets an alert when it fires, resolves or changes its annotations, and a
// reminder every repeat interval (4h; the Watchdog every 5m), not every
// resend, which is what Alertmanager's API wants and noise for a person.
//
// GenerateConfig routes by the severity label: critical to every channel
// (control plane, email, Slack), warning to the control plane, email and
// Slack, info to the control plane only, plus each generic webhook for the
// severities it lists (critical only by default: a pager); an alert with no
// or another severity is handled as a warning. The Watchdog alert goes to its
// own dead-man's-switch receiver with a short repeat interval. Alerts are
// grouped by alertname and instance. A warning is inhibited while a critical
// alert with the same alertname and instance fires: only the tiers of one
// problem collapse, so an unrelated warning on the same server is never
// hidden by, say, one site being down (set Route.InhibitEqual to [instance]
// for the broader rule).
package alerting
