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
	"syscall"
	"time"

	"github.com/hybridsuite/hybrid/internal/atomicfile"
)

var (
	// ErrIncomplete: a backup folder (or offsite prefix) without a manifest,
	// or with a file the manifest lists missing.
	ErrIncomplete = errors.New("incomplete backup")
	// ErrCorrupt: a file whose size or sha256 differs from the manifest, or a
	// .gz file that does not decompress.
	ErrCorrupt = errors.New("corrupt backup")
)

// copyBufferSize is the unit of streaming reads and writes: large enough to
// keep a disk busy, small enough to never matter for memory.
const copyBufferSize = 1 << 20

// sealHeadroom is the margin kept free when compressing a tar next to it.
const sealHeadroom = 0.05

// Seal turns the files the bench wrote for one backup into a complete backup
// folder: dir/<ts>/, where dir is the site's backups folder
// (.../sites/<site>/private/backups) and <ts> the bench's timestamp that
// prefixes every file name (<ts>-<site>-database.sql.gz, ...). Files that are
// not gzip yet (the tars) are compressed into the folder, the others moved
// there; every file is hashed and synced, and manifest.json is written last.
//
// Seal can be run again after a crash with the same arguments: files already
// moved are picked up from the folder. Once the manifest exists, it returns it.
func Seal(ctx context.Context, site string, files []string, dir string) (Manifest, error) {
	m, err := seal(ctx, site, files, dir, time.Now)
	if err != nil {
		return Manifest{}, fmt.Errorf("seal backup of %s: %w", site, err)
	}
	return m, nil
}

