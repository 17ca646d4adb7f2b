package backup

import (
	"errors"
	"fmt"
	"os"
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
	// The list goes into the job's result (stored, answered, called
	// back): a folder the bench filled must not make it huge.
	if len(names) > MaxBackupEntries {
		return nil, fmt.Errorf("backups folder %s holds %d entries, more than %d: remove what is not a backup there first", backupsDir, len(names), MaxBackupEntries)
	}
	sort.Strings(names)
	return names, nil
}

// MaxBackupEntries is the most entries a site's backups folder may hold
// when a backup starts.
const MaxBackupEntries = 10_000

// maxNamed is how many names a Leftovers list gives; the rest are counted.
const maxNamed = 100

// named adds name to list, or counts it once list has maxNamed names.
func named(list []string, more *int, name string) []string {
	if len(list) < maxNamed {
		return append(list, name)
	}
	*more++
	return list
}

func andMore(list []string, more int) []string {
	if more > 0 {
		list = append(list, fmt.Sprintf("... and %d more", more))
	}
	return list
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
func RemoveLeftovers(backupsDir string, before []string, ownID string) (out Leftovers, err error) {
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
	// What the bench left is hostile in number too: a set, not a scan of
	// before per name, and lists and errors that stop growing.
	known := make(map[string]bool, len(before))
	for _, n := range before {
		known[n] = true
	}
	var errs []error
	var removedMore, leftMore int
	defer func() {
		out.Removed, out.Left = andMore(out.Removed, removedMore), andMore(out.Left, leftMore)
	}()
	fail := func(err error) {
		if len(errs) < 10 {
			errs = append(errs, err)
		}
	}
	for _, name := range names {
		if known[name] {
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
					fail(err)
					out.Left = named(out.Left, &leftMore, name+"/")
					continue
				}
				out.Removed = named(out.Removed, &removedMore, name+"/")
				continue
			}
			out.Left = named(out.Left, &leftMore, name+"/")
			continue
		}
		if err := d.remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			fail(err)
			out.Left = named(out.Left, &leftMore, name)
			continue
		}
		out.Removed = named(out.Removed, &removedMore, name)
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
