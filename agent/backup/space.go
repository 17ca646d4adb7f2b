package backup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// InsufficientSpaceError says which filesystem is too small for what.
type InsufficientSpaceError struct {
	Path       string // the folder that was checked
	MountPoint string // the filesystem it is on, when known
	FSType     string
	Device     string
	Free       int64 // bytes available to the agent
	Need       int64 // bytes the operation needs
	Required   int64 // Need plus headroom
	Headroom   float64
}

func (e *InsufficientSpaceError) Error() string {
	fs := e.MountPoint
	if fs == "" {
		fs = "of " + e.Path
	} else {
		fs = fmt.Sprintf("%s (%s %s)", e.MountPoint, e.FSType, e.Device)
	}
	return fmt.Sprintf("not enough free space on filesystem %s for %s: %d bytes (%s) free, %d bytes (%s) needed: %d (%s) plus %.0f%% headroom",
		fs, e.Path, e.Free, humanBytes(e.Free), e.Required, humanBytes(e.Required),
		e.Need, humanBytes(e.Need), e.Headroom*100)
}

// CheckFreeSpace fails with an *InsufficientSpaceError unless the filesystem
// holding dir (or its nearest existing parent) has need bytes plus headroom (a
// fraction of need: 0.1 is 10%) available. A restore calls it before it
// downloads or unpacks anything; need for unpacking comes from
// Manifest.UncompressedSize or UncompressedSize.
func CheckFreeSpace(dir string, need int64, headroom float64) error {
	return checkFreeSpace(unix.Statfs, "/proc/self/mountinfo", dir, need, headroom)
}

type statfsFunc func(path string, st *unix.Statfs_t) error

func checkFreeSpace(statfs statfsFunc, mountinfo, dir string, need int64, headroom float64) error {
	if need < 0 || headroom < 0 || math.IsNaN(headroom) {
		return fmt.Errorf("check free space on %s: need %d and headroom %v must not be negative", dir, need, headroom)
	}
	path, err := existingAncestor(dir)
	if err != nil {
		return fmt.Errorf("check free space on %s: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := statfs(path, &st); err != nil {
		return fmt.Errorf("check free space on %s: statfs %s: %w", dir, path, err)
	}
	bsize := st.Frsize
	if bsize <= 0 {
		bsize = st.Bsize
	}
	free := satMul(int64(st.Bavail), bsize)
	required := need + int64(math.Ceil(float64(need)*headroom))
	if required < need { // overflow
		required = math.MaxInt64
	}
	if free >= required {
		return nil
	}
	e := &InsufficientSpaceError{Path: dir, Free: free, Need: need, Required: required, Headroom: headroom}
	e.MountPoint, e.FSType, e.Device = mountOf(mountinfo, path)
	return e
}

func existingAncestor(dir string) (string, error) {
	p, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(p); err == nil {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				return r, nil
			}
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", fmt.Errorf("no existing parent folder")
		}
		p = parent
	}
}

// mountOf finds the mount holding path in a mountinfo file (best effort: it
// only improves the error message).
func mountOf(mountinfo, path string) (mountPoint, fsType, device string) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 2 {
			continue
		}
		mp := unescapeMount(fields[4])
		if !within(path, mp) || len(mp) < len(mountPoint) {
			continue
		}
		mountPoint, fsType, device = mp, tail[0], unescapeMount(tail[1])
	}
	return mountPoint, fsType, device
}

func within(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UncompressedSize estimates the space a file takes once unpacked. For a gzip
// file it reads the ISIZE trailer (the uncompressed size modulo 4 GiB) and
// adds the multiples of 4 GiB needed to reach at least the compressed size,
// which is exact below 4 GiB and a lower bound above; prefer the exact
// File.UncompressedSize recorded by Seal when there is a manifest. For any
// other file it is the file's size.
func UncompressedSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("uncompressed size: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("uncompressed size: %w", err)
	}
	size := fi.Size()
	head := make([]byte, 2)
	if _, err := io.ReadFull(f, head); err != nil || head[0] != 0x1f || head[1] != 0x8b || size < 18 {
		return size, nil
	}
	trailer := make([]byte, 4)
	if _, err := f.ReadAt(trailer, size-4); err != nil {
		return 0, fmt.Errorf("uncompressed size of %s: read gzip trailer: %w", path, err)
	}
	return isizeEstimate(binary.LittleEndian.Uint32(trailer), size), nil
}

func isizeEstimate(isize uint32, compressed int64) int64 {
	n := int64(isize)
	// Deflate can grow incompressible input by a little; never more than
	// 5 bytes per 16 KiB block plus the 18-byte gzip frame.
	floor := compressed - compressed/3000 - 64
	for n < floor {
		n += 1 << 32
	}
	return n
}

func satMul(a int64, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Statfs is unix.Statfs, or a stand-in in tests.
type Statfs func(path string, st *unix.Statfs_t) error

// CheckFreeSpaceWith is CheckFreeSpace asking statfs (nil: unix.Statfs).
func CheckFreeSpaceWith(statfs Statfs, dir string, need int64, headroom float64) error {
	if statfs == nil {
		statfs = unix.Statfs
	}
	return checkFreeSpace(statfsFunc(statfs), "/proc/self/mountinfo", dir, need, headroom)
}
