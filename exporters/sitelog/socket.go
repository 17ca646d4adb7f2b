package sitelog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// readerNice is the reader thread's nice value.
const readerNice = -10

// qlenSysctl is the queue length a unix datagram socket gets when it is made.
const qlenSysctl = "/proc/sys/net/unix/max_dgram_qlen"

// socket is the bound unix datagram socket, read with blocking calls.
type socket struct {
	fd   int
	path string
	// pause is how long the reader lets lines gather after it has emptied
	// the queue: one wakeup then reads many lines. None when the queue is
	// short.
	pause time.Duration
}

func listen(opts Options) (*socket, error) {
	path := opts.Socket
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%q: must be an absolute path", path)
	}
	if len(path) > 107 {
		return nil, fmt.Errorf("%q: %d bytes, a unix socket path has at most 107", path, len(path))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// Left by an agent that did not stop cleanly. Anything else at the path
	// is not ours to remove.
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	fd, qlen, err := newSocket(opts.QueueLength, opts.Logger)
	if err != nil {
		return nil, err
	}
	s := &socket{fd: fd, path: path}
	if qlen >= 1024 {
		// 1024 lines are 100 ms at 10,000 requests a second: 5 ms is far
		// inside that, and the kernel's own per-sender buffer.
		s.pause = 5 * time.Millisecond
	}
	fail := func(err error) (*socket, error) {
		unix.Close(fd)
		os.Remove(path)
		return nil, err
	}
	// Mostly moot for unix datagrams (the queue length and the sender's
	// buffer bound them), but a reader never wants a smaller one.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.ReceiveBuffer)
	// Wake up now and then to see whether Close was called: closing a
	// descriptor does not end a blocked read on Linux.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail(fmt.Errorf("set receive timeout: %w", err))
	}
	// Bound with the process's umask (no write for others with the usual
	// 022), then opened to nginx's group only.
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail(fmt.Errorf("bind %s: %w", path, err))
	}
	if opts.GID >= 0 && opts.GID != 0 {
		if err := os.Lchown(path, 0, opts.GID); err != nil {
			return fail(err)
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return fail(err)
	}
	opts.Logger.Debug("site log socket ready", "path", path, "queue", qlen)
	return s, nil
}

