package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var (
	// ErrIncomplete: a backup folder (or offsite prefix) without a manifest,
	// or with a file the manifest lists missing.
	ErrIncomplete = errors.New("incomplete backup")
	// ErrCorrupt: a file whose size or sha256 differs from the manifest, or a
	// .gz file that does not decompress.
	ErrCorrupt = errors.New("corrupt backup")
	// ErrSameID: the bench made a backup with the id (its timestamp, to
	// the second) of one sealed already.
	ErrSameID = errors.New("two backups with one id")
)

// copyBufferSize is the unit of streaming reads and writes: large enough to
// keep a disk busy, small enough to never matter for memory.
const copyBufferSize = 1 << 20

// sealHeadroom is the margin kept free when compressing a tar next to it.
const sealHeadroom = 0.05

// Seal turns the files the bench wrote for one backup into a complete backup
// folder: dir/<ts>/, where dir is the site's backups folder
// (.../sites/<site>/private/backups) and <ts> the bench's timestamp that
// prefixes every file name (<ts>-<site>-database.sql.gz, ...). Each file is
// opened without following links and must be a regular file with one link
// (ErrUnsafe otherwise); files that are not gzip yet (the tars) are
// compressed into the folder, the others copied there (checked whole), and
// the bench's file removed; every file is hashed and synced, owned by the
// agent (see sealedDirMode), and manifest.json is written last.
//
// Seal can be run again after a crash with the same arguments: files already
// sealed are picked up from the folder. Once the manifest exists, it returns
// it, unless the bench wrote files of that id again (ErrSameID).
func Seal(ctx context.Context, site string, files []string, dir string) (Manifest, error) {
	m, err := seal(ctx, site, files, dir, time.Now)
	if err != nil {
		return Manifest{}, fmt.Errorf("seal backup of %s: %w", site, err)
	}
	return m, nil
}

func seal(ctx context.Context, site string, files []string, dir string, now func() time.Time) (Manifest, error) {
	if err := ValidateSite(site); err != nil {
		return Manifest{}, err
	}
	if len(files) == 0 {
		return Manifest{}, errors.New("no files")
	}
	id, err := backupIDOf(site, files)
	if err != nil {
		return Manifest{}, err
	}
	for _, f := range files {
		if filepath.Dir(filepath.Clean(f)) != filepath.Clean(dir) {
			return Manifest{}, fmt.Errorf("file %s is not in the backups folder %s", f, dir)
		}
	}
	backups, err := openDir(dir)
	if err != nil {
		return Manifest{}, err
	}
	defer backups.Close()
	backupDir := filepath.Join(backups.path, id)
	if bd, err := backups.sub(id); err == nil {
		m, err := verifyDir(ctx, bd, false)
		bd.Close()
		if err == nil {
			// Sealed already, by an earlier run of this seal, which removed
			// the bench's files; files of that name again are another
			// backup made in the same second.
			for _, f := range files {
				if _, err := backups.lstat(filepath.Base(f)); err == nil {
					return Manifest{}, fmt.Errorf("%w: backup %s is sealed already, and the bench wrote %s again", ErrSameID, id, filepath.Base(f))
				}
			}
			return m, nil
		}
		if !errors.Is(err, ErrIncomplete) {
			return Manifest{}, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return Manifest{}, err
	}
	uid, gid := sealOwner(backups)
	bd, err := backups.mkdir(id, sealedDirMode, uid, gid)
	if err != nil {
		return Manifest{}, fmt.Errorf("create backup folder: %w", err)
	}
	defer bd.Close()

	items, err := planSeal(backups, bd, files)
	if err != nil {
		return Manifest{}, err
	}
	var toWrite int64
	for _, it := range items {
		if it.src != nil {
			toWrite += it.info.Size()
		}
	}
	if toWrite > 0 {
		if err := CheckFreeSpace(backupDir, toWrite, sealHeadroom); err != nil {
			return Manifest{}, err
		}
	}

	m := Manifest{Version: manifestVersion, Site: site, ID: id, CreatedAt: now().UTC(), Dir: backupDir}
	for _, it := range items {
		f, err := sealFile(ctx, backups, bd, it, uid, gid)
		if err != nil {
			return Manifest{}, err
		}
		m.Files = append(m.Files, f)
		m.Size += f.Size
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("encode manifest: %w", err)
	}
	// Last, and atomically: from here on the folder is a backup.
	if err := bd.writeFile(ManifestName, sealedFileMode, uid, gid, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	}); err != nil {
		return Manifest{}, fmt.Errorf("write manifest: %w", err)
	}
	return m, nil
}

