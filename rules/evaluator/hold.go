package evaluator

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/hybridsuite/hybrid/alerting"
)

// An alert's series vanish when its target cannot be scraped (the scrape
// writes staleness markers), and the rules manager then resolves it: when an
// agent dies, every alert on its metrics would send an all-clear minutes
// before HybridAgentDown says why. The holder sits between the rules manager
// and the notifier and does not let that happen:
//
//   - An alert that resolves while the scrape target it belongs to (its job
//     and instance labels) is down (its last scrape failed, or its up was 0
//     in the evaluation that resolved it) is held: it is sent on as firing,
//     unchanged, every resend interval.
//   - When the target's down alert (HybridAgentDown, ScrapeTargetDown) fires,
//     each held alert of that target is sent once more, still firing, with
//     the annotation target_down saying why its state is unknown. It stays
//     firing: a resolved notification means "fixed", receivers close
//     incidents on it, and nothing is known to be fixed while the target
//     cannot be seen; the down alert is the one page for the outage.
//   - When the target is scraped again the rules decide: the alert firing
//     again ends the hold (it goes on with its first start, so receivers see
//     one alert, not a new one); pending again (a rule with `for`) keeps it
//     held until it fires or goes away; neither pending nor firing after two
//     evaluation and scrape intervals with the target up, it is sent resolved.
//
// Alerts of no scrape target (site probes, the Watchdog, aggregates without
// job and instance) pass through untouched. Holds live in memory: a restart
// of the monitor ends them, as it ends the rules manager's own state.
type holder struct {
	next   AlertSink
	state  scrapeState
	logger *slog.Logger
	now    func() time.Time
	resend time.Duration
	gauge  prometheus.Gauge

	mu   sync.Mutex
	held map[string]*heldAlert // by alertKey
	// downFiring is each target whose down alert fires, with its name.
	downFiring map[targetID]string
	// continued is the first start of each alert whose hold ended because
	// it fired again, until it resolves.
	continued map[string]time.Time
	// passed is the end of each resolve let through while its target was
	// up: the rules manager re-sends it for 15 minutes, and a re-send after
	// the target went down is the same all-clear, not one to hold.
	passed map[string]time.Time
}

// scrapeState is what the holder needs to know of the scrapes and the rules.
type scrapeState interface {
	// targetsUp is every scrape target, true when its last scrape succeeded.
	targetsUp() map[targetID]bool
	// upAt is the target's up sample at ts, as an evaluation at ts saw it.
	upAt(t targetID, ts time.Time) (up float64, ok bool)
	// activeAlerts is the alertKey of every pending or firing alert.
	activeAlerts() map[string]bool
	// releaseAfter is how long a target must have been up for its rules
	// to have seen its series again.
	releaseAfter() time.Duration
}

type targetID struct{ job, instance string }

type heldAlert struct {
	alert       alerting.Alert // as sent: firing
	annotations map[string]string
	target      targetID
	since       time.Time
	upSince     time.Time // zero while its target is down
	explained   bool      // target_down added
	sentAt      time.Time
}

// annotationTargetDown explains a held alert once its target's down alert fires.
const annotationTargetDown = "target_down"

// isTargetDownAlert names the alerts of rules/meta.yml that fire for a scrape
// target that cannot be scraped.
func isTargetDownAlert(name string) bool {
	return name == "HybridAgentDown" || name == "ScrapeTargetDown"
}

func newHolder(next AlertSink, resend time.Duration, logger *slog.Logger, reg prometheus.Registerer) *holder {
	h := &holder{
		next:   next,
		logger: logger,
		now:    time.Now,
		resend: resend,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hybrid_monitor_alerts_held",
			Help: "Alerts kept firing because their series vanished while their scrape target was down.",
		}),
		held:       map[string]*heldAlert{},
		downFiring: map[targetID]string{},
		continued:  map[string]time.Time{},
		passed:     map[string]time.Time{},
	}
	reg.MustRegister(h.gauge)
	return h
}

func alertKey(a alerting.Alert) string { return labels.FromMap(a.Labels).String() }

func targetOf(a alerting.Alert) targetID {
	return targetID{job: a.Labels["job"], instance: a.Labels["instance"]}
}

