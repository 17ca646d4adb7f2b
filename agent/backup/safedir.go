package backup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnsafe: a path the agent was to take a file from is a symlink, a hard
// link, not a regular file or folder, or in a folder it cannot trust. A bench
// container can write its backups folder, and the agent runs as root: taking
// a link there would hand the bench whatever file the link points to.
var ErrUnsafe = errors.New("unsafe file")

// maxSymlinkHops bounds how many trusted symlinks openDir follows, as the
// kernel's ELOOP does.
const maxSymlinkHops = 40

// safeDir is a folder opened without following links below the first folder
// a non-root user can write. Every file and folder in it is taken through
// its descriptor (openat, mkdirat, renameat, unlinkat with O_NOFOLLOW), and
// changed through the descriptor that was opened (fchown, fchmod), so a
// name the bench swaps for a link between a check and a use is never
// followed.
type safeDir struct {
	f    *os.File
	path string // for messages
}

// openDir opens path component by component from "/". A symlink is
// followed only in a folder that only root can change (owned by root, not
// writable by group or others), such as a /home that links to /data/home;
// anywhere else (the bench's folders) it is refused.
func openDir(path string) (*safeDir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open folder %s: %w", path, err)
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open folder %s: %w", path, err)
	}
	closeFD := func() { unix.Close(fd) }
	rest := splitPath(abs)
	hops := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			fd = next
			continue
		}
		if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
			closeFD()
			return nil, fmt.Errorf("open folder %s: %s: %w", path, name, err)
		}
		// A symlink, or not a folder at all.
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			closeFD()
			return nil, fmt.Errorf("open folder %s: %s: %w", path, name, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			closeFD()
			return nil, fmt.Errorf("open folder %s: %w: %s is not a folder", path, ErrUnsafe, name)
		}
		if !onlyRootWrites(fd) {
			closeFD()
			return nil, fmt.Errorf("open folder %s: %w: %s is a symlink in a folder that others can write", path, ErrUnsafe, name)
		}
		if hops++; hops > maxSymlinkHops {
			closeFD()
			return nil, fmt.Errorf("open folder %s: %w", path, unix.ELOOP)
		}
		target, err := readlinkat(fd, name)
		if err != nil {
			closeFD()
			return nil, fmt.Errorf("open folder %s: %w", path, err)
		}
		rest = append(splitPath(target), rest...)
		if filepath.IsAbs(target) {
			unix.Close(fd)
			if fd, err = unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return nil, fmt.Errorf("open folder %s: %w", path, err)
			}
		}
	}
	return &safeDir{f: os.NewFile(uintptr(fd), abs), path: abs}, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func readlinkat(fd int, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(fd, name, buf)
	if err != nil {
		return "", fmt.Errorf("read link %s: %w", name, err)
	}
	return string(buf[:n]), nil
}

// onlyRootWrites says whether the folder fd is owned by root and writable by
// nobody else, so a link in it was put there by root.
func onlyRootWrites(fd int) bool {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	return st.Uid == 0 && st.Mode&0o022 == 0
}

func (d *safeDir) Close() error { return d.f.Close() }

func (d *safeDir) fd() int { return int(d.f.Fd()) }

func (d *safeDir) join(name string) string { return filepath.Join(d.path, name) }

// checkName keeps every name a plain entry of the folder.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: %q is not a plain file name", ErrUnsafe, name)
	}
	return nil
}

// openFile opens name for reading without following a link, and checks it
// is a regular file with one link: a hard link to a root-only file is a
// link too. O_NONBLOCK keeps a FIFO planted there from blocking the open.
func (d *safeDir) openFile(name string) (*os.File, os.FileInfo, error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, nil, fmt.Errorf("%s: %w: a symlink", d.join(name), ErrUnsafe)
	}
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, &os.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("%s: %w: not a regular file (mode %o)", d.join(name), ErrUnsafe, st.Mode&unix.S_IFMT)
	}
	// Reads block as usual from here on (the open did not, on a FIFO).
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), d.join(name))
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := checkRegular(fi); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", d.join(name), err)
	}
	return f, fi, nil
}

