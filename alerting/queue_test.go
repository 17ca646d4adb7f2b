package alerting

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQueue_SameLabelSetPushedTwice_KeepsNewestStateOnce(t *testing.T) {
	q := newQueue(10)
	firing := testAlert("DiskFull", "a:9470", SeverityCritical)
	firing.EndsAt = time.Unix(2000, 0)
	resolved := firing.clone()
	resolved.EndsAt = time.Unix(1000, 0)
	other := testAlert("DiskFull", "b:9470", SeverityCritical)

	require.Zero(t, q.push([]Alert{firing, other}))
	require.Zero(t, q.push([]Alert{resolved}))

	require.Equal(t, 2, q.len())
	got := q.take(10)
	require.Equal(t, []Alert{other, resolved}, got, "the updated alert moves to the back, with its new state")
}

func TestQueue_Full_DropsOldest(t *testing.T) {
	q := newQueue(3)
	var alerts []Alert
	for i := range 5 {
		alerts = append(alerts, testAlert(fmt.Sprintf("A%d", i), "a:9470", SeverityWarning))
	}

	require.Equal(t, 2, q.push(alerts))

	require.Equal(t, 3, q.len())
	require.Equal(t, alerts[2:], q.take(10))
}

func TestQueue_Requeue_PutsBatchBackAsOldest(t *testing.T) {
	q := newQueue(10)
	a, b, c := testAlert("A", "x", SeverityWarning), testAlert("B", "x", SeverityWarning), testAlert("C", "x", SeverityWarning)
	q.push([]Alert{a, b})
	batch := q.take(2)
	q.push([]Alert{c})

	require.Zero(t, q.requeue(batch))

	require.Equal(t, []Alert{a, b, c}, q.take(10))
}

func TestQueue_Requeue_NewerStatePushedMeanwhile_KeepsNewer(t *testing.T) {
	q := newQueue(10)
	old := testAlert("A", "x", SeverityWarning)
	old.EndsAt = time.Unix(2000, 0)
	q.push([]Alert{old})
	batch := q.take(1)
	newer := old.clone()
	newer.EndsAt = time.Unix(1000, 0)
	q.push([]Alert{newer})

	q.requeue(batch)

	require.Equal(t, []Alert{newer}, q.take(10))
}

func TestQueue_RequeueIntoFullQueue_DropsOldest(t *testing.T) {
	q := newQueue(2)
	a, b, c := testAlert("A", "x", SeverityWarning), testAlert("B", "x", SeverityWarning), testAlert("C", "x", SeverityWarning)
	q.push([]Alert{a})
	batch := q.take(1)
	q.push([]Alert{b, c})

	require.Equal(t, 1, q.requeue(batch))

	require.Equal(t, []Alert{b, c}, q.take(10))
}

func TestQueue_Take_LimitsBatch(t *testing.T) {
	q := newQueue(10)
	q.push([]Alert{testAlert("A", "x", ""), testAlert("B", "x", ""), testAlert("C", "x", "")})
	require.Len(t, q.take(2), 2)
	require.Len(t, q.take(2), 1)
	require.Empty(t, q.take(2))
}
