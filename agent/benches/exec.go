package benches

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// ExecError is a bench command that exited non-zero.
type ExecError struct {
	Args     []string
	ExitCode int
	// Output is the tail of what it printed, with the values of the
	// command's environment taken out.
	Output string
}

// Error quotes the arguments, never the environment: secrets travel in the
// environment (ExecOptions.Env) precisely so that errors can quote the rest.
func (e *ExecError) Error() string {
	return fmt.Sprintf("bench command %v exited %d: %s", e.Args, e.ExitCode, e.Output)
}

// minRedacted is the shortest environment value taken out of an ExecError's
// output: shorter ones ("1", "on") are flags, not secrets, and replacing them
// would garble the output.
const minRedacted = 4

// newExecError keeps the output's tail without the values of env: a command
// may print its environment (a failing tool dumping its settings), and the
// error goes to the job record, the log and the callback.
func newExecError(args []string, code int, tail *tailBuffer, env []string) *ExecError {
	out := tail.b
	if tail.cut {
		// The first line was cut and may hold the end of a secret whose
		// start was dropped; it cannot be matched, so it goes.
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			out = out[i+1:]
		} else {
			out = nil
		}
	}
	text := string(bytes.TrimSpace(out))
	for _, kv := range env {
		_, v, _ := strings.Cut(kv, "=")
		if len(v) >= minRedacted {
			text = strings.ReplaceAll(text, v, "[redacted]")
		}
	}
	return &ExecError{Args: args, ExitCode: code, Output: text}
}

// ExecOptions is what a bench command gets besides its arguments.
type ExecOptions struct {
	// Env is added to the command's environment (KEY=value). Secrets go
	// here, never in the arguments: Docker records an exec's arguments in
	// its event stream, and errors quote them. Env is never put in an error
	// or a log line.
	Env []string
}

// Exec runs the bench CLI with args inside the bench's container, copying its
// output to out. A non-zero exit is an *ExecError carrying the output's tail.
//
// When ctx ends, the command is ended too (SIGTERM to it and its children,
// SIGKILL after Options.KillGrace) and Exec returns ctx's cause only once it
// has exited: Docker does not stop an exec whose client went away, and a
// cancelled backup must not go on writing after its job ended. When it cannot
// be ended, the error says so and that it may still run.
func (r *Runtime) Exec(ctx context.Context, bench string, out io.Writer, args ...string) error {
	return r.ExecWith(ctx, bench, out, ExecOptions{}, args...)
}

