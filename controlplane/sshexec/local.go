package sshexec

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// localPath is what a command run by Local finds in PATH: sshd's default
// for a login, so a step behaves the same on this host and over SSH.
const localPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Local runs commands and writes files on this host, for `--server local`.
// Commands get a clean environment (PATH, HOME, LANG) rather than the
// control plane's, which may hold secrets, and run in /.
type Local struct{}

var _ Executor = (*Local)(nil)

// NewLocal returns the executor for this host.
func NewLocal() *Local { return &Local{} }

// Close does nothing: there is no connection.
func (*Local) Close() error { return nil }

// Run runs cmd directly (no shell).
func (*Local) Run(ctx context.Context, cmd Command) (Result, error) {
	if err := cmd.validate(); err != nil {
		return Result{ExitStatus: -1}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{ExitStatus: -1}, fmt.Errorf("run %s: %w", cmd.short(), err)
	}
	home, _ := os.UserHomeDir()
	c := exec.CommandContext(ctx, cmd.Args[0], cmd.Args[1:]...)
	c.Env = []string{"PATH=" + localPath, "HOME=" + home, "LANG=C.UTF-8"}
	c.Dir = "/"
	stdout, stderr := newOutput(cmd.Redact), newOutput(cmd.Redact)
	c.Stdout, c.Stderr = stdout, stderr
	c.Stdin = cmd.Stdin
	// Its own process group, so that ending it ends what it started, as
	// over SSH: SIGTERM to the group, SIGKILL after killGrace.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	finished := make(chan struct{})
	c.Cancel = func() error {
		pgid := c.Process.Pid
		go func() {
			select {
			case <-finished:
			case <-time.After(killGrace):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}()
		return syscall.Kill(-pgid, syscall.SIGTERM)
	}
	c.WaitDelay = 2 * killGrace // a last resort: the group is killed before
	start := time.Now()
	err := c.Run()
	close(finished)
	res := Result{Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	if err != nil && ctx.Err() != nil {
		res.ExitStatus = -1
		return res, fmt.Errorf("run %s: %w", cmd.short(), ctx.Err())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, exec.ErrNotFound):
		// What a shell says and does, as over SSH.
		res.ExitStatus = 127
		return res, newExitError(cmd, 127, "", cmd.Args[0]+": not found")
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitStatus = -1
			return res, newExitError(cmd, -1, signalName(ws.Signal()), res.Stderr)
		}
		res.ExitStatus = exit.ExitCode()
		return res, newExitError(cmd, res.ExitStatus, "", res.Stderr)
	default:
		res.ExitStatus = -1
		return res, fmt.Errorf("run %s: %w", cmd.short(), err)
	}
}

// signalName names a signal the way SSH does ("TERM", "KILL").
func signalName(sig syscall.Signal) string {
	for name, s := range map[string]syscall.Signal{
		"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
		"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
		"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM,
		"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	} {
		if s == sig {
			return name
		}
	}
	return fmt.Sprintf("%d", int(sig))
}

// Upload writes dst.tmp-<random> with mode, fsyncs it, reads it back to check
// its sha256, renames it over dst and fsyncs the directory.
func (*Local) Upload(ctx context.Context, dst string, r io.Reader, mode fs.FileMode) (res UploadResult, err error) {
	if err := checkUpload(dst, mode); err != nil {
		return UploadResult{}, err
	}
	fail := func(err error) (UploadResult, error) {
		return UploadResult{}, fmt.Errorf("upload %s: %w", dst, err)
	}
	suffix := make([]byte, 8)
	_, _ = rand.Read(suffix)
	tmp := dst + ".tmp-" + hex.EncodeToString(suffix)
	// 0600 at creation and the final mode before any byte is written.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	hash := sha256.New()
	n, err := io.Copy(f, io.TeeReader(ctxReader{ctx, r}, hash))
	if err != nil {
		return fail(errors.Join(ctx.Err(), fmt.Errorf("write %s: %w", tmp, err)))
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	written, err := fileSHA256(tmp)
	if err != nil {
		return fail(err)
	}
	if written != sum {
		return fail(fmt.Errorf("sha256 of %s differs from what was written (%s): the file was not installed", tmp, sum))
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fail(err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return UploadResult{Path: dst, Size: n, SHA256: sum}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read back %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
