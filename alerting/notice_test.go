package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// posts lists what a webhookSink received, one "alertname/status" per alert
// of every message, in order.
func (s *webhookSink) posts(t *testing.T) []string {
	t.Helper()
	bodies, _ := s.requests()
	var out []string
	for _, b := range bodies {
		var msg WebhookMessage
		require.NoError(t, json.Unmarshal(b, &msg))
		for _, a := range msg.Alerts {
			out = append(out, a.Labels["alertname"]+"/"+a.Status)
		}
	}
	return out
}

// noticeWebhook is a NoticeReceiver in front of a real WebhookReceiver
// posting to sink, both on clock.
func noticeWebhook(t *testing.T, sink *webhookSink, clock *fakeClock, opts NoticeOptions) *NoticeReceiver {
	t.Helper()
	w, err := NewWebhookReceiver(sink.URL, WebhookOptions{Now: clock.Now})
	require.NoError(t, err)
	opts.Now = clock.Now
	r, err := NewNoticeReceiver(w, opts)
	require.NoError(t, err)
	return r
}

// TestNoticeReceiver_33MinutesOfResends_PostsOnlyChangesAndReminders replays
// what the evaluator hands a plain webhook over 33 minutes (a resend every
// 75 s, as measured: the Watchdog 27 times) and counts the posts.
func TestNoticeReceiver_33MinutesOfResends_PostsOnlyChangesAndReminders(t *testing.T) {
	sink := newWebhookSink(t)
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: start}
	r := noticeWebhook(t, sink, clock, NoticeOptions{})
	ctx := context.Background()

	watchdog := testAlert(WatchdogAlertName, "", SeverityInfo)
	watchdog.StartsAt = start
	disk := testAlert("DiskFull", "a:9470", SeverityCritical)
	round := func(i int) time.Time { return start.Add(time.Duration(i) * 75 * time.Second) }
	disk.StartsAt = round(4)

	for i := range 27 {
		now := round(i)
		clock.now = now
		watchdog.EndsAt = firingEndsAt(now, 15*time.Second)
		alerts := []Alert{watchdog}
		switch {
		case i >= 4 && i < 12: // firing; its description changes at round 8
			a := disk.clone()
			a.EndsAt = firingEndsAt(now, 15*time.Second)
			if i >= 8 {
				a.Annotations["description"] = "97% full"
			}
			alerts = append(alerts, a)
		case i >= 12 && i < 24: // resolved at round 12, re-sent for 15 minutes
			a := disk.clone()
			a.Annotations["description"] = "97% full"
			a.EndsAt = round(12)
			alerts = append(alerts, a)
		}
		require.NoError(t, r.Notify(ctx, alerts), "round %d", i)
	}

	// Watchdog: at 0, then at the first resend 5 minutes or more after the
	// last post: rounds 4, 8, 12, 16, 20, 24 (every 300 s exactly).
	want := []string{"Watchdog/firing"}
	for i := 1; i < 27; i++ {
		if i%4 == 0 {
			want = append(want, "Watchdog/firing")
		}
		switch i {
		case 4, 8: // new, then its annotations changed
			want = append(want, "DiskFull/firing")
		case 12:
			want = append(want, "DiskFull/resolved")
		}
	}
	require.Equal(t, want, sink.posts(t))
	require.Len(t, want, 10, "7 Watchdog posts and 3 for DiskFull, where the evaluator handed on 27 and 20")
}

func TestNoticeReceiver_FiresNineHours_RemindedEveryRepeatInterval(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts NoticeOptions
		want int
	}{
		{name: "default 4h", opts: NoticeOptions{}, want: 3},                  // 0, 4h, 8h
		{name: "1h", opts: NoticeOptions{RepeatInterval: time.Hour}, want: 9}, // 0..8h
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newWebhookSink(t)
			start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
			clock := &fakeClock{now: start}
			r := noticeWebhook(t, sink, clock, tc.opts)
			disk := testAlert("DiskFull", "a:9470", SeverityCritical)
			disk.StartsAt = start
			// One resend a minute for 9 hours, as the evaluator does: more
			// than forgetAfter between two reminders, so an alert heard of
			// every minute must not be forgotten.
			for i := range 9 * 60 {
				clock.now = start.Add(time.Duration(i) * time.Minute)
				disk.EndsAt = firingEndsAt(clock.now, time.Minute)
				require.NoError(t, r.Notify(context.Background(), []Alert{disk}))
			}
			posts := sink.posts(t)
			require.Len(t, posts, tc.want, "%v", posts)
		})
	}
}

func TestNoticeReceiver_NextFails_NothingRemembered_PostedOnRetry(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	next := &recordingReceiver{fail: func(call int, _ []Alert) error {
		if call == 1 {
			return errUnreachable
		}
		return nil
	}}
	r, err := NewNoticeReceiver(next, NoticeOptions{Now: clock.Now})
	require.NoError(t, err)
	disk := testAlert("DiskFull", "a:9470", SeverityCritical)
	disk.StartsAt, disk.EndsAt = clock.now, clock.now.Add(4*time.Minute)

	require.ErrorIs(t, r.Notify(context.Background(), []Alert{disk}), errUnreachable)
	require.NoError(t, r.Notify(context.Background(), []Alert{disk}), "the retry")
	require.NoError(t, r.Notify(context.Background(), []Alert{disk}), "a resend: no news")
	require.Len(t, next.snapshot(), 1, "posted once, on the retry")
}

func TestNoticeReceiver_ResolvedThenFiresAgain_BothPosted(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	next := &recordingReceiver{}
	r, err := NewNoticeReceiver(next, NoticeOptions{Now: clock.Now})
	require.NoError(t, err)
	var got []string
	for i, step := range []struct {
		startsAt, endsAt time.Duration // from the start
		post             bool
	}{
		{0, 4 * time.Minute, true},               // fires
		{0, 5 * time.Minute, false},              // re-sent
		{0, 2 * time.Minute, true},               // resolved
		{0, 2 * time.Minute, false},              // resolved, re-sent
		{3 * time.Minute, 8 * time.Minute, true}, // fires again
	} {
		clock.now = clock.now.Add(time.Minute)
		a := testAlert("DiskFull", "a:9470", SeverityCritical)
		base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
		a.StartsAt, a.EndsAt = base.Add(step.startsAt), base.Add(step.endsAt)
		before := len(next.snapshot())
		require.NoError(t, r.Notify(context.Background(), []Alert{a}))
		require.Equal(t, step.post, len(next.snapshot()) > before, "step %d", i)
		got = append(got, a.Status(clock.now))
	}
	require.Equal(t, fmt.Sprint([]string{"firing", "firing", "resolved", "resolved", "firing"}), fmt.Sprint(got))
}

func TestNewNoticeReceiver_NegativeInterval_Refused(t *testing.T) {
	_, err := NewNoticeReceiver(&recordingReceiver{}, NoticeOptions{WatchdogRepeatInterval: -time.Minute})
	require.ErrorContains(t, err, "repeat intervals must be positive")
}