// ExecWith is Exec with options.
func (r *Runtime) ExecWith(ctx context.Context, bench string, out io.Writer, opts ExecOptions, args ...string) error {
	name := ContainerName(bench)
	ctr, err := r.owned(ctx, bench)
	if err != nil {
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	cmd := append(append([]string(nil), r.opts.Command...), args...)
	created, err := r.cli.ExecCreate(ctx, ctr.ID, client.ExecCreateOptions{
		User: fmt.Sprintf("%d:%d", Owner, Owner), AttachStdout: true, AttachStderr: true,
		WorkingDir: benchDir, Cmd: cmd, Env: opts.Env,
	})
	if err != nil {
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	x := execution{r: r, container: ctr.ID, name: name, id: created.ID}
	attached, err := r.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		if ctx.Err() != nil {
			// The exec may have started before the attach gave up.
			return x.cancelled(ctx)
		}
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	var tail tailBuffer
	copied := make(chan error, 1)
	go func() {
		w := io.MultiWriter(out, &tail)
		_, err := stdcopy.StdCopy(w, w, attached.Reader)
		copied <- err
	}()
	select {
	case err = <-copied:
		attached.Close()
	case <-ctx.Done():
		// Closing the connection ends the copy; out is not written to
		// after Exec returns.
		attached.Close()
		<-copied
		return x.cancelled(ctx)
	}
	if err != nil && ctx.Err() == nil {
		// The output broke off, but the command may go on: end it rather
		// than leave it running unwatched.
		if endErr := x.end(context.WithoutCancel(ctx)); endErr != nil {
			return fmt.Errorf("exec in %s: read output: %w; %w", name, err, endErr)
		}
		return fmt.Errorf("exec in %s: read output: %w", name, err)
	}
	// The output ended; a command that closed it may still run: wait for
	// its exit, not for its output.
	inspect, err := x.wait(ctx)
	if ctx.Err() != nil {
		return x.cancelled(ctx)
	}
	if err != nil {
		if endErr := x.end(context.WithoutCancel(ctx)); endErr != nil {
			return fmt.Errorf("exec in %s: %w; %w", name, err, endErr)
		}
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	if inspect.ExitCode != 0 {
		return newExecError(args, inspect.ExitCode, &tail, opts.Env)
	}
	return nil
}

// execution is one bench command being run.
type execution struct {
	r         *Runtime
	container string // the container's full id
	name      string // the container's name, for errors
	id        string // the exec's id
}

// errMayStillRun says that the command could not be ended.
var errMayStillRun = errors.New("the command may still be running")

// cancelled ends the command after ctx ended and returns ctx's cause, with
// why the command could not be ended when it could not.
func (x execution) cancelled(ctx context.Context) error {
	cause := context.Cause(ctx)
	if err := x.end(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("%w; %w", cause, err)
	}
	return cause
}

// wait polls the exec until it is no longer running.
func (x execution) wait(ctx context.Context) (client.ExecInspectResult, error) {
	delay := 10 * time.Millisecond
	for {
		res, err := x.r.cli.ExecInspect(ctx, x.id, client.ExecInspectOptions{})
		if err != nil {
			return res, fmt.Errorf("inspect exec: %w", err)
		}
		if !res.Running {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// end stops the command: SIGTERM to its process and every process it
// started, SIGKILL to those left after the grace, then a wait until Docker
// says it is no longer running. ctx is not the cancelled one.
func (x execution) end(ctx context.Context) error {
	res, err := x.r.cli.ExecInspect(ctx, x.id, client.ExecInspectOptions{})
	if err != nil {
		return fmt.Errorf("end command in %s: inspect exec: %w: %w", x.name, err, errMayStillRun)
	}
	if !res.Running {
		return nil
	}
	tree, err := openTree(res.PID, x.container)
	if errors.Is(err, errProcessGone) {
		// It exited between the two looks; Docker will say so shortly.
		killCtx, cancel := context.WithTimeout(ctx, killWait)
		defer cancel()
		if _, err := x.wait(killCtx); err != nil {
			return fmt.Errorf("end command in %s: %w: %w", x.name, err, errMayStillRun)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("end command in %s: %w: %w", x.name, err, errMayStillRun)
	}
	defer tree.close()
	tree.signal(syscall.SIGTERM)
	graceCtx, cancel := context.WithTimeout(ctx, x.r.opts.KillGrace)
	_, waitErr := x.wait(graceCtx)
	cancel()
	if waitErr == nil {
		tree.waitExited(graceCtx)
	}
	if waitErr != nil || tree.anyAlive() {
		// Children it started since the first look are caught too.
		tree.add(res.PID, x.container)
		tree.signal(syscall.SIGKILL)
	}
	killCtx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	if _, err := x.wait(killCtx); err != nil {
		return fmt.Errorf("end command in %s: still running after SIGKILL: %w: %w", x.name, err, errMayStillRun)
	}
	tree.waitExited(killCtx)
	if tree.anyAlive() {
		return fmt.Errorf("end command in %s: a process it started outlived SIGKILL: %w", x.name, errMayStillRun)
	}
	return nil
}

// killWait bounds the wait for a SIGKILLed command to be reported gone.
const killWait = 30 * time.Second

// tailBuffer keeps the last 4 KiB written to it: a command's output is
// hostile and may be endless.
type tailBuffer struct {
	b   []byte
	cut bool // something was dropped from the front
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > 4096 {
		p = p[len(p)-4096:]
		t.cut = true
	}
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append(t.b[:0], t.b[len(t.b)-4096:]...)
		t.cut = true
	}
	return n, nil
}

func (t *tailBuffer) String() string { return string(bytes.TrimSpace(t.b)) }
