package agentapi

// NewBench is POST /benches.
type NewBench struct {
	Name   string `json:"name"`
	Image  string `json:"image"`
	Limits Limits `json:"limits"`
}

// Limits of a bench container.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	CPUs        float64 `json:"cpus,omitempty"`
}

// NewSite is POST /benches/<bench>/sites.
type NewSite struct {
	Name string `json:"name"`
}

// Backup is POST /benches/<bench>/sites/<site>/backup.
type Backup struct {
	WithFiles bool `json:"with_files"`
	Offsite   bool `json:"offsite"`
}

// Restore is POST /benches/<bench>/sites/<site>/restore: from a local backup
// folder (under the site's backups) or an offsite object key.
type Restore struct {
	Path   string `json:"path,omitempty"`
	Object string `json:"object,omitempty"`
}

// Archive is POST /benches/<bench>/sites/<site>/archive.
type Archive struct {
	Backup bool `json:"backup"`
}

// Maintenance is POST /benches/<bench>/sites/<site>/maintenance.
type Maintenance struct {
	On bool `json:"on"`
}

// The job requests the agent records: the body of the POST with the names
// from its path. Job types decode them.

// BenchRequest is the request of bench.restart and bench.archive.
type BenchRequest struct {
	Bench string `json:"bench"`
}

// BenchLimitsRequest is the request of bench.limits.
type BenchLimitsRequest struct {
	Bench  string `json:"bench"`
	Limits Limits `json:"limits"`
}

// SiteRequest is the request of site.new and site.migrate.
type SiteRequest struct {
	Bench string `json:"bench"`
	Site  string `json:"site"`
}

// SiteBackupRequest is the request of site.backup.
type SiteBackupRequest struct {
	SiteRequest
	Backup
}

// SiteRestoreRequest is the request of site.restore.
type SiteRestoreRequest struct {
	SiteRequest
	Restore
}

// SiteArchiveRequest is the request of site.archive.
type SiteArchiveRequest struct {
	SiteRequest
	Archive
}

// SiteMaintenanceRequest is the request of site.maintenance.
type SiteMaintenanceRequest struct {
	SiteRequest
	Maintenance
}

// Job types.
const (
	TypeBenchNew        = "bench.new"
	TypeBenchRestart    = "bench.restart"
	TypeBenchLimits     = "bench.limits"
	TypeBenchArchive    = "bench.archive"
	TypeSiteNew         = "site.new"
	TypeSiteMigrate     = "site.migrate"
	TypeSiteBackup      = "site.backup"
	TypeSiteRestore     = "site.restore"
	TypeSiteArchive     = "site.archive"
	TypeSiteMaintenance = "site.maintenance"
)
