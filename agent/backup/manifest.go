package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// manifestVersion is bumped only if a field changes meaning; new fields are
// added without a bump.
const manifestVersion = 1

// maxManifestBytes bounds what is read as a manifest (a few hundred bytes in
// practice); anything bigger is not ours.
const maxManifestBytes = 1 << 20

// File is one file of a backup (agentapi.BackupFile).
type File = agentapi.BackupFile

// Manifest describes one complete backup of one site.
type Manifest struct {
	Version   int       `json:"version"`
	Site      string    `json:"site"`
	ID        string    `json:"id"` // the bench's timestamp, also the folder name
	CreatedAt time.Time `json:"created_at"`
	Files     []File    `json:"files"`
	Size      int64     `json:"size_bytes"` // sum of Files[].Size

	// Dir is the local folder the manifest was read from or written to.
	Dir string `json:"-"`
	// OffsitePrefix is set by Offsite.List; after a successful
	// Offsite.Upload the caller sets it from Offsite.Prefix.
	OffsitePrefix string `json:"-"`
}

// Result is the job result of a backup: agentapi's message, which the
// agent-jobs collector and the control plane read.
type Result = agentapi.BackupResult

// Result returns the job result for this backup.
func (m Manifest) Result() Result {
	return Result{
		Site:          m.Site,
		Size:          m.Size,
		CreatedAt:     m.CreatedAt,
		Dir:           m.Dir,
		OffsitePrefix: m.OffsitePrefix,
		Files:         append([]File(nil), m.Files...),
	}
}

// UncompressedSize is the space a restore needs to unpack every file: the
// recorded decompressed size of each .gz file, or its size when not known.
func (m Manifest) UncompressedSize() int64 {
	var n int64
	for _, f := range m.Files {
		if f.UncompressedSize > 0 {
			n += f.UncompressedSize
		} else {
			n += f.Size
		}
	}
	return n
}

// Validate checks everything a manifest read from disk or from offsite
// storage must satisfy before any of its names is used in a path or key.
func (m Manifest) Validate() error {
	var errs []error
	if m.Version < 1 {
		errs = append(errs, fmt.Errorf("version %d: want >= 1", m.Version))
	}
	if err := ValidateSite(m.Site); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateID(m.ID); err != nil {
		errs = append(errs, err)
	}
	if m.CreatedAt.IsZero() {
		errs = append(errs, errors.New("created_at is missing"))
	}
	if len(m.Files) == 0 {
		errs = append(errs, errors.New("no files"))
	}
	seen := make(map[string]bool, len(m.Files))
	var total int64
	for _, f := range m.Files {
		if err := ValidateFileName(f.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[f.Name] {
			errs = append(errs, fmt.Errorf("file %q listed twice", f.Name))
		}
		seen[f.Name] = true
		if f.Size < 0 || f.UncompressedSize < 0 {
			errs = append(errs, fmt.Errorf("file %q: negative size", f.Name))
		}
		if len(f.SHA256) != 64 || !isLowerHex(f.SHA256) {
			errs = append(errs, fmt.Errorf("file %q: sha256 %q is not 64 lower-case hex digits", f.Name, f.SHA256))
		}
		total += f.Size
	}
	if total != m.Size {
		errs = append(errs, fmt.Errorf("size_bytes %d is not the sum of the files' sizes %d", m.Size, total))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid manifest: %w", err)
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func decodeManifest(data []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("decode manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// readManifest reads and validates the manifest of the backup folder d,
// without following a link. A missing manifest is reported as ErrIncomplete.
func readManifest(d *safeDir) (Manifest, error) {
	f, _, err := d.openFile(ManifestName)
	if errors.Is(err, os.ErrNotExist) {
		return Manifest{}, fmt.Errorf("backup %s: %w: no %s", d.path, ErrIncomplete, ManifestName)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest %s: %w", f.Name(), err)
	}
	if len(data) > maxManifestBytes {
		return Manifest{}, fmt.Errorf("read manifest %s: larger than %d bytes", f.Name(), maxManifestBytes)
	}
	m, err := decodeManifest(data)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup %s: %w", d.path, err)
	}
	m.Dir = d.path
	return m, nil
}
