package backup

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ManifestName is the file that makes a backup folder (or offsite prefix) a
// complete backup. It is written last.
const ManifestName = "manifest.json"

// ErrInvalidName is returned for a site, file, timestamp or object key that
// does not match the strict patterns below.
var ErrInvalidName = errors.New("invalid name")

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// A file name in a manifest: a plain base name, no separators, no leading
	// dot (temporary files), no "..".
	fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)
	// The bench's backup timestamp, frappe's "%Y%m%d_%H%M%S".
	backupID = regexp.MustCompile(`^[0-9]{8}_[0-9]{6}$`)
	dateName = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// ValidateSite checks a site name against DNS rules: lower-case labels of
// letters, digits and inner hyphens, 1-63 characters each, 253 in all.
func ValidateSite(site string) error {
	if site == "" || len(site) > 253 {
		return fmt.Errorf("site %q: %w: want 1-253 characters", site, ErrInvalidName)
	}
	for label := range strings.SplitSeq(site, ".") {
		if !dnsLabel.MatchString(label) {
			return fmt.Errorf("site %q: %w: label %q is not a DNS label", site, ErrInvalidName, label)
		}
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
