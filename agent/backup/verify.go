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
)

// Verify re-reads every file of the backup in dir and compares its size and
// sha256 with the manifest. Every bad file is named in the error, which wraps
// ErrCorrupt or ErrIncomplete.
func Verify(ctx context.Context, dir string) (Manifest, error) {
	m, err := readManifest(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("verify: %w", err)
	}
	var errs []error
	for _, f := range m.Files {
		if err := verifyFile(ctx, filepath.Join(dir, f.Name), f); err != nil {
			if ctx.Err() != nil {
				return Manifest{}, fmt.Errorf("verify backup %s: %w", dir, ctx.Err())
			}
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Manifest{}, fmt.Errorf("verify backup %s: %w", dir, err)
	}
	return m, nil
}

func verifyFile(ctx context.Context, path string, want File) error {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file %s: %w: missing", want.Name, ErrIncomplete)
	}
	if err != nil {
		return fmt.Errorf("file %s: %w", want.Name, err)
	}
	defer fh.Close()
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
// all present with the recorded sizes. Folders without a manifest (a seal in
// progress or interrupted) are not backups and are left out, as are folders
// whose manifest does not match. List does not re-hash; Verify does.
func List(backupsDir string) ([]Manifest, error) {
	entries, err := os.ReadDir(backupsDir)
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []Manifest
	for _, e := range entries {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		dir := filepath.Join(backupsDir, e.Name())
		m, err := readManifest(dir)
		if err != nil || m.ID != e.Name() || !filesPresent(dir, m) {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func filesPresent(dir string, m Manifest) bool {
	for _, f := range m.Files {
		fi, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != f.Size {
			return false
		}
	}
	return true
}
