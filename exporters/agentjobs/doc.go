// Package agentjobs exports the agent's job queue: jobs ended by type and
// status, their durations, pending jobs and how long the oldest has waited,
// running jobs and how long the oldest of each type has run (beside each
// type's timeout), stopped jobs whose step has not returned, jobs pruned,
// whether the store can be written, step failures, and from the results of
// site backups, each site's last backup time and size.
//
// Everything is read from the job store on each scrape, from counters the
// queue keeps as jobs end (a few rows per job type), so the counters are
// cumulative since the store was created and survive agent restarts.
//
// The site backup metrics come from the last Success job of type
// "site.backup" per site. Its result JSON (Run.SetResult) must hold
//
//	{"site": "<site name>", "size_bytes": <total bytes of the backup>}
//
// beside whatever else it carries. A result without "site" is not counted;
// one without "size_bytes" gives the timestamp only. With a SiteLister,
// every site that exists has a timestamp, 0 when it was never backed up, and
// a site archived has none (its series goes away).
package agentjobs
