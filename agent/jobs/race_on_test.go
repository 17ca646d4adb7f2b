//go:build race

package jobs

// raceEnabled: the race detector slows every step's bookkeeping, so timing
// based tests give it more work (see crashJobs).
const raceEnabled = true
