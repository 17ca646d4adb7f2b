package alerting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNextBackoff_DoublesFromMinimum_CapsAtMaximum(t *testing.T) {
	var got []time.Duration
	var d time.Duration
	for range 9 {
		d = nextBackoff(d, time.Second, time.Minute)
		got = append(got, d)
	}
	require.Equal(t, []time.Duration{
		time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, time.Minute, time.Minute, time.Minute,
	}, got)
}

func TestNextBackoff_MaximumNotAPowerOfTwo_NeverExceeded(t *testing.T) {
	require.Equal(t, 3*time.Second, nextBackoff(2*time.Second, time.Second, 3*time.Second))
	require.Equal(t, 3*time.Second, nextBackoff(3*time.Second, time.Second, 3*time.Second))
}
