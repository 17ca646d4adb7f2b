package agentjobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// BackupType is the job type whose results give the site backup metrics.
const BackupType = "site.backup"

// Source is what the collector reads: the job queue.
type Source interface {
	Stats(ctx context.Context) (agentapi.JobStats, error)
}

// SiteRef names a site and its bench.
type SiteRef struct{ Bench, Site string }

// SiteLister lists the sites that exist on the server (not archived ones).
type SiteLister interface {
	Sites(ctx context.Context) ([]SiteRef, error)
}

// Collector exports a job queue's metrics.
type Collector struct {
	src   Source
	sites SiteLister

	endedDesc        *prometheus.Desc
	durationDesc     *prometheus.Desc
	pendingDesc      *prometheus.Desc
	oldestDesc       *prometheus.Desc
	stepFailuresDesc *prometheus.Desc
	backupTimeDesc   *prometheus.Desc
	backupSizeDesc   *prometheus.Desc
	runningDesc      *prometheus.Desc
	oldestRunDesc    *prometheus.Desc
	timeoutDesc      *prometheus.Desc
	stoppingDesc     *prometheus.Desc
	stuckDesc        *prometheus.Desc
	prunedDesc       *prometheus.Desc
	writableDesc     *prometheus.Desc
	streakDesc       *prometheus.Desc
}

// New returns a Collector reading src. With sites, every existing site has
// a last backup timestamp (0 when never backed up) and a site that is gone
// (archived) has none; without, only sites with a backup have one.
func New(src Source, sites SiteLister) *Collector {
	return &Collector{
		src:   src,
		sites: sites,
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
			"When the site's last successful backup job ended, as a Unix time; 0 when it never had one.", []string{"site"}, nil),
		backupSizeDesc: prometheus.NewDesc("hybrid_site_backup_size_bytes",
			"Size of the site's last successful backup.", []string{"site"}, nil),
		runningDesc: prometheus.NewDesc("hybrid_agent_jobs_running",
			"Jobs running now, stopping ones included.", nil, nil),
		oldestRunDesc: prometheus.NewDesc("hybrid_agent_oldest_running_job_age_seconds",
			"How long the oldest running job of the type has run (this attempt); 0 when none runs.", []string{"type"}, nil),
		timeoutDesc: prometheus.NewDesc("hybrid_agent_job_timeout_seconds",
			"The time a job of the type may run before it is stopped.", []string{"type"}, nil),
		stoppingDesc: prometheus.NewDesc("hybrid_agent_jobs_stopping",
			"Jobs cancelled or timed out whose step has not returned yet.", nil, nil),
		stuckDesc: prometheus.NewDesc("hybrid_agent_job_steps_stuck",
			"Stopped steps that have not returned within the stop timeout; their jobs stay Running.", nil, nil),
		prunedDesc: prometheus.NewDesc("hybrid_agent_jobs_pruned_total",
			"Ended jobs deleted from the job store by retention.", nil, nil),
		streakDesc: prometheus.NewDesc("hybrid_agent_job_consecutive_failures",
			"Jobs of the type that ended Failure in a row since its last Success; 0 after a Success.", []string{"type"}, nil),
		writableDesc: prometheus.NewDesc("hybrid_agent_job_store_writable",
			"1 when the last write to the job store succeeded, 0 when it failed (disk full): jobs cannot record their progress.", nil, nil),
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

	durations := map[string]agentapi.JobDurations{}
	for _, t := range s.Types {
		durations[t] = agentapi.JobDurations{Type: t}
	}
	for _, d := range s.Durations {
		durations[d.Type] = d
	}
	for t, d := range durations {
		buckets := make(map[float64]uint64, len(agentapi.JobDurationBuckets))
		for _, le := range agentapi.JobDurationBuckets {
			buckets[le] = d.Buckets[le]
		}
		ch <- prometheus.MustNewConstHistogram(c.durationDesc, d.Count, d.Sum, buckets, t)
	}

	ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(c.oldestDesc, prometheus.GaugeValue, s.OldestPendingAge.Seconds())

	for _, f := range s.StepFailures {
		ch <- prometheus.MustNewConstMetric(c.stepFailuresDesc, prometheus.CounterValue, float64(f.Count), f.Type, f.Step)
	}

	ch <- prometheus.MustNewConstMetric(c.runningDesc, prometheus.GaugeValue, float64(s.Running))
	ch <- prometheus.MustNewConstMetric(c.stoppingDesc, prometheus.GaugeValue, float64(s.Stopping))
	ch <- prometheus.MustNewConstMetric(c.stuckDesc, prometheus.GaugeValue, float64(s.StuckSteps))
	ch <- prometheus.MustNewConstMetric(c.prunedDesc, prometheus.CounterValue, float64(s.Pruned))
	writable := 0.0
	if s.StoreWritable {
		writable = 1
	}
	ch <- prometheus.MustNewConstMetric(c.writableDesc, prometheus.GaugeValue, writable)
	for _, t := range s.Types {
		ch <- prometheus.MustNewConstMetric(c.oldestRunDesc, prometheus.GaugeValue, s.OldestRunning[t].Seconds(), t)
		ch <- prometheus.MustNewConstMetric(c.streakDesc, prometheus.GaugeValue, float64(s.ConsecutiveFailures[t]), t)
		if d, ok := s.Timeouts[t]; ok {
			ch <- prometheus.MustNewConstMetric(c.timeoutDesc, prometheus.GaugeValue, d.Seconds(), t)
		}
	}

	return c.updateBackups(ctx, ch, s.SiteResults)
}

// updateBackups sends each site's last backup time and size.
func (c *Collector) updateBackups(ctx context.Context, ch chan<- prometheus.Metric, results []agentapi.JobSiteResult) error {
	last := map[string]agentapi.JobSiteResult{}
	for _, r := range results {
		if r.Type == BackupType {
			last[r.Site] = r
		}
	}
	var sites []string
	if c.sites == nil {
		for site := range last {
			sites = append(sites, site)
		}
	} else {
		refs, err := c.sites.Sites(ctx)
		if err != nil {
			return fmt.Errorf("list sites: %w", err)
		}
		seen := map[string]bool{}
		for _, ref := range refs {
			if !seen[ref.Site] { // a site's name is unique on the server; a series must be
				seen[ref.Site] = true
				sites = append(sites, ref.Site)
			}
		}
	}
	for _, site := range sites {
		r, ok := last[site]
		if !ok {
			ch <- prometheus.MustNewConstMetric(c.backupTimeDesc, prometheus.GaugeValue, 0, site)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.backupTimeDesc, prometheus.GaugeValue,
			float64(r.EndedAt.UnixNano())/1e9, site)
		var backup agentapi.BackupResult
		if json.Unmarshal(r.Result, &backup) == nil && backup.Site != "" {
			ch <- prometheus.MustNewConstMetric(c.backupSizeDesc, prometheus.GaugeValue, float64(backup.Size), site)
		}
	}
	return nil
}