// Send is the rules manager's way in: it holds what resolved by absence and
// passes on the rest.
func (h *holder) Send(alerts []alerting.Alert) {
	now := h.now()
	var up map[targetID]bool // asked for once, when needed
	out := make([]alerting.Alert, 0, len(alerts))
	var fired []targetID
	h.mu.Lock()
	for _, a := range alerts {
		k, t, resolved := alertKey(a), targetOf(a), a.Resolved(now)
		if isTargetDownAlert(a.Name()) {
			_, was := h.downFiring[t]
			switch {
			case resolved:
				delete(h.downFiring, t)
			case !was:
				h.downFiring[t] = a.Name()
				fired = append(fired, t)
			}
			out = append(out, a)
			continue
		}
		if hd, ok := h.held[k]; ok {
			if resolved {
				continue // the rules manager re-sends the resolve it held
			}
			delete(h.held, k)
			h.continued[k] = hd.alert.StartsAt
			h.logger.Info("held alert fires again", "alertname", a.Name(), "job", t.job, "instance", t.instance)
		}
		if start, ok := h.continued[k]; ok {
			a.StartsAt = start
			if resolved {
				delete(h.continued, k)
			}
		}
		if !resolved {
			delete(h.passed, k)
		} else if end, ok := h.passed[k]; !ok || !end.Equal(a.EndsAt) {
			if up == nil {
				up = h.state.targetsUp()
			}
			// Down now, or down in the evaluation that resolved it (a
			// scrape may have succeeded since).
			if isUp, known := up[t]; known && (!isUp || h.downAt(t, a.EndsAt)) {
				hd := h.hold(a, t, now)
				out = append(out, hd.alert)
				continue
			}
			h.passed[k] = a.EndsAt
		}
		out = append(out, a)
	}
	for k, end := range h.passed {
		if now.Sub(end) > time.Hour { // long past the rules manager's re-sends
			delete(h.passed, k)
		}
	}
	// A down alert that just fired explains its target's held alerts, which
	// go out after it.
	for _, t := range fired {
		for _, hd := range h.held {
			if hd.target == t && !hd.explained {
				out = append(out, h.explain(hd, now))
			}
		}
	}
	h.gauge.Set(float64(len(h.held)))
	h.mu.Unlock()
	if len(out) > 0 {
		h.next.Send(out)
	}
}

func (h *holder) downAt(t targetID, ts time.Time) bool {
	v, ok := h.state.upAt(t, ts)
	return ok && v == 0
}

// hold keeps a, resolved by absence, firing.
func (h *holder) hold(a alerting.Alert, t targetID, now time.Time) *heldAlert {
	firing := a
	firing.EndsAt = time.Time{} // the notifier gives it a fresh end
	hd := &heldAlert{alert: firing, annotations: a.Annotations, target: t, since: now, sentAt: now}
	h.held[alertKey(a)] = hd
	h.logger.Info("alert held firing: its series vanished while its target is down",
		"alertname", a.Name(), "job", t.job, "instance", t.instance)
	if _, ok := h.downFiring[t]; ok {
		h.explain(hd, now)
	}
	return hd
}

// explain adds target_down to hd and returns it to send.
func (h *holder) explain(hd *heldAlert, now time.Time) alerting.Alert {
	ann := maps.Clone(hd.annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[annotationTargetDown] = fmt.Sprintf("%s fires for %s (job %s): this alert's series vanished when its scrapes failed, "+
		"at %s, so its state is unknown. It stays firing until the target is scraped again and the rules decide.",
		h.downFiring[hd.target], hd.target.instance, hd.target.job, hd.since.UTC().Format(time.RFC3339))
	hd.alert.Annotations = ann
	hd.explained = true
	hd.sentAt = now
	return hd.alert
}

// run re-sends held alerts and releases them, every interval, until ctx ends.
func (h *holder) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.tick()
		}
	}
}

func (h *holder) tick() {
	h.mu.Lock()
	empty := len(h.held) == 0
	h.mu.Unlock()
	if empty {
		return
	}
	up, active, wait := h.state.targetsUp(), h.state.activeAlerts(), h.state.releaseAfter()
	now := h.now()
	var out []alerting.Alert
	h.mu.Lock()
	for k, hd := range h.held {
		switch {
		case !up[hd.target]: // down, or no longer scraped
			hd.upSince = time.Time{}
			if _, ok := h.downFiring[hd.target]; ok && !hd.explained {
				out = append(out, h.explain(hd, now))
				continue
			}
		case hd.upSince.IsZero():
			hd.upSince = now
		case !active[k] && now.Sub(hd.upSince) >= wait:
			// Scraped again and the rules have had their say: not firing.
			resolved := hd.alert
			resolved.Annotations = hd.annotations
			resolved.EndsAt = now
			out = append(out, resolved)
			delete(h.held, k)
			h.logger.Info("held alert resolved: its target is back and the alert is no longer active",
				"alertname", hd.alert.Name(), "job", hd.target.job, "instance", hd.target.instance,
				"held_for", now.Sub(hd.since).Round(time.Second))
			continue
		}
		if now.Sub(hd.sentAt) >= h.resend {
			hd.sentAt = now
			out = append(out, hd.alert)
		}
	}
	h.gauge.Set(float64(len(h.held)))
	h.mu.Unlock()
	if len(out) > 0 {
		h.next.Send(out)
	}
}
