package exporters

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func TestMinInterval_ReplaysWithinInterval_RunsAfter_DoesNotCacheFailures(t *testing.T) {
	now := time.Unix(1000, 0)
	runs := 0
	var fail error
	c := MinInterval(funcCollector(func(_ context.Context, ch chan<- prometheus.Metric) error {
		runs++
		if fail != nil {
			return fail
		}
		ch <- prometheus.MustNewConstMetric(fooDesc, prometheus.GaugeValue, float64(runs))
		return nil
	}), 10*time.Second, func() time.Time { return now })

	update := func() (float64, error) {
		ch := make(chan prometheus.Metric, 10)
		err := c.Update(context.Background(), ch)
		close(ch)
		var v float64
		for m := range ch {
			v = metricValue(t, m)
		}
		return v, err
	}

	v, err := update()
	require.NoError(t, err)
	require.Equal(t, 1.0, v)

	now = now.Add(9 * time.Second)
	v, err = update()
	require.NoError(t, err)
	require.Equal(t, 1.0, v, "replayed within the interval")
	require.Equal(t, 1, runs)

	now = now.Add(2 * time.Second)
	v, err = update()
	require.NoError(t, err)
	require.Equal(t, 2.0, v, "run again after the interval")

	now = now.Add(11 * time.Second)
	fail = errors.New("boom")
	_, err = update()
	require.Error(t, err)
	fail = nil
	v, err = update()
	require.NoError(t, err)
	require.Equal(t, 4.0, v, "a failure is not cached: the next scrape runs it")
}

func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	require.NoError(t, m.Write(&pb))
	return pb.GetGauge().GetValue()
}
