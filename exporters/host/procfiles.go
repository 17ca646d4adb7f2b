package host

import (
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// The processes collector and our versions of node_exporter's read hundreds of
// small /proc and /sys files per scrape; on a VM, opening one costs more than
// reading it. So they read with plain syscalls (an *os.File also registers
// with the runtime's poller and sets a finalizer) and keep the files they read
// on every scrape open: a pread at offset 0 makes a proc or sysfs file
// generate its content afresh, for about half the cost of open, read and
// close. An open
// /proc/<pid>/stat refers to that process, not to the pid: once the process has
// exited it fails with ESRCH, even if the pid has been reused. An open sysfs
// attribute fails with ENODEV once its device is gone.

// keptFiles is how many files a collector may keep open: at most max, and
// at most share of the process's open-file limit (which the Go runtime
// raises to the hard limit at start), so that the agent never runs out.
func keptFiles(max int, share float64) int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return int(min(float64(max), float64(lim.Cur)*share))
}

// openAt opens path, relative to the directory dirfd, for reading.
func openAt(dirfd int, path string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC|flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// closeFD closes fd if it is one.
func closeFD(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
	}
}

// preadAll reads the file fd from offset 0 into *buf, growing it as needed,
// with a single pread when the file fits. The result is valid until the next
// use of *buf.
//
// It is meant for the files the kernel generates as one record
// (/proc/<pid>/stat and status, sysfs attributes): a read of those that does
// not fill the buffer has returned all there is, so the usual second read,
// to see the end of the file, is left out. A read that fills the buffer is
// retried from offset 0 with a larger one, for a consistent snapshot.
func preadAll(fd int, buf *[]byte) ([]byte, error) {
	for {
		b := *buf
		if len(b) == 0 {
			b = make([]byte, 1024)
			*buf = b
		}
		n, err := unix.Pread(fd, b, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n < len(b) {
			return b[:n], nil
		}
		*buf = make([]byte, 2*len(b))
	}
}

// keptDir is a folder kept open and listed again from its start on each
// call, opened on first use (a folder that does not exist yet lists nothing,
// as a glob that matches nothing would).
type keptDir struct {
	path string
	fd   int // -1 until opened
	buf  []byte
}

func newKeptDir(path string) *keptDir { return &keptDir{path: path, fd: -1} }

// list appends to names the entries keep accepts, sorted as filepath.Glob
// returns them. On an error the folder is closed, to be opened again.
func (d *keptDir) list(names []string, keep func(name []byte) bool) ([]string, error) {
	if d.fd < 0 {
		fd, err := openAt(unix.AT_FDCWD, d.path, unix.O_DIRECTORY)
		if errors.Is(err, os.ErrNotExist) {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		d.fd = fd
	}
	start := len(names)
	err := readDir(d.fd, &d.buf, func(name []byte, _ uint8) {
		if keep(name) {
			names = append(names, string(name))
		}
	})
	if err != nil {
		d.close()
		return names[:start], err
	}
	slices.Sort(names[start:])
	return names, nil
}

func (d *keptDir) close() {
	closeFD(d.fd)
	d.fd = -1
}

// readDir calls fn with the name and type (unix.DT_*) of each entry of the
// directory dirfd, "." and ".." excepted, reading it from the start with the
// buffer *buf. name is valid only during the call.
func readDir(dirfd int, buf *[]byte, fn func(name []byte, typ uint8)) error {
	if _, err := unix.Seek(dirfd, 0, 0); err != nil {
		return err
	}
	if len(*buf) == 0 {
		*buf = make([]byte, 16<<10)
	}
	for {
		n, err := unix.Getdents(dirfd, *buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name
		// NUL-terminated.
		b := (*buf)[:n]
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return errors.New("malformed directory entry")
			}
			name := b[19:reclen]
			for i, ch := range name {
				if ch == 0 {
					name = name[:i]
					break
				}
			}
			if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
				fn(name, b[18])
			}
			b = b[reclen:]
		}
	}
}

// parsePID returns the pid a /proc entry name stands for, if it is one.
func parsePID(name []byte) (int32, bool) {
	v, ok := parseUint(name)
	if !ok || v == 0 || v > 1<<22 { // PID_MAX_LIMIT
		return 0, false
	}
	return int32(v), true
}

// parseUint parses a decimal without the allocation strconv would make for
// the string conversion.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + uint64(ch-'0')
	}
	return v, true
}

// pidPath is "<pid>/<file>", for openat relative to the proc directory.
func pidPath(pid int32, file string) string {
	var b [24]byte
	p := strconv.AppendInt(b[:0], int64(pid), 10)
	p = append(p, '/')
	return string(append(p, file...))
}

// keptFile is one /proc file that a collector reads on every scrape, through
// a descriptor kept open from one scrape to the next. Its collector serializes
// the reads.
type keptFile struct {
	path string
	// records is set for a seq_file of many records (/proc/vmstat,
	// /proc/net/stat/*): a read returns at most a page of them, so it is read
	// to its end. The others are generated as one record, read by preadAll.
	records bool
	fd      int // -1 until opened
	buf     []byte
}

func newKeptFile(path string, records bool) *keptFile {
	return &keptFile{path: path, records: records, fd: -1}
}

// read returns the file's content, valid until the next read. An error closes
// the file (a missing one fails with ENOENT); the next read opens it again.
func (f *keptFile) read() ([]byte, error) {
	if f.fd < 0 {
		fd, err := openAt(unix.AT_FDCWD, f.path, 0)
		if err != nil {
			return nil, err
		}
		f.fd = fd
	}
	var data []byte
	var err error
	if f.records {
		data, err = preadToEnd(f.fd, &f.buf)
	} else {
		data, err = preadAll(f.fd, &f.buf)
	}
	if err != nil {
		f.close()
	}
	return data, err
}

func (f *keptFile) close() {
	closeFD(f.fd)
	f.fd = -1
}

// preadToEnd reads the file fd from offset 0 to its end into *buf, growing it
// as needed. The result is valid until the next use of *buf.
func preadToEnd(fd int, buf *[]byte) ([]byte, error) {
	if len(*buf) == 0 {
		*buf = make([]byte, 8<<10)
	}
	n := 0
	for {
		if n == len(*buf) {
			*buf = append(*buf, make([]byte, len(*buf))...)
		}
		m, err := unix.Pread(fd, (*buf)[n:], int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return (*buf)[:n], nil
		}
		n += m
	}
}