type sealItem struct {
	src      string // where the bench wrote it
	dst      string // its final path in the backup folder
	compress bool
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
	backupDir := filepath.Join(dir, id)
	if m, err := readManifest(backupDir); err == nil {
		return m, nil // sealed already
	} else if !errors.Is(err, ErrIncomplete) {
		return Manifest{}, err
	}
	if err := mkdirLike(backupDir, dir); err != nil {
		return Manifest{}, err
	}

	items, err := planSeal(files, backupDir)
	if err != nil {
		return Manifest{}, err
	}
	var toCompress int64
	for _, it := range items {
		if it.compress {
			if fi, err := os.Stat(it.src); err == nil {
				toCompress += fi.Size()
			}
		}
	}
	if toCompress > 0 {
		if err := CheckFreeSpace(backupDir, toCompress, sealHeadroom); err != nil {
			return Manifest{}, err
		}
	}

	m := Manifest{Version: manifestVersion, Site: site, ID: id, CreatedAt: now().UTC(), Dir: backupDir}
	for _, it := range items {
		var f File
		var err error
		if it.compress {
			f, err = compressInto(ctx, it.src, it.dst)
		} else {
			f, err = moveGzip(ctx, it.src, it.dst)
		}
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
	if err := atomicfile.WriteFile(filepath.Join(backupDir, ManifestName), append(data, '\n'), 0o640); err != nil {
		return Manifest{}, err
	}
	return m, nil
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

// planSeal decides, per file, where it ends up and whether it is compressed.
// A file no longer at its source was moved by an interrupted Seal.
func planSeal(files []string, backupDir string) ([]sealItem, error) {
	var items []sealItem
	seen := map[string]bool{}
	for _, src := range files {
		name := filepath.Base(src)
		it := sealItem{src: src}
		gz, err := isGzipFile(src)
		switch {
		case err == nil:
			it.dst = filepath.Join(backupDir, name)
			if !gz {
				it.compress = true
				it.dst += ".gz"
			}
		case errors.Is(err, os.ErrNotExist):
			if exists(filepath.Join(backupDir, name)) {
				it.dst = filepath.Join(backupDir, name)
			} else if exists(filepath.Join(backupDir, name+".gz")) {
				it.dst = filepath.Join(backupDir, name+".gz")
			} else {
				return nil, fmt.Errorf("file %s: %w", src, os.ErrNotExist)
			}
			it.src = "" // already in place
		default:
			return nil, err
		}
		if err := ValidateFileName(filepath.Base(it.dst)); err != nil {
			return nil, err
		}
		if seen[it.dst] {
			return nil, fmt.Errorf("file %s given twice", filepath.Base(it.dst))
		}
		seen[it.dst] = true
		items = append(items, it)
	}
	return items, nil
}

// compressInto gzips src into dst (through a synced temporary file) while
// hashing the output, then removes src.
func compressInto(ctx context.Context, src, dst string) (File, error) {
	if src == "" {
		return digestInPlace(ctx, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return File{}, fmt.Errorf("compress %s: %w", src, err)
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return File{}, fmt.Errorf("compress %s: %w", src, err)
	}
	h := sha256.New()
	f := File{Name: filepath.Base(dst)}
	err = writeFileAtomic(dst, info, func(w io.Writer) error {
		cw := &countingWriter{w: io.MultiWriter(w, h)}
		// Fastest level: the tars are mostly already-compressed uploads, and
		// a backup that takes an hour longer is a backup that gets skipped.
		gz, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(gz, ctxReader{ctx, in}, make([]byte, copyBufferSize))
		if err != nil {
			return err
		}
		if err := gz.Close(); err != nil {
			return err
		}
		f.UncompressedSize = n
		f.Size = cw.n
		return nil
	})
	if err != nil {
		return File{}, fmt.Errorf("compress %s: %w", src, err)
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := os.Remove(src); err != nil {
		return File{}, fmt.Errorf("remove %s after compressing it: %w", src, err)
	}
	return f, nil
}

// moveGzip checks and hashes a gzip file the bench wrote, syncs it and moves
// it into the backup folder.
func moveGzip(ctx context.Context, src, dst string) (File, error) {
	if src == "" || sameFile(src, dst) {
		return digestInPlace(ctx, dst)
	}
	f, err := digestInPlace(ctx, src)
	if err != nil {
		return File{}, err
	}
	if err := os.Rename(src, dst); err != nil {
		return File{}, fmt.Errorf("move %s into backup folder: %w", src, err)
	}
	f.Name = filepath.Base(dst)
	return f, nil
}

// digestInPlace hashes a gzip file, decompressing it on the way to prove it
// is whole (a truncated dump fails here, not at restore time) and to count
// its exact uncompressed size, and syncs it.
func digestInPlace(ctx context.Context, path string) (File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("digest %s: %w", path, err)
	}
	defer fh.Close()
	h := sha256.New()
	cr := &countingReader{r: ctxReader{ctx, fh}}
	tee := io.TeeReader(cr, h)
	zr, err := gzip.NewReader(tee)
	if err != nil {
		return File{}, fmt.Errorf("digest %s: %w: not gzip: %w", path, ErrCorrupt, err)
	}
	n, err := io.CopyBuffer(io.Discard, zr, make([]byte, copyBufferSize))
	if err != nil {
		if ctx.Err() != nil {
			return File{}, fmt.Errorf("digest %s: %w", path, ctx.Err())
		}
		return File{}, fmt.Errorf("digest %s: %w: gzip stream is damaged or truncated: %w", path, ErrCorrupt, err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // whatever gzip did not need
		return File{}, fmt.Errorf("digest %s: %w", path, err)
	}
	if err := fh.Sync(); err != nil {
		return File{}, fmt.Errorf("sync %s: %w", path, err)
	}
	return File{
		Name:             filepath.Base(path),
		Size:             cr.n,
		SHA256:           hex.EncodeToString(h.Sum(nil)),
		UncompressedSize: n,
	}, nil
}

// writeFileAtomic streams into a temporary file next to path, syncs it and
// renames it over path, with the mode (and, when allowed, the owner) of like.
func writeFileAtomic(path string, like os.FileInfo, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if like != nil {
		if err = tmp.Chmod(like.Mode().Perm()); err != nil {
			return err
		}
		chownLike(tmp.Name(), like)
	}
	if err = write(tmp); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// mkdirLike creates dir with the owner of parent, so the bench container
// (uid 1000) can read what the agent (often root) writes.
func mkdirLike(dir, parent string) error {
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create backup folder: %w", err)
	}
	if fi, err := os.Stat(parent); err == nil {
		chownLike(dir, fi)
	}
	return nil
}

// chownLike is best effort: it only matters, and only works, as root.
func chownLike(path string, like os.FileInfo) {
	if st, ok := like.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		_ = os.Chown(path, int(st.Uid), int(st.Gid))
	}
}

func isGzipFile(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	magic := make([]byte, 2)
	if _, err := io.ReadFull(f, magic); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, err
	}
	return bytes.Equal(magic, []byte{0x1f, 0x8b}), nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
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

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
