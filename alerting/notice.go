package alerting

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"
)

// NoticeOptions configure a NoticeReceiver. Zero values take the defaults named.
type NoticeOptions struct {
	// RepeatInterval is how often an alert that fires on, unchanged, is
	// posted again as a reminder. Default 4h, Alertmanager's repeat_interval.
	RepeatInterval time.Duration
	// WatchdogRepeatInterval is the Watchdog's: it is a dead-man's switch,
	// useful only if it arrives often enough for its absence to be noticed
	// soon. Default 5m.
	WatchdogRepeatInterval time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
}

// Defaults of NoticeOptions.
const (
	DefaultNoticeRepeatInterval         = 4 * time.Hour
	DefaultNoticeWatchdogRepeatInterval = 5 * time.Minute
)

// forgetAfter is how long a NoticeReceiver remembers an alert nobody has sent
// it since: longer than the 15 minutes the evaluator re-sends a resolved
// alert, so that those re-sends are not posted again.
const forgetAfter = time.Hour

// NoticeReceiver passes on to a receiver only the alerts a person needs to
// hear about: a new firing alert, a resolved one, one whose annotations or
// start changed, and a reminder for one that fires on unchanged every
// RepeatInterval (the Watchdog every WatchdogRepeatInterval). Put it in
// front of a plain webhook: the Notifier hands every firing alert on at
// every resend (about every minute), which is what Alertmanager's API
// expects and noise for a person or an incident intake.
type NoticeReceiver struct {
	next Receiver
	opts NoticeOptions

	mu         sync.Mutex
	sent       map[string]notice // by Alert.key
	lastPruned time.Time
}

// notice is the last state of an alert its receiver accepted, and when.
type notice struct {
	status      string
	startsAt    time.Time
	annotations map[string]string
	at          time.Time // when it was posted
	heard       time.Time // when it was last handed to Notify
}

var _ Receiver = (*NoticeReceiver)(nil)

// NewNoticeReceiver filters what reaches next.
func NewNoticeReceiver(next Receiver, opts NoticeOptions) (*NoticeReceiver, error) {
	if opts.RepeatInterval == 0 {
		opts.RepeatInterval = DefaultNoticeRepeatInterval
	}
	if opts.WatchdogRepeatInterval == 0 {
		opts.WatchdogRepeatInterval = DefaultNoticeWatchdogRepeatInterval
	}
	if opts.RepeatInterval < 0 || opts.WatchdogRepeatInterval < 0 {
		return nil, fmt.Errorf("notice receiver: repeat intervals must be positive, got %s and %s (watchdog)",
			opts.RepeatInterval, opts.WatchdogRepeatInterval)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &NoticeReceiver{next: next, opts: opts, sent: map[string]notice{}}, nil
}

// Notify passes on the alerts that are news or due for a reminder, and
// remembers them once next has accepted them; next's error is returned as
// it is, so the Notifier retries (or drops, on a PermanentError) as usual.
func (r *NoticeReceiver) Notify(ctx context.Context, alerts []Alert) error {
	now := r.opts.Now()
	r.mu.Lock()
	r.prune(now)
	var due []Alert
	for _, a := range alerts {
		if r.isDue(a, now) {
			due = append(due, a)
		} else if n, ok := r.sent[a.key()]; ok {
			n.heard = now
			r.sent[a.key()] = n
		}
	}
	r.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	if err := r.next.Notify(ctx, due); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range due {
		r.sent[a.key()] = notice{
			status:      a.Status(now),
			startsAt:    a.StartsAt,
			annotations: maps.Clone(a.Annotations),
			at:          now,
			heard:       now,
		}
	}
	return nil
}

func (r *NoticeReceiver) isDue(a Alert, now time.Time) bool {
	last, ok := r.sent[a.key()]
	status := a.Status(now)
	switch {
	case !ok, last.status != status, !last.startsAt.Equal(a.StartsAt), !maps.Equal(last.annotations, a.Annotations):
		return true
	case status == StatusResolved:
		return false // told once; the evaluator's re-sends are no news
	case a.Name() == WatchdogAlertName:
		return now.Sub(last.at) >= r.opts.WatchdogRepeatInterval
	default:
		return now.Sub(last.at) >= r.opts.RepeatInterval
	}
}

// prune forgets, about once a minute, alerts not heard of for forgetAfter:
// resolved ones the evaluator no longer re-sends, and firing ones that
// ended by themselves (their rule removed). A firing alert is re-sent every
// minute, so one that fires on is never forgotten between its reminders.
func (r *NoticeReceiver) prune(now time.Time) {
	if now.Sub(r.lastPruned) < time.Minute {
		return
	}
	r.lastPruned = now
	maps.DeleteFunc(r.sent, func(_ string, n notice) bool { return now.Sub(n.heard) > forgetAfter })
}
