package alerting

import "time"

// nextBackoff doubles the wait after each failed attempt, from minimum up to
// maximum. No jitter: one control core sends to a handful of receivers, so
// there is no herd to spread.
func nextBackoff(prev, minimum, maximum time.Duration) time.Duration {
	if prev < minimum {
		return minimum
	}
	if prev > maximum/2 {
		return maximum
	}
	return prev * 2
}
