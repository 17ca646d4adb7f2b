package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Backup age thresholds: a daily backup that is a few hours late is worth a
// look, one missed entirely is not fine.
const (
	backupLate   = 26 * 3600
	backupMissed = 48 * 3600
)

// jobs is the agent's job queue (site and bench operations) and the sites'
// backups.
func jobs() spec {
	return spec{
		name:        "jobs",
		uid:         "hybrid-jobs",
		title:       "Hybrid / Agent jobs and backups",
		description: "The jobs each agent runs for the control plane (new site, migrate, backup, restore, ...): queue, outcomes, durations, failing steps; and the age and size of each site's last backup.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVariable(),
			instanceVariable(),
		},
		sections: []section{
			{title: "Queue", panels: []cog.Builder[dashboard.Panel]{
				statPanel("Pending jobs", "Jobs accepted by the agents and not started yet.", unitNone,
					series(`sum(hybrid_agent_jobs_pending{instance=~"$instance"})`, "pending")).
					Thresholds(thresholds("green", level{5, "orange"}, level{20, "red"})),
				statPanel("Oldest pending job", "How long the oldest pending job has waited; a job pending for long is stuck.", unitSeconds,
					series(`max(hybrid_agent_oldest_pending_job_age_seconds{instance=~"$instance"})`, "oldest")).
					Thresholds(thresholds("green", level{300, "orange"}, level{900, "red"})),
				statPanel("Jobs finished", "Jobs that ended, successfully or not, over the dashboard's time range.", unitNone,
					instant(`sum(increase(hybrid_agent_jobs_total{instance=~"$instance"}[$__range]))`, "finished")).
					Thresholds(thresholds("blue")).
					Decimals(0).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("Failure ratio", "Share of the jobs finished over the dashboard's time range that failed.", unitPercent,
					instant(`(sum(increase(hybrid_agent_jobs_total{status="Failure", instance=~"$instance"}[$__range])) or vector(0)) / sum(increase(hybrid_agent_jobs_total{instance=~"$instance"}[$__range]))`, "failed")).
					Thresholds(thresholds("green", level{0.05, "orange"}, level{0.2, "red"})).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("Failed steps", "Job steps that failed over the dashboard's time range; the Failures row says which.", unitNone,
					instant(`sum(increase(hybrid_agent_job_step_failures_total{instance=~"$instance"}[$__range])) or vector(0)`, "failed steps")).
					Thresholds(thresholds("green", level{1, "red"})).
					Decimals(0).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("Backups overdue", "Sites whose last backup is older than 26 hours.", unitNone,
					series(`count(time() - hybrid_site_last_backup_timestamp_seconds{instance=~"$instance"} > `+seconds(backupLate)+`) or vector(0)`, "overdue")).
					Thresholds(thresholds("green", level{1, "red"})),
			}},
			{title: "Throughput", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Pending jobs", "Jobs waiting to start on each agent, and the age of the oldest (right axis).", unitShort,
					series(`hybrid_agent_jobs_pending{instance=~"$instance"}`, "{{instance}} pending"),
					series(`hybrid_agent_oldest_pending_job_age_seconds{instance=~"$instance"}`, "{{instance}} oldest age")).
					OverrideByRegexp(".*oldest age", []dashboard.DynamicConfigValue{
						{Id: "unit", Value: unitSeconds},
						{Id: "custom.axisPlacement", Value: "right"},
					}),
				stacked(timeSeries("Jobs finished by status", "Jobs per minute that ended, by type and outcome (Success or Failure).", unitOpsPM,
					series(`sum by (type, status) (rate(hybrid_agent_jobs_total{instance=~"$instance"}[$__rate_interval])) * 60`, "{{type}} {{status}}"))),
				timeSeries("Job duration", "Median and 95th percentile of the time jobs of each type took, over the last hour (jobs are too rare for a shorter window).", unitSeconds,
					series(`histogram_quantile(0.5, sum by (type, le) (rate(hybrid_agent_job_duration_seconds_bucket{instance=~"$instance"}[1h])))`, "{{type}} p50"),
					series(`histogram_quantile(0.95, sum by (type, le) (rate(hybrid_agent_job_duration_seconds_bucket{instance=~"$instance"}[1h])))`, "{{type}} p95")).
					Span(24),
			}},
			{title: "Failures", panels: []cog.Builder[dashboard.Panel]{
				barGauge("Failed jobs by type", "Jobs of each type that failed over the dashboard's time range.", unitNone,
					instant(`sum by (type) (increase(hybrid_agent_jobs_total{status="Failure", instance=~"$instance"}[$__range]))`, "{{type}}")).
					Thresholds(thresholds("green", level{1, "red"})).
					Decimals(0),
				barGauge("Failed steps", "Steps that failed over the dashboard's time range, by job type and step: where to look in the job's log.", unitNone,
					instant(`sum by (type, step) (increase(hybrid_agent_job_step_failures_total{instance=~"$instance"}[$__range]))`, "{{type}} / {{step}}")).
					Thresholds(thresholds("green", level{1, "red"})).
					Decimals(0),
			}},
			{title: "Backups", panels: []cog.Builder[dashboard.Panel]{
				barGauge("Time since last backup", "Age of each site's last successful backup: orange after 26 hours, red after 48.", unitDuration,
					instant(`time() - hybrid_site_last_backup_timestamp_seconds{instance=~"$instance"}`, "{{site}}")).
					Thresholds(thresholds("green", level{backupLate, "orange"}, level{backupMissed, "red"})),
				timeSeries("Backup size", "Size of each site's last backup (database and files).", unitBytes,
					series(`hybrid_site_backup_size_bytes{instance=~"$instance"}`, "{{site}}")),
			}},
		},
	}
}
