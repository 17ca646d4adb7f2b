package sshexec

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Defaults for Config's zero values.
const (
	DefaultDialTimeout       = 15 * time.Second
	DefaultKeepAliveInterval = 15 * time.Second
)

// ErrKeyFilePermissions is wrapped by Dial's error for a private key file that
// group or others can read.
var ErrKeyFilePermissions = errors.New("private key file is readable by group or others")

// Config says how to reach a server over SSH.
type Config struct {
	// Address is "host" or "host:port"; the port is 22 when absent.
	Address string
	// User logs in; "root" when empty.
	User string
	// KeyFile is the private key (unencrypted OpenSSH or PEM), mode 0600 or
	// stricter: a key that group or others can read is refused.
	KeyFile string
	// HostKey is the pinned host key in authorized_keys format (as
	// HostKey.AuthorizedKey); only that key is accepted.
	HostKey string
	// TrustOnFirstUse accepts whatever key the server presents when HostKey
	// is empty; Client.HostKey then returns it, to be pinned.
	TrustOnFirstUse bool
	// DialTimeout bounds the TCP connection, the SSH handshake and the
	// login together (DefaultDialTimeout when zero).
	DialTimeout time.Duration
	// KeepAliveInterval is how often an idle connection is checked
	// (DefaultKeepAliveInterval when zero); one that does not answer within
	// three intervals is closed, failing what runs on it.
	KeepAliveInterval time.Duration
	// Logger gets debug lines (commands as Command.String, never stdin);
	// slog.Default when nil.
	Logger *slog.Logger
}

// AuthError is a server that refused the client key: the key is not in the
// user's authorized_keys, or the user may not log in.
type AuthError struct {
	Address        string
	User           string
	KeyFile        string
	KeyFingerprint string // of the client key
	Err            error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("ssh login to %s as %s refused with key %s (%s); is its public key in %s's authorized_keys? %v",
		e.Address, e.User, e.KeyFile, e.KeyFingerprint, e.User, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// Client is an SSH connection to one server; it implements Executor.
type Client struct {
	address string
	user    string
	hostKey HostKey
	conn    *ssh.Client
	logger  *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}
}

var _ Executor = (*Client)(nil)

// Dial connects and logs in. The host key is checked before anything is
// sent: a key other than Config.HostKey is a *HostKeyChangedError, an
// unpinned key without TrustOnFirstUse a *HostKeyUnknownError; a refused
// client key is an *AuthError.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("ssh: no server address")
	}
	address := cfg.Address
	if _, _, err := net.SplitHostPort(address); err != nil {
		address = net.JoinHostPort(strings.Trim(address, "[]"), "22")
	}
	user := cfg.User
	if user == "" {
		user = "root"
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	interval := cfg.KeepAliveInterval
	if interval <= 0 {
		interval = DefaultKeepAliveInterval
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("server", address)

	signer, err := loadKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	check, err := newHostKeyCheck(address, cfg.HostKey, cfg.TrustOnFirstUse)
	if err != nil {
		return nil, err
	}
	var authAttempted atomic.Bool
	config := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			authAttempted.Store(true)
			return []ssh.Signer{signer}, nil
		})},
		HostKeyCallback:   check.callback,
		HostKeyAlgorithms: check.algorithms(),
		Timeout:           timeout,
	}

	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dialCtx, "tcp", address)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("connect to %s: no answer within %s", address, timeout)
		}
		return nil, fmt.Errorf("connect to %s: %w", address, err)
	}
	deadline, _ := dialCtx.Deadline()
	_ = conn.SetDeadline(deadline)
	// The caller's ctx may end before the deadline: that ends the handshake.
	stop := context.AfterFunc(dialCtx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	sshConn, chans, reqs, err := ssh.NewClientConn(conn, address, config)
	if !stop() && err == nil {
		// ctx ended just as the login succeeded: the deadline is being
		// set under us, so the connection cannot be kept.
		sshConn.Close()
		return nil, fmt.Errorf("ssh handshake with %s: %w", address, context.Cause(dialCtx))
	}
	if err != nil {
		conn.Close()
		seen, rejected := check.result()
		switch {
		case rejected != nil:
			logger.Warn("ssh host key refused", "presented", seen.Fingerprint, "err", rejected)
			return nil, rejected
		case ctx.Err() != nil:
			return nil, fmt.Errorf("ssh handshake with %s: %w", address, ctx.Err())
		case isTimeout(err) && deadlinePassed(ctx):
			// The caller's deadline, not ours, set the connection's.
			return nil, fmt.Errorf("ssh handshake with %s: %w", address, context.DeadlineExceeded)
		case isTimeout(err):
			return nil, fmt.Errorf("ssh handshake with %s: no answer within %s: %w", address, timeout, err)
		case authAttempted.Load():
			return nil, &AuthError{Address: address, User: user, KeyFile: cfg.KeyFile,
				KeyFingerprint: ssh.FingerprintSHA256(signer.PublicKey()), Err: err}
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	seen, _ := check.result()
	c := &Client{
		address: address,
		user:    user,
		hostKey: seen,
		conn:    ssh.NewClient(sshConn, chans, reqs),
		logger:  logger,
		closed:  make(chan struct{}),
	}
	go c.keepAlive(interval)
	logger.Debug("ssh connected", "user", user, "host_key", seen.Fingerprint)
	return c, nil
}

func deadlinePassed(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// loadKey reads a private key file that only its owner can read.
func loadKey(file string) (ssh.Signer, error) {
	if file == "" {
		return nil, errors.New("ssh: no private key file given")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open private key: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat private key: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("private key %s is not a regular file", file)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; make it readable by its owner only (chmod 600 %s)",
			ErrKeyFilePermissions, file, perm, file)
	}
	pem, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read private key %s: %w", file, err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("private key %s is protected by a passphrase, which is not supported", file)
		}
		return nil, fmt.Errorf("parse private key %s: %w", file, err)
	}
	return signer, nil
}

