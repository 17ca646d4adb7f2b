package agentjobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// BackupType is the job type whose results give the site backup metrics.
const BackupType = "site.backup"

// Source is what the collector reads: the job queue.
type Source interface {
	Stats(ctx context.Context) (jobs.Stats, error)
}

var _ Source = (*jobs.Queue)(nil)

// Collector exports a job queue's metrics.
type Collector struct {
	src Source

	endedDesc        *prometheus.Desc
	durationDesc     *prometheus.Desc
	pendingDesc      *prometheus.Desc
	oldestDesc       *prometheus.Desc
	stepFailuresDesc *prometheus.Desc
	backupTimeDesc   *prometheus.Desc
	backupSizeDesc   *prometheus.Desc
}

// New returns a Collector reading src.
func New(src Source) *Collector {
	return &Collector{
		src: src,
		endedDesc: prometheus.NewDesc("hybrid_agent_jobs_total",
			"Jobs that ended, by type and status (Success or Failure).", []string{"type", "status"}, nil),
		durationDesc: prometheus.NewDesc("hybrid_agent_job_duration_seconds",
			"Time from a job's first start to its end, of jobs that ended, by type.", []string{"type"}, nil),
		pendingDesc: prometheus.NewDesc("hybrid_agent_jobs_pending",
			"Jobs waiting for a worker.", nil, nil),
		oldestDesc: prometheus.NewDesc("hybrid_agent_oldest_pending_job_age_seconds",
			"How long the oldest pending job has waited; 0 when none waits.", nil, nil),
		stepFailuresDesc: prometheus.NewDesc("hybrid_agent_job_step_failures_total",
			"Steps that ended Failure (an error, a timeout, a cancel or an interruption), by job type and step.",
			[]string{"type", "step"}, nil),
		backupTimeDesc: prometheus.NewDesc("hybrid_site_last_backup_timestamp_seconds",
			"When the site's last successful backup job ended, as a Unix time.", []string{"site"}, nil),
		backupSizeDesc: prometheus.NewDesc("hybrid_site_backup_size_bytes",
			"Size of the site's last successful backup.", []string{"site"}, nil),
	}
}

// Update sends the metrics.
func (c *Collector) Update(ctx context.Context, ch chan<- prometheus.Metric) error {
	s, err := c.src.Stats(ctx)
	if err != nil {
		return fmt.Errorf("read job stats: %w", err)
	}

	// Every type starts at 0 for both ends, so increase() sees the first.
	ended := map[[2]string]uint64{}
	for _, t := range s.Types {
		ended[[2]string{t, string(agentapi.Success)}] = 0
		ended[[2]string{t, string(agentapi.Failure)}] = 0
	}
	for _, e := range s.Ended {
		ended[[2]string{e.Type, string(e.Status)}] = e.Count
	}
	for k, n := range ended {
		ch <- prometheus.MustNewConstMetric(c.endedDesc, prometheus.CounterValue, float64(n), k[0], k[1])
	}

	durations := map[string]jobs.Durations{}
	for _, t := range s.Types {
		durations[t] = jobs.Durations{Type: t}
	}
	for _, d := range s.Durations {
		durations[d.Type] = d
	}
	for t, d := range durations {
		buckets := make(map[float64]uint64, len(jobs.DurationBuckets))
		for _, le := range jobs.DurationBuckets {
			buckets[le] = d.Buckets[le]
		}
		ch <- prometheus.MustNewConstHistogram(c.durationDesc, d.Count, d.Sum, buckets, t)
	}

	ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(c.oldestDesc, prometheus.GaugeValue, s.OldestPendingAge.Seconds())

	for _, f := range s.StepFailures {
		ch <- prometheus.MustNewConstMetric(c.stepFailuresDesc, prometheus.CounterValue, float64(f.Count), f.Type, f.Step)
	}

	for _, r := range s.SiteResults {
		if r.Type != BackupType {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.backupTimeDesc, prometheus.GaugeValue,
			float64(r.EndedAt.UnixNano())/1e9, r.Site)
		var backup struct {
			SizeBytes *float64 `json:"size_bytes"`
		}
		if json.Unmarshal(r.Result, &backup) == nil && backup.SizeBytes != nil {
			ch <- prometheus.MustNewConstMetric(c.backupSizeDesc, prometheus.GaugeValue, *backup.SizeBytes, r.Site)
		}
	}
	return nil
}
