package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFiringEndsAt_IntervalBelowOneMinute_FourMinutesLater(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, now.Add(4*time.Minute), firingEndsAt(now, 15*time.Second))
	require.Equal(t, now.Add(4*time.Minute), firingEndsAt(now, 0))
}

func TestFiringEndsAt_IntervalAboveOneMinute_FourIntervalsLater(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	require.Equal(t, now.Add(8*time.Minute), firingEndsAt(now, 2*time.Minute))
}

func TestSend_FiringWithoutEnd_GetsEndsAtAndStartsAt(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := &recordingReceiver{}
	n := startNotifier(t, Options{
		Receivers:          map[string]Receiver{"rec": rec},
		EvaluationInterval: 30 * time.Second,
		Now:                func() time.Time { return now },
	})

	n.Send([]Alert{testAlert("DiskFull", "a:9470", SeverityCritical)})

	require.Eventually(t, func() bool { return len(rec.snapshot()) == 1 }, 5*time.Second, 5*time.Millisecond)
	got := rec.snapshot()[0]
	require.Equal(t, now, got.StartsAt)
	require.Equal(t, now.Add(4*time.Minute), got.EndsAt)
	require.Equal(t, StatusFiring, got.Status(now))
}

func TestSend_ResolvedAlert_KeepsItsResolveTime(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	started, resolved := now.Add(-time.Hour), now.Add(-time.Minute)
	rec := &recordingReceiver{}
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"rec": rec}, Now: func() time.Time { return now }})

	a := testAlert("DiskFull", "a:9470", SeverityCritical)
	a.StartsAt, a.EndsAt = started, resolved
	n.Send([]Alert{a})

	require.Eventually(t, func() bool { return len(rec.snapshot()) == 1 }, 5*time.Second, 5*time.Millisecond)
	got := rec.snapshot()[0]
	require.Equal(t, started, got.StartsAt)
	require.Equal(t, resolved, got.EndsAt)
	require.Equal(t, StatusResolved, got.Status(now))
}

func TestSend_ResolvedWithoutStart_StartsWhenItResolved(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := &recordingReceiver{}
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"rec": rec}, Now: func() time.Time { return now }})

	a := testAlert("DiskFull", "a:9470", SeverityCritical)
	a.EndsAt = now.Add(-time.Minute)
	n.Send([]Alert{a})

	require.Eventually(t, func() bool { return len(rec.snapshot()) == 1 }, 5*time.Second, 5*time.Millisecond)
	got := rec.snapshot()[0]
	require.Equal(t, a.EndsAt, got.StartsAt, "never an alert that ends before it starts, which Alertmanager refuses")
}

func TestSend_CallerChangesAlertAfterSend_QueuedCopyUnchanged(t *testing.T) {
	rec := &recordingReceiver{fail: func(call int, _ []Alert) error {
		if call == 1 {
			return errUnreachable
		}
		return nil
	}}
	n := startNotifier(t, Options{Receivers: map[string]Receiver{"rec": rec}})
	a := testAlert("DiskFull", "a:9470", SeverityCritical)
	n.Send([]Alert{a})
	a.Labels["severity"] = "changed"

	require.Eventually(t, func() bool { return len(rec.snapshot()) == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, SeverityCritical, rec.snapshot()[0].Labels["severity"])
}

func TestAlertValidate_RefusesWhatAlertmanagerRefuses(t *testing.T) {
	for name, a := range map[string]Alert{
		"no labels":            {},
		"invalid label name":   {Labels: map[string]string{"alert-name": "x"}},
		"invalid annotation":   {Labels: map[string]string{"alertname": "x"}, Annotations: map[string]string{"run book": "x"}},
		"ends before starting": {Labels: map[string]string{"alertname": "x"}, StartsAt: time.Unix(100, 0), EndsAt: time.Unix(50, 0)},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, a.validate())
		})
	}
	require.NoError(t, testAlert("DiskFull", "a:9470", SeverityCritical).validate())
}

func TestAlertFingerprintAndKey_LabelOrderDoesNotMatter(t *testing.T) {
	// The integration test compares the fingerprint with the one a real
	// Alertmanager puts in its webhook message.
	a := Alert{Labels: map[string]string{"alertname": "test", "instance": "a"}}
	b := Alert{Labels: map[string]string{"instance": "a", "alertname": "test"}}
	require.Equal(t, a.Fingerprint(), b.Fingerprint())
	require.Len(t, a.Fingerprint(), 16)
	require.Equal(t, a.key(), b.key())
}
