package sshexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Executor runs commands and writes files on one server. Implementations
// are safe for concurrent use.
type Executor interface {
	// Run runs cmd and waits for it. A non-zero exit is a *ExitError, with
	// the Result (output tails, status, duration) filled in all the same.
	// When ctx ends the command is sent SIGTERM, then SIGKILL, and Run
	// returns ctx's error.
	Run(ctx context.Context, cmd Command) (Result, error)
	// Upload writes r to the absolute path dst atomically: a temporary file
	// beside dst, made mode before any byte is written, synced, its sha256
	// checked on the server, then renamed over dst. On any error dst is
	// untouched and the temporary file removed.
	Upload(ctx context.Context, dst string, r io.Reader, mode fs.FileMode) (UploadResult, error)
	// Close releases the connection.
	Close() error
}

// OutputTail is how much of a command's stdout and of its stderr Result keeps:
// the last 64 KiB of each.
const OutputTail = 64 << 10

// killGrace is how long a command has to exit after SIGTERM before SIGKILL.
const killGrace = time.Second

// Command is a program and its arguments, run without a shell of ours
// between them: each word reaches the program as it is.
type Command struct {
	// Args is the argv; Args[0] is the program, looked up in PATH. Never put
	// a secret here (see the package documentation).
	Args []string
	// Stdin, when set, is copied to the command's standard input until EOF,
	// then the input is closed. Secrets go here.
	Stdin io.Reader
	// Redact lists values (e.g. the secrets sent on Stdin) replaced by "***"
	// in the output tails, String and errors.
	Redact []string
}

// String is the command as a quoted shell line with Redact applied, for logs,
// step records and error messages.
func (c Command) String() string {
	words := make([]string, len(c.Args))
	for i, a := range c.Args {
		words[i] = Quote(redact(a, c.Redact))
	}
	return strings.Join(words, " ")
}

// short is String cut to a length fit for an error message.
func (c Command) short() string {
	s := c.String()
	const max = 300
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

func (c Command) validate() error {
	if len(c.Args) == 0 || c.Args[0] == "" {
		return errors.New("command has no program (Args is empty)")
	}
	for i, a := range c.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("argument %d of %s contains a NUL byte, which no argv can carry", i, Quote(redact(c.Args[0], c.Redact)))
		}
	}
	return nil
}

// Quote makes word a single word for a POSIX shell (sh, dash, bash, zsh),
// whatever it contains: words made only of letters, digits and _@%+:,./-
// are left as they are, anything else is single-quoted, with each single
// quote inside closed, escaped and reopened:
//
//	it's  ->  'it'\''s'
//
// word must not contain a NUL byte (no shell word can).
func Quote(word string) string {
	if word == "" {
		return "''"
	}
	safe := true
	for i := 0; i < len(word); i++ {
		b := word[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
			strings.IndexByte("_@%+:,./-", b) >= 0) {
			safe = false
			break
		}
	}
	if safe {
		return word
	}
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}

// Result is what a command did.
type Result struct {
	// Stdout and Stderr are the last OutputTail bytes of each, redacted.
	Stdout string
	Stderr string
	// ExitStatus is the command's exit status; -1 when it was ended by a
	// signal or its status is unknown.
	ExitStatus int
	Duration   time.Duration
}

// UploadResult is what Upload wrote.
type UploadResult struct {
	Path   string
	Size   int64
	SHA256 string // lower-case hex, as sha256sum prints it
}

// ExitError is a command that ran and failed: a non-zero exit status or a
// signal.
type ExitError struct {
	Command string // Command.String, possibly shortened
	Status  int    // -1 when ended by a signal
	Signal  string // e.g. "TERM" or "KILL", when ended by a signal
	// LastLine is the last non-empty line of stderr (redacted), to say why.
	LastLine string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Signal != "" {
		fmt.Fprintf(&b, "command %s was killed by signal %s", e.Command, e.Signal)
	} else {
		fmt.Fprintf(&b, "command %s exited with status %d", e.Command, e.Status)
	}
	if e.LastLine != "" {
		fmt.Fprintf(&b, ": %s", e.LastLine)
	}
	return b.String()
}

func newExitError(cmd Command, status int, signal string, stderr string) *ExitError {
	return &ExitError{Command: cmd.short(), Status: status, Signal: signal, LastLine: lastLine(stderr)}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// checkUpload validates Upload's arguments the same way for every executor.
func checkUpload(dst string, mode fs.FileMode) error {
	if !path.IsAbs(dst) || strings.HasSuffix(dst, "/") || path.Clean(dst) != dst {
		return fmt.Errorf("upload destination %q must be a clean absolute file path", dst)
	}
	if strings.IndexByte(dst, 0) >= 0 {
		return errors.New("upload destination contains a NUL byte")
	}
	if mode&^fs.ModePerm != 0 {
		return fmt.Errorf("upload mode %v: only permission bits (0777) are allowed", mode)
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
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

// countingWriter counts what goes through it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
