package backup

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/hybridsuite/hybrid/agent/names"
)

// ManifestName is the file that makes a backup folder (or offsite prefix) a
// complete backup. It is written last.
const ManifestName = "manifest.json"

// ErrInvalidName is returned for a site, file, timestamp or object key that
// does not match the strict patterns below.
var ErrInvalidName = errors.New("invalid name")

var (
	// A file name in a manifest: a plain base name, no separators, no leading
	// dot (temporary files), no "..".
	fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)
	// The bench's backup timestamp, frappe's "%Y%m%d_%H%M%S".
	backupID = regexp.MustCompile(`^[0-9]{8}_[0-9]{6}$`)
	dateName = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// ValidateSite checks a site name with agent/names, the one set of name
// rules every layer calls.
func ValidateSite(site string) error {
	if err := names.Site(site); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	return nil
}

// ValidateFileName checks that name is a plain base name fit for a manifest.
func ValidateFileName(name string) error {
	if !fileName.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("file %q: %w: want a plain base name of [A-Za-z0-9._-]", name, ErrInvalidName)
	}
	if name == ManifestName {
		return fmt.Errorf("file %q: %w: reserved for the manifest", name, ErrInvalidName)
	}
	return nil
}

// ValidateID checks a backup id (the bench's timestamp, 20060102_150405).
func ValidateID(id string) error {
	if !backupID.MatchString(id) {
		return fmt.Errorf("backup id %q: %w: want YYYYMMDD_HHMMSS", id, ErrInvalidName)
	}
	return nil
}

// siteSlug is how frappe spells the site in backup file names.
func siteSlug(site string) string { return strings.ReplaceAll(site, ".", "_") }
