package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// Verify re-reads every file of the backup in dir and compares its size and
// sha256 with the manifest. Every bad file is named in the error, which wraps
// ErrCorrupt or ErrIncomplete. Nothing is followed: the folder and its files
// must be a plain folder and regular files with one link each (ErrUnsafe
// otherwise) and, when the agent runs as root, sealed: owned by root and
// writable by nobody else, so the bench cannot have changed them.
func Verify(ctx context.Context, dir string) (Manifest, error) {
	d, err := openDir(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("verify: %w", err)
	}
	defer d.Close()
	return verifyDir(ctx, d, true)
}

// verifyDir verifies the backup in d; sealedOnly also checks that the folder
// and its files are sealed (see Verify).
func verifyDir(ctx context.Context, d *safeDir, sealedOnly bool) (Manifest, error) {
	if sealedOnly {
		if st, err := d.stat(); err != nil {
			return Manifest{}, fmt.Errorf("verify backup %s: %w", d.path, err)
		} else if err := checkSealed(st); err != nil {
			return Manifest{}, fmt.Errorf("verify backup %s: %w", d.path, err)
		}
	}
	m, err := readManifest(d)
	if err != nil {
		return Manifest{}, fmt.Errorf("verify: %w", err)
	}
	if sealedOnly && filepath.Base(d.path) != m.ID {
		// A sealed backup renamed by the bench, which can rename what is in
		// its backups folder.
		return Manifest{}, fmt.Errorf("verify backup %s: %w: its manifest is of backup %s", d.path, ErrCorrupt, m.ID)
	}
	var errs []error
	for _, f := range m.Files {
		if err := verifyFile(ctx, d, f, sealedOnly); err != nil {
			if ctx.Err() != nil {
				return Manifest{}, fmt.Errorf("verify backup %s: %w", d.path, ctx.Err())
			}
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Manifest{}, fmt.Errorf("verify backup %s: %w", d.path, err)
	}
	return m, nil
}

// checkSealed refuses, when the agent runs as root, what root does not own
// alone.
func checkSealed(st unix.Stat_t) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		return fmt.Errorf("%w: not sealed by the agent (owner uid %d, mode %o): the bench could have changed it", ErrUnsafe, st.Uid, st.Mode&0o7777)
	}
	return nil
}

func verifyFile(ctx context.Context, d *safeDir, want File, sealedOnly bool) error {
	fh, fi, err := d.openFile(want.Name)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file %s: %w: missing", want.Name, ErrIncomplete)
	}
	if err != nil {
		return fmt.Errorf("file %s: %w", want.Name, err)
	}
	defer fh.Close()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && sealedOnly {
		if err := checkSealed(unix.Stat_t{Uid: st.Uid, Mode: st.Mode}); err != nil {
			return fmt.Errorf("file %s: %w", want.Name, err)
		}
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, fh}, make([]byte, copyBufferSize))
	if err != nil {
		return fmt.Errorf("file %s: %w", want.Name, err)
	}
	if n != want.Size {
		return fmt.Errorf("file %s: %w: size %d, manifest says %d", want.Name, ErrCorrupt, n, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("file %s: %w: sha256 %s, manifest says %s", want.Name, ErrCorrupt, got, want.SHA256)
	}
	return nil
}

// List returns the complete backups in a site's backups folder, oldest
// first: folders named by a backup id with a valid manifest whose files are
// all present, regular, with the recorded sizes. Folders without a manifest
// (a seal in progress or interrupted) are not backups and are left out, as
// are folders whose manifest does not match, links, and folders the agent
// did not seal (see checkSealed): the bench writes the backups folder, and a
// backup it made up, newest of all, would have a prune delete the real ones.
// List does not re-hash; Verify does.
func List(backupsDir string) ([]Manifest, error) {
	d, err := openDir(backupsDir)
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	defer d.Close()
	names, err := d.names()
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []Manifest
	for _, name := range names {
		if ValidateID(name) != nil {
			continue
		}
		sd, err := d.sub(name)
		if err != nil {
			continue
		}
		if st, err := sd.stat(); err != nil || checkSealed(st) != nil {
			sd.Close()
			continue
		}
		m, err := readManifest(sd)
		if err == nil && m.ID == name && filesPresent(sd, m) {
			m.Dir = filepath.Join(d.path, name)
			out = append(out, m)
		}
		sd.Close()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func filesPresent(d *safeDir, m Manifest) bool {
	for _, f := range m.Files {
		st, err := d.lstat(f.Name)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || st.Size != f.Size {
			return false
		}
	}
	return true
}
