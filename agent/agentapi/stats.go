package agentapi

import (
	"encoding/json"
	"time"
)

// The job store's counts, as the agent-jobs collector reads them
// (jobs.Queue.Stats): messages of their own, so the collector depends on
// this package and a one-method interface, not on the queue.

// JobDurationBuckets are the upper bounds, in seconds, of the job duration
// histogram Stats gives, for jobs of 1 s to 2 h. Counts are kept per bucket
// in the store; a changed list still counts every job, a job only in a
// bucket that became wider.
var JobDurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}

// JobStats are the counts the metrics show. Counts of ended jobs are kept in
// the store as jobs end, so they are cumulative since the store was created.
type JobStats struct {
	// Types are the job types: those registered and those of ended jobs.
	Types []string
	Ended []JobEndedCount
	// Durations of ended jobs that started (from their first start to
	// their end, a restart between included), by type.
	Durations []JobDurations
	Pending   int
	// OldestPendingAge is how long the oldest Pending job has waited since
	// it became Pending (submitted, or set back at a restart); 0 when none.
	OldestPendingAge time.Duration
	StepFailures     []JobStepFailures
	// SiteResults are, per type and site, the last Success job whose result
	// JSON names a site: {"site": "<name>", ...}.
	SiteResults []JobSiteResult

	// Running counts the jobs running now; OldestRunning gives, for each
	// type with one running, how long the oldest has run (this attempt).
	Running       int
	OldestRunning map[string]time.Duration
	// Stopping counts running jobs whose step's ctx ended (cancel, timeout)
	// and which wait for it to return; StuckSteps those of them past
	// StopTimeout, whose worker went on to other jobs.
	Stopping   int
	StuckSteps int
	// Timeouts are the types' Timeout.
	Timeouts map[string]time.Duration
	// Pruned counts the ended jobs deleted by retention since the store was
	// created.
	Pruned uint64
	// StoreWritable is false while the last write to the store failed.
	StoreWritable bool
	// ConsecutiveFailures counts, by type, the jobs that ended Failure in a
	// row since the type's last Success.
	ConsecutiveFailures map[string]int
}

// JobEndedCount counts the jobs of a type that ended with a status.
type JobEndedCount struct {
	Type   string
	Status Status
	Count  uint64
}

// JobDurations is a histogram of a type's job durations in seconds.
type JobDurations struct {
	Type  string
	Count uint64
	Sum   float64
	// Buckets are cumulative counts by upper bound (JobDurationBuckets).
	Buckets map[float64]uint64
}

// JobStepFailures counts the times a step of a type ended Failure.
type JobStepFailures struct {
	Type, Step string
	Count      uint64
}

// JobSiteResult is the last Success job of a type for a site.
type JobSiteResult struct {
	Type, Site string
	JobID      string
	EndedAt    time.Time
	Result     json.RawMessage
}