// HostKey is the key the server presented (and that was accepted): on first
// contact with TrustOnFirstUse, the one to pin.
func (c *Client) HostKey() HostKey { return c.hostKey }

// Close closes the connection; commands still running on it end.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.conn.Close()
	})
	return err
}

// keepAlive closes a connection that stops answering, so that what runs on
// it fails instead of hanging.
func (c *Client) keepAlive(interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-ticker.C:
		}
		replied := make(chan error, 1)
		go func() {
			// OpenSSH answers an unknown request with a failure: a reply all the same.
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		select {
		case <-c.closed:
			return
		case err := <-replied:
			if err == nil {
				continue
			}
			c.logger.Warn("ssh keepalive failed; closing the connection", "err", err)
		case <-time.After(3 * interval):
			c.logger.Warn("ssh keepalive unanswered; closing the connection", "waited", 3*interval)
		}
		_ = c.Close()
		return
	}
}

// Run runs cmd through the login user's shell (which must be a POSIX shell).
func (c *Client) Run(ctx context.Context, cmd Command) (Result, error) {
	if err := cmd.validate(); err != nil {
		return Result{ExitStatus: -1}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{ExitStatus: -1}, fmt.Errorf("run %s: %w", cmd.short(), err)
	}
	session, err := c.conn.NewSession()
	if err != nil {
		return Result{ExitStatus: -1}, fmt.Errorf("run %s on %s: open session: %w", cmd.short(), c.address, err)
	}
	defer session.Close()
	stdout, stderr := newOutput(cmd.Redact), newOutput(cmd.Redact)
	pid := &pidCatcher{w: stderr}
	session.Stdout, session.Stderr = stdout, pid
	// Our own copy of stdin: the session's would make Wait fail when a
	// command exits without reading all its input, which is its business.
	var stdin io.WriteCloser
	if cmd.Stdin != nil {
		if stdin, err = session.StdinPipe(); err != nil {
			return Result{ExitStatus: -1}, fmt.Errorf("run %s on %s: %w", cmd.short(), c.address, err)
		}
	}
	c.logger.Debug("ssh run", "command", cmd.short())
	start := time.Now()
	if err := session.Start(shellLine(cmd)); err != nil {
		return Result{ExitStatus: -1}, fmt.Errorf("run %s on %s: %w", cmd.short(), c.address, err)
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, cmd.Stdin)
			_ = stdin.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- session.Wait() }()

	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		c.kill(pid.get(), done)
		_ = session.Close()
		res := Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitStatus: -1, Duration: time.Since(start)}
		return res, fmt.Errorf("run %s on %s: %w", cmd.short(), c.address, ctx.Err())
	}
	res := Result{Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case waitErr == nil:
		return res, nil
	case errors.As(waitErr, &exit):
		if exit.Signal() != "" {
			res.ExitStatus = -1
			return res, newExitError(cmd, -1, exit.Signal(), res.Stderr)
		}
		res.ExitStatus = exit.ExitStatus()
		return res, newExitError(cmd, res.ExitStatus, "", res.Stderr)
	case errors.As(waitErr, &missing):
		res.ExitStatus = -1
		return res, fmt.Errorf("run %s on %s: the connection ended before the command reported its exit status", cmd.short(), c.address)
	default:
		res.ExitStatus = -1
		return res, fmt.Errorf("run %s on %s: %w", cmd.short(), c.address, waitErr)
	}
}

// pidMarker starts the line in which the remote shell reports its pid.
const pidMarker = "hybrid-sshexec-pid:"

// shellLine is what the login shell runs: it reports its pid on stderr, then
// execs the program, which keeps that pid. sshd made it the leader of a
// process group of its own (setsid), so that pid names the group of
// everything the command starts.
func shellLine(cmd Command) string {
	words := make([]string, len(cmd.Args))
	for i, a := range cmd.Args {
		words[i] = Quote(a)
	}
	return "echo " + pidMarker + "$$ >&2; exec " + strings.Join(words, " ")
}