// A sealed backup is the agent's, readable by the bench's group (restore
// reads it in the container) and writable by nobody else, so the bench
// cannot change it after the manifest.
const (
	sealedDirMode  os.FileMode = 0o750
	sealedFileMode os.FileMode = 0o640
)

// sealOwner is who owns a sealed backup: the agent, and the group of the
// site's backups folder (the bench's). Not root, the agent keeps what it has.
func sealOwner(backups *safeDir) (uid, gid int) {
	if os.Geteuid() != 0 {
		return -1, -1
	}
	st, err := backups.stat()
	if err != nil {
		return 0, 0
	}
	return 0, int(st.Gid)
}

// backupIDOf returns the timestamp every file name starts with, checking that
// each is <ts>-<site or its slug>-<rest> and a valid base name.
func backupIDOf(site string, files []string) (string, error) {
	var id string
	for _, path := range files {
		name := filepath.Base(path)
		if err := ValidateFileName(name); err != nil {
			return "", err
		}
		ts, rest, _ := strings.Cut(name, "-")
		if err := ValidateID(ts); err != nil {
			return "", fmt.Errorf("file %q: %w", name, err)
		}
		if !strings.HasPrefix(rest, site+"-") && !strings.HasPrefix(rest, siteSlug(site)+"-") {
			return "", fmt.Errorf("file %q: %w: not a backup of site %s", name, ErrInvalidName, site)
		}
		if id != "" && ts != id {
			return "", fmt.Errorf("files of two backups given: %s and %s", id, ts)
		}
		id = ts
	}
	return id, nil
}

type sealItem struct {
	name     string   // the bench's file name
	src      *os.File // the bench's file, opened safely; nil when moved already
	info     os.FileInfo
	dst      string // its name in the backup folder
	compress bool
}

// planSeal opens each of the bench's files without following links and
// decides where it ends up and whether it is compressed. A file no longer
// in the backups folder was sealed by an interrupted Seal.
func planSeal(backups, bd *safeDir, files []string) (items []sealItem, err error) {
	defer func() {
		if err != nil {
			for _, it := range items {
				if it.src != nil {
					it.src.Close()
				}
			}
		}
	}()
	seen := map[string]bool{}
	for _, path := range files {
		it := sealItem{name: filepath.Base(path)}
		f, fi, err := backups.openFile(it.name)
		switch {
		case err == nil:
			it.src, it.info = f, fi
			items = append(items, it) // closed by the deferred func on error
			gz, err := isGzip(f)
			if err != nil {
				return items, fmt.Errorf("read %s: %w", path, err)
			}
			it.dst = it.name
			if !gz {
				it.compress = true
				it.dst += ".gz"
			}
			items[len(items)-1] = it
		case errors.Is(err, os.ErrNotExist):
			if _, err := bd.lstat(it.name); err == nil {
				it.dst = it.name
			} else if _, err := bd.lstat(it.name + ".gz"); err == nil {
				it.dst = it.name + ".gz"
			} else {
				return items, fmt.Errorf("file %s: %w", path, os.ErrNotExist)
			}
			items = append(items, it)
		default:
			return items, fmt.Errorf("take %s from the bench: %w", it.name, err)
		}
		if err := ValidateFileName(it.dst); err != nil {
			return items, err
		}
		if seen[it.dst] {
			return items, fmt.Errorf("file %s given twice", it.dst)
		}
		seen[it.dst] = true
	}
	return items, nil
}

