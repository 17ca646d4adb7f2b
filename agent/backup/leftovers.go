package backup

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

	"golang.org/x/sys/unix"
)

// Entries lists the names in a site's backups folder, sorted; none when the
// folder does not exist yet. A backup step records them before the bench
// runs, so what a killed bench command left can be told apart afterwards.
func Entries(backupsDir string) ([]string, error) {
	d, err := openDir(backupsDir)
	if errors.Is(err, os.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups folder: %w", err)
	}
	defer d.Close()
	names, err := d.names()
	if err != nil {
		return nil, fmt.Errorf("list backups folder: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Leftovers is what RemoveLeftovers found: what it removed, and what it
// left (folders with a manifest, or that it could not remove). Folders end
// in "/".
type Leftovers struct {
	Removed []string `json:"removed,omitempty"`
	Left    []string `json:"left,omitempty"`
}

// RemoveLeftovers removes from a site's backups folder the entries that are
// not in before: what a bench backup that failed or was killed left (its
// files, its temporary files) and, when ownID is the id of that backup, its
// folder if it has no manifest (a seal cut short). Files and links are
// unlinked, never followed; other folders (another backup's seal in
// progress) are named in Left, not touched.
func RemoveLeftovers(backupsDir string, before []string, ownID string) (Leftovers, error) {
	var out Leftovers
	d, err := openDir(backupsDir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("clean backups folder: %w", err)
	}
	defer d.Close()
	names, err := d.names()
	if err != nil {
		return out, fmt.Errorf("clean backups folder: %w", err)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if slices.Contains(before, name) {
			continue
		}
		st, err := d.lstat(name)
		if err != nil {
			continue // gone meanwhile
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// This backup's folder, without a manifest: its seal, cut short.
			if ownID != "" && name == ownID && !hasManifest(d, name) {
				if err := d.removeAll(name); err != nil {
					errs = append(errs, err)
					out.Left = append(out.Left, name+"/")
					continue
				}
				out.Removed = append(out.Removed, name+"/")
				continue
			}
			out.Left = append(out.Left, name+"/")
			continue
		}
		if err := d.remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			out.Left = append(out.Left, name)
			continue
		}
		out.Removed = append(out.Removed, name)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("clean backups folder: %w", err)
	}
	return out, nil
}

// RemoveLocal deletes the backup id from a site's backups folder, through
// descriptors: a link in it is removed as a link, never followed.
func RemoveLocal(backupsDir, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	d, err := openDir(backupsDir)
	if err != nil {
		return fmt.Errorf("remove backup %s: %w", id, err)
	}
	defer d.Close()
	// The manifest first: a folder half removed is no longer a backup.
	if sd, err := d.sub(id); err == nil {
		err := sd.remove(ManifestName)
		sd.Close()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove backup %s: %w", id, err)
		}
	}
	if err := d.removeAll(id); err != nil {
		return fmt.Errorf("remove backup %s: %w", id, err)
	}
	return nil
}

func hasManifest(d *safeDir, name string) bool {
	sd, err := d.sub(name)
	if err != nil {
		return true // not ours to judge: left alone
	}
	defer sd.Close()
	_, err = sd.lstat(ManifestName)
	return err == nil
}