// newSocket makes the datagram socket with a queue of at least want
// datagrams. Linux gives a unix datagram socket the queue length of
// net.unix.max_dgram_qlen when it is made (10 on a host without systemd's
// 512) and has no call to change it later; so the setting is raised for the
// moment the socket is made, then set back. Not root: the host's length.
func newSocket(want int, logger interface{ Warn(string, ...any) }) (int, int, error) {
	// Two agents (or tests) doing this at once could each restore the
	// other's raised value before its socket is made.
	lock := lockQlen()
	if lock != nil {
		defer lock.Close() // closing releases the lock
		restorePendingQlen(lock, logger)
	}
	raw, err := os.ReadFile(qlenSysctl)
	cur, perr := strconv.Atoi(strings.TrimSpace(string(raw)))
	raise := err == nil && perr == nil && cur < want
	if raise && lock != nil {
		// The value to set back, kept until it is: an agent killed between
		// the raise and the restore leaves it for the next one to restore.
		if err := writeLockValue(lock, strconv.Itoa(cur)); err != nil {
			raise = false
		}
	}
	if raise {
		if err := os.WriteFile(qlenSysctl, []byte(strconv.Itoa(want)), 0o644); err != nil {
			logger.Warn("cannot lengthen the site log socket's queue; nginx may drop lines under load", "sysctl", qlenSysctl, "length", cur, "err", err)
			raise = false
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if raise {
		if werr := os.WriteFile(qlenSysctl, []byte(strconv.Itoa(cur)), 0o644); werr != nil {
			logger.Warn("cannot set the unix datagram queue length back", "sysctl", qlenSysctl, "length", cur, "err", werr)
		} else if lock != nil {
			_ = writeLockValue(lock, "")
		}
	}
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	if raise {
		return fd, want, nil
	}
	return fd, cur, nil
}

// qlenLock serializes the raise-make-restore of the queue length between
// processes. Under /run: only root may make it, and only root may change
// the setting anyway.
const qlenLock = "/run/hybrid-unix-dgram-qlen.lock"

// restorePendingQlen sets back the queue length an earlier agent raised and
// was killed before restoring: the value it left in the lock file.
func restorePendingQlen(lock *os.File, logger interface{ Warn(string, ...any) }) {
	raw := make([]byte, 32)
	n, _ := lock.ReadAt(raw, 0)
	v, err := strconv.Atoi(strings.TrimSpace(string(raw[:n])))
	if err != nil {
		return
	}
	if err := os.WriteFile(qlenSysctl, []byte(strconv.Itoa(v)), 0o644); err != nil {
		logger.Warn("cannot set back the unix datagram queue length an earlier agent raised", "sysctl", qlenSysctl, "length", v, "err", err)
		return
	}
	_ = writeLockValue(lock, "")
}

// writeLockValue replaces the lock file's content with v, synced.
func writeLockValue(lock *os.File, v string) error {
	if err := lock.Truncate(0); err != nil {
		return err
	}
	if _, err := lock.WriteAt([]byte(v), 0); err != nil {
		return err
	}
	return lock.Sync()
}

// lockQlen takes qlenLock, waiting at most 2 s (a stuck holder costs a
// shorter queue, not a hang); it returns nil without it.
func lockQlen() *os.File {
	f, err := os.OpenFile(qlenLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil
		}
	}
}

func (s *socket) close() error {
	// The reader sees the shutdown, or the closed channel at its next
	// timeout, and closes the descriptor itself: closing it under a
	// blocked read could hand the number to another file.
	_ = unix.Shutdown(s.fd, unix.SHUT_RDWR)
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove site log socket: %w", err)
	}
	return nil
}

func (s *socket) closeFD() { _ = unix.Close(s.fd) }

// read counts datagrams until Close. It keeps its OS thread, so its CPU
// time can be read, and reads with blocking calls: no wakeup through the
// network poller, one system call per line.
func (c *Collector) read() {
	// Never unlocked: the thread ends with the reader, so its raised
	// priority goes with it rather than to other goroutines.
	runtime.LockOSThread()
	tid := unix.Gettid()
	c.readerTID.Store(int64(tid))
	// nginx drops what does not fit in the queue (about 280 lines per
	// worker: the worker's send buffer), so the reader must get the CPU
	// within tens of milliseconds even on a busy host. It uses little: a
	// higher priority for this thread alone costs the others next to
	// nothing. Not root: the default.
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, readerNice); err != nil {
		c.logger.Debug("raise the site log reader's priority", "err", err)
	}
	defer c.sock.closeFD()
	buf := make([]byte, 64<<10)
	flags := 0 // blocking until a line comes, then draining
	for {
		n, _, err := unix.Recvfrom(c.sock.fd, buf, flags)
		select {
		case <-c.closed:
			return
		default:
		}
		switch {
		case err == nil && n > 0 && n < len(buf):
			c.count(buf[:n])
			flags = unix.MSG_DONTWAIT
		case err == nil && n >= len(buf): // cut: not a line of ours
			c.count(nil)
		case errors.Is(err, unix.EAGAIN) && flags != 0: // drained
			flags = 0
			if c.sock.pause > 0 {
				// In the kernel, not on a Go timer: the thread wakes on time
				// however busy the process's other goroutines are.
				ts := unix.NsecToTimespec(c.sock.pause.Nanoseconds())
				_ = unix.Nanosleep(&ts, nil)
			}
		case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		default:
			c.logger.Error("read site log socket", "err", err)
			time.Sleep(time.Second)
		}
	}
}

// threadCPU is a thread's CPU time, through the per-thread CPU clock Linux
// offers for any thread of the process.
func threadCPU(tid int) (time.Duration, error) {
	clock := int32(^tid<<3 | 6) // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, fmt.Errorf("read reader CPU time: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}
