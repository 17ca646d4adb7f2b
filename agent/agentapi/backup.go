package agentapi

import "time"

// BackupResult is the result of a job that made a backup (site.backup,
// site.migrate's pre-migrate backup): what the control plane records and the
// agent-jobs collector reads (hybrid_site_backup_size_bytes).
type BackupResult struct {
	Site string `json:"site"`
	// Size is the sum of the files' sizes.
	Size      int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
	// Dir is the sealed backup's folder on the server.
	Dir string `json:"dir"`
	// OffsitePrefix is where it was uploaded, when it was.
	OffsitePrefix string       `json:"offsite_prefix,omitempty"`
	Files         []BackupFile `json:"files"`
}

// BackupFile is one file of a backup.
type BackupFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size_bytes"`
	SHA256 string `json:"sha256"`
	// UncompressedSize is the exact decompressed size of a .gz file, counted
	// when the backup was sealed; 0 when unknown (older manifests).
	UncompressedSize int64 `json:"uncompressed_bytes,omitempty"`
}