func checkRegular(fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: not a regular file (%s)", ErrUnsafe, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
		return fmt.Errorf("%w: a hard link (%d links)", ErrUnsafe, st.Nlink)
	}
	return nil
}

// lstat describes name itself, never what it links to.
func (d *safeDir) lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := checkName(name); err != nil {
		return st, err
	}
	if err := unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return st, nil
}

// sub opens the folder name without following a link.
func (d *safeDir) sub(name string) (*safeDir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return nil, fmt.Errorf("%s: %w: not a folder (a symlink?)", d.join(name), ErrUnsafe)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return &safeDir{f: os.NewFile(uintptr(fd), d.join(name)), path: d.join(name)}, nil
}

// mkdir creates the folder name (or opens the one there) and gives it
// through its descriptor to uid:gid with perm.
func (d *safeDir) mkdir(name string, perm os.FileMode, uid, gid int) (*safeDir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := unix.Mkdirat(d.fd(), name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "mkdir", Path: d.join(name), Err: err}
	}
	sd, err := d.sub(name)
	if err != nil {
		return nil, err
	}
	if err := sd.own(perm, uid, gid); err != nil {
		sd.Close()
		return nil, err
	}
	return sd, nil
}

// own sets the folder's owner (as root only) and mode through its descriptor.
func (d *safeDir) own(perm os.FileMode, uid, gid int) error {
	if os.Geteuid() == 0 && uid >= 0 {
		if err := d.f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", d.path, err)
		}
	}
	if err := d.f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", d.path, err)
	}
	return nil
}

// writeFile streams into a new temporary file in the folder, sets its owner
// and mode through its descriptor, syncs it and renames it to name.
func (d *safeDir) writeFile(name string, perm os.FileMode, uid, gid int, write func(io.Writer) error) (err error) {
	if err := checkName(name); err != nil {
		return err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := "." + name + ".tmp-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(d.fd(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: d.join(tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.join(tmp))
	defer func() {
		if err != nil {
			f.Close()
			unix.Unlinkat(d.fd(), tmp, 0)
		}
	}()
	if os.Geteuid() == 0 && uid >= 0 {
		if err = f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = unix.Renameat(d.fd(), tmp, d.fd(), name); err != nil {
		return &os.LinkError{Op: "rename", Old: d.join(tmp), New: d.join(name), Err: err}
	}
	return d.f.Sync()
}

// remove unlinks the file name (a link is removed, never followed).
func (d *safeDir) remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd(), name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

// removeAll removes name and, if it is a folder, everything in it, through
// descriptors: a link inside is removed as a link, never followed.
func (d *safeDir) removeAll(name string) error {
	st, err := d.lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return d.remove(name)
	}
	sd, err := d.sub(name)
	if err != nil {
		return err
	}
	names, err := sd.f.Readdirnames(-1)
	if err != nil {
		sd.Close()
		return fmt.Errorf("read %s: %w", sd.path, err)
	}
	for _, n := range names {
		if err := sd.removeAll(n); err != nil {
			sd.Close()
			return err
		}
	}
	sd.Close()
	if err := unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR); err != nil {
		return &os.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

// names lists the folder's entries.
func (d *safeDir) names() ([]string, error) {
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	names, err := d.f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.path, err)
	}
	return names, nil
}

// stat describes the folder itself.
func (d *safeDir) stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstat(d.fd(), &st)
	return st, err
}

// openOrCreateDir opens path as openDir does, first creating the folders
// missing at its end (mode 0750, owned by whoever runs the agent).
func openOrCreateDir(path string) (*safeDir, error) {
	d, err := openDir(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return d, err
	}
	parentPath := filepath.Dir(filepath.Clean(path))
	if parentPath == path {
		return nil, err
	}
	parent, err := openOrCreateDir(parentPath)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	name := filepath.Base(path)
	if err := unix.Mkdirat(parent.fd(), name, 0o750); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "mkdir", Path: parent.join(name), Err: err}
	}
	return parent.sub(name)
}