// sealFile writes one file of the backup into the backup folder from the
// descriptor opened in planSeal (the bench's file is copied, never moved: a
// file the bench made may still be open in the bench for writing), hashing
// what is written, then removes the bench's file.
func sealFile(ctx context.Context, backups, bd *safeDir, it sealItem, uid, gid int) (File, error) {
	if it.src == nil {
		f, err := digestIn(ctx, bd, it.dst)
		if err != nil {
			return File{}, err
		}
		return f, nil
	}
	defer it.src.Close()
	h := sha256.New()
	f := File{Name: it.dst}
	err := bd.writeFile(it.dst, sealedFileMode, uid, gid, func(w io.Writer) error {
		cw := &countingWriter{w: io.MultiWriter(w, h)}
		in := ctxReader{ctx, it.src}
		buf := make([]byte, copyBufferSize)
		if it.compress {
			// Fastest level: the tars are mostly already-compressed uploads,
			// and a backup that takes an hour longer is a backup that gets
			// skipped.
			gz, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
			if err != nil {
				return err
			}
			n, err := io.CopyBuffer(gz, in, buf)
			if err != nil {
				return err
			}
			if err := gz.Close(); err != nil {
				return err
			}
			f.UncompressedSize = n
		} else {
			// Checked whole on the way: a truncated dump fails here, not at
			// restore time.
			n, err := copyGzip(cw, in, buf)
			if err != nil {
				return err
			}
			f.UncompressedSize = n
		}
		f.Size = cw.n
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return File{}, fmt.Errorf("seal %s: %w", it.name, ctx.Err())
		}
		return File{}, fmt.Errorf("seal %s: %w", it.name, err)
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := backups.remove(it.name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return File{}, fmt.Errorf("remove the bench's %s after sealing it: %w", it.name, err)
	}
	return f, nil
}

// copyGzip copies a gzip stream from r to w as it is, decompressing it on
// the way to prove it is whole and to count its uncompressed size.
func copyGzip(w io.Writer, r io.Reader, buf []byte) (int64, error) {
	tee := io.TeeReader(r, w)
	zr, err := gzip.NewReader(tee)
	if err != nil {
		return 0, fmt.Errorf("%w: not gzip: %w", ErrCorrupt, err)
	}
	n, err := io.CopyBuffer(io.Discard, zr, buf)
	if err != nil {
		return 0, fmt.Errorf("%w: gzip stream is damaged or truncated: %w", ErrCorrupt, err)
	}
	if _, err := io.CopyBuffer(io.Discard, tee, buf); err != nil { // whatever gzip did not need
		return 0, err
	}
	return n, nil
}

// digestIn hashes a gzip file of a backup folder, decompressing it on the
// way to prove it is whole and to count its exact uncompressed size.
func digestIn(ctx context.Context, d *safeDir, name string) (File, error) {
	fh, _, err := d.openFile(name)
	if err != nil {
		return File{}, fmt.Errorf("digest %s: %w", name, err)
	}
	defer fh.Close()
	h := sha256.New()
	cw := &countingWriter{w: h}
	n, err := copyGzip(cw, ctxReader{ctx, fh}, make([]byte, copyBufferSize))
	if err != nil {
		if ctx.Err() != nil {
			return File{}, fmt.Errorf("digest %s: %w", name, ctx.Err())
		}
		return File{}, fmt.Errorf("digest %s: %w", name, err)
	}
	return File{Name: name, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil)), UncompressedSize: n}, nil
}

// isGzip reads the magic of f and rewinds it.
func isGzip(f *os.File) (bool, error) {
	magic := make([]byte, 2)
	n, err := f.ReadAt(magic, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return n == 2 && bytes.Equal(magic, []byte{0x1f, 0x8b}), nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
