package benches

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errProcessGone is a command's process that exited before it was looked at.
var errProcessGone = errors.New("process already exited")

// procTree is a bench command's process and those it started, each held by a
// pidfd: a signal never reaches a process that took a reused pid, and only
// processes in the bench's container (by their cgroup) are taken.
type procTree struct {
	fds map[int]int // pid -> pidfd
}

// openTree takes the exec's process (its pid on the host, as Docker reports
// it) and its descendants. The agent runs as root in the host's pid
// namespace; when it does not (it runs in a container), the pid is not the
// command's and openTree refuses it.
func openTree(root int, containerID string) (*procTree, error) {
	if root <= 0 {
		return nil, fmt.Errorf("docker reported no process id for the command")
	}
	t := &procTree{fds: map[int]int{}}
	if err := t.open(root, containerID); err != nil {
		return nil, err
	}
	t.add(root, containerID)
	return t, nil
}

// open takes pid when it is a process of the container.
func (t *procTree) open(pid int, containerID string) error {
	if _, ok := t.fds[pid]; ok {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return errProcessGone
	}
	if err != nil {
		return fmt.Errorf("open process %d: %w", pid, err)
	}
	// Checked after the pidfd is held, so the answer is about the process
	// the pidfd refers to (or that one has exited and signals go nowhere).
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil || !bytes.Contains(cg, []byte(containerID)) {
		unix.Close(fd)
		return fmt.Errorf("process %d is not visible to the agent as a process of container %.12s (is the agent in another pid namespace?)", pid, containerID)
	}
	t.fds[pid] = fd
	return nil
}

// add takes root's descendants and the members of its process group, which
// may have outlived their parent. Each is checked to be in the container.
func (t *procTree) add(root int, containerID string) {
	children := map[int][]int{}
	var group []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, pgrp, ok := readStat(pid)
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		if pgrp == root && pid != root {
			group = append(group, pid)
		}
	}
	queue := append([]int{root}, group...)
	if fd, ok := t.fds[root]; ok && exited(fd) {
		// Its pid may have been reused: what is now its child is not the
		// command's. Its process group cannot have been: the kernel keeps a
		// group's id while the group has members. (runc makes an exec's
		// process the leader of its own session and group.)
		queue = group
	}
	seen := map[int]bool{}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if pid != root {
			_ = t.open(pid, containerID) // one that exited or is not the container's is left
		}
		queue = append(queue, children[pid]...)
	}
}

// readStat reads a process's parent and process group from /proc/<pid>/stat.
func readStat(pid int) (ppid, pgrp int, ok bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold anything, ')' too.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(data[i+1:]) // state ppid pgrp ...
	if len(f) < 3 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	return ppid, pgrp, err1 == nil && err2 == nil
}

func (t *procTree) signal(sig syscall.Signal) {
	for _, fd := range t.fds {
		_ = unix.PidfdSendSignal(fd, sig, nil, 0) // ESRCH: it has exited
	}
}

// exited says whether the process behind fd has exited (a pidfd becomes
// readable then).
func exited(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0
}

func (t *procTree) anyAlive() bool {
	for _, fd := range t.fds {
		if !exited(fd) {
			return true
		}
	}
	return false
}

// waitExited waits until every process has exited or ctx ends.
func (t *procTree) waitExited(ctx context.Context) {
	for t.anyAlive() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (t *procTree) close() {
	for _, fd := range t.fds {
		unix.Close(fd)
	}
}
