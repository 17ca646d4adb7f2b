// Package childproc starts the servers tests run beside them (mariadbd,
// Alertmanager) so that they die with the test binary, even when that one is
// killed, and stops them with a signal and a deadline.
package childproc

import (
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is a started child.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the child has exited
}

// Start starts cmd in its own process group, killed when the test binary dies.
// A Credential already set on cmd.SysProcAttr is kept (a server that refuses
// to run as root runs as another user).
func Start(cmd *exec.Cmd) (*Process, error) {
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if cmd.SysProcAttr != nil {
		attr.Credential = cmd.SysProcAttr.Credential
	}
	cmd.SysProcAttr = attr
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked exits, not the
		// process: keep that thread for the child's whole life.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Exited is closed once the child has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop sends sig and waits for the child to exit; after timeout it kills it
// and reports that it had to.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) (killed bool) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return false
	case <-time.After(timeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return true
}