// kill ends a command's process group: SIGTERM, then SIGKILL if it is still
// running after killGrace. The session's own "signal" request is not used:
// sshd refuses it for root logins (no privilege separation after login).
func (c *Client) kill(pid int, done <-chan error) {
	if pid <= 0 {
		return // the shell did not start yet; closing the session is enough
	}
	signal := func(sig string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Run(ctx, Command{Args: []string{"sh", "-c", `kill -s "$1" -- "-$2" 2>/dev/null || true`, "sh", sig, strconv.Itoa(pid)}})
		if err != nil {
			c.logger.Warn("ssh: signal a canceled command", "signal", sig, "pid", pid, "err", err)
		}
	}
	signal("TERM")
	select {
	case <-done:
		return
	case <-time.After(killGrace):
	}
	signal("KILL")
}

// pidCatcher takes the pid line off the front of stderr and passes the
// rest on.
type pidCatcher struct {
	w io.Writer

	mu   sync.Mutex
	line []byte
	done bool
	pid  int
}

func (p *pidCatcher) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	if !p.done {
		i := bytes.IndexByte(b, '\n')
		if i < 0 && len(p.line)+len(b) <= 64 {
			p.line = append(p.line, b...)
			return n, nil
		}
		p.done = true
		if i >= 0 {
			p.line = append(p.line, b[:i]...)
			b = b[i+1:]
			if pid, err := strconv.Atoi(string(bytes.TrimPrefix(p.line, []byte(pidMarker)))); err == nil && bytes.HasPrefix(p.line, []byte(pidMarker)) {
				p.pid = pid
				p.line = nil
			} else {
				p.line = append(p.line, '\n')
			}
		}
		// Not our line (the shell failed before it): keep it as output.
		if _, err := p.w.Write(p.line); err != nil {
			return 0, err
		}
		p.line = nil
	}
	if len(b) > 0 {
		if _, err := p.w.Write(b); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (p *pidCatcher) get() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Upload writes through SFTP to dst.tmp-<random>, then checks its sha256 with
// the server's sha256sum and renames it over dst.
func (c *Client) Upload(ctx context.Context, dst string, r io.Reader, mode fs.FileMode) (res UploadResult, err error) {
	if err := checkUpload(dst, mode); err != nil {
		return UploadResult{}, err
	}
	fail := func(err error) (UploadResult, error) {
		return UploadResult{}, fmt.Errorf("upload %s to %s: %w", dst, c.address, err)
	}
	sc, err := sftp.NewClient(c.conn)
	if err != nil {
		return fail(fmt.Errorf("start sftp: %w", err))
	}
	defer sc.Close()
	// A stuck transfer ends with ctx.
	stop := context.AfterFunc(ctx, func() { _ = sc.Close() })
	defer stop()

	tmp := dst + ".tmp-" + randomSuffix()
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fail(fmt.Errorf("create %s: %w", tmp, err))
	}
	defer func() {
		if err == nil {
			return
		}
		_ = f.Close()
		// The sftp client may be closed by now (ctx ended): remove with a
		// command of its own, bounded.
		cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, rmErr := c.Run(cleanCtx, Command{Args: []string{"rm", "-f", "--", tmp}}); rmErr != nil {
			c.logger.Warn("remove temporary upload file", "path", tmp, "err", rmErr)
		}
	}()
	// The mode is set before any byte is written, so a secret is never
	// readable by others, even for a moment.
	if err := f.Chmod(mode); err != nil {
		return fail(fmt.Errorf("chmod %s: %w", tmp, err))
	}
	hash := sha256.New()
	var size countingWriter
	if _, err := io.Copy(f, io.TeeReader(ctxReader{ctx, r}, io.MultiWriter(hash, &size))); err != nil {
		return fail(errors.Join(ctx.Err(), fmt.Errorf("write %s: %w", tmp, err)))
	}
	if _, ok := sc.HasExtension("fsync@openssh.com"); ok {
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("fsync %s: %w", tmp, err))
		}
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("close %s: %w", tmp, err))
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	out, err := c.Run(ctx, Command{Args: []string{"sha256sum", "--", tmp}})
	if err != nil {
		return fail(fmt.Errorf("check sha256: %w", err))
	}
	fields := strings.Fields(out.Stdout)
	if len(fields) == 0 || strings.TrimPrefix(fields[0], `\`) != sum {
		return fail(fmt.Errorf("sha256 on the server differs from what was sent (%s): the file was not installed", sum))
	}
	rename := sc.Rename
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		rename = sc.PosixRename
	}
	if err := rename(tmp, dst); err != nil {
		return fail(fmt.Errorf("rename %s to %s: %w", path.Base(tmp), path.Base(dst), err))
	}
	c.logger.Debug("ssh upload", "path", dst, "size", size.n, "sha256", sum)
	return UploadResult{Path: dst, Size: size.n, SHA256: sum}, nil
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
