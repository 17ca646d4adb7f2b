package agentapi

// TypeSitePruneBackups deletes a site's old backups, local and offsite, by
// a retention policy.
const TypeSitePruneBackups = "site.prune_backups"

// PruneBackups is POST /benches/<bench>/sites/<site>/backups/prune, body
// optional: fields left out take the agent's configured policy (by default
// the last 7 and any younger than 7 days). Offsite defaults to whether the
// agent has offsite storage.
type PruneBackups struct {
	KeepLast *int  `json:"keep_last,omitempty"`
	KeepDays *int  `json:"keep_days,omitempty"`
	Offsite  *bool `json:"offsite,omitempty"`
}

// SitePruneBackupsRequest is the request of site.prune_backups.
type SitePruneBackupsRequest struct {
	SiteRequest
	PruneBackups
}

// PruneResult is the result of site.prune_backups: exactly what was deleted
// and what was kept, local backups by id, offsite ones by prefix.
type PruneResult struct {
	KeepLast int            `json:"keep_last"`
	KeepDays int            `json:"keep_days"`
	Local    PrunedBackups  `json:"local"`
	Offsite  *PrunedBackups `json:"offsite,omitempty"`
}

// PrunedBackups lists what a prune deleted and kept in one place.
type PrunedBackups struct {
	Deleted []string `json:"deleted"`
	Kept    []string `json:"kept"`
	// Deleting is the backup being deleted when the job stopped (the agent
	// was killed half-way): its deletion is finished when the job resumes,
	// since the backup, its manifest gone, is no longer listed.
	Deleting string `json:"deleting,omitempty"`
}
