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
