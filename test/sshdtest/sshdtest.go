// Package sshdtest runs a throwaway OpenSSH server (Debian's openssh-server,
// /usr/sbin/sshd) for tests: its own config, host key and authorized_keys in
// a temporary directory, listening on a free port of 127.0.0.1, in the
// foreground (-D -e), so it dies with the test binary even if that one is
// killed (parent-death signal) and is stopped by the test's cleanup otherwise.
//
// The server lets the current user log in with one client key (ed25519, made
// per server, file mode 0600) and nothing else: no passwords, no PAM. Its SFTP
// subsystem is sshd's internal one. RegenerateHostKey gives the server a new
// host key on the same port, as a reinstalled machine would have.
//
// A missing sshd or ssh-keygen skips the test, or fails it when CI=true
// (`make test` installs them via scripts/deps.sh).
package sshdtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hybridsuite/hybrid/test/childproc"
)

const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
)

// Server is a running (or stopped) throwaway OpenSSH server.
type Server struct {
	dir    string // config, keys, pid file and log
	sshd   string // path of sshd
	keygen string // path of ssh-keygen
	port   int
	user   string

	mu   sync.Mutex
	proc *childproc.Process // nil while stopped
}

const sshHint = "`make test` installs openssh-server and openssh-client via scripts/deps.sh"

// Start runs a server for the test and stops it (and removes its files) when
// the test ends. Missing binaries skip the test, or fail it when CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		childproc.SkipOrFatal(t, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("sshdtest: %v", err)
		}
	})
	return s
}

// New makes the server's files and starts it; Close undoes both. Tests use
// Start, which handles cleanup and missing binaries.
func New() (*Server, error) {
	sshd, err := childproc.FindBinary("sshd", sshHint, "/usr/sbin", "/usr/bin")
	if err != nil {
		return nil, err
	}
	keygen, err := childproc.FindBinary("ssh-keygen", sshHint, "/usr/sbin", "/usr/bin")
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sshdtest: current user: %w", err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root refuses to start without its privilege
		// separation directory, which the package makes only at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("sshdtest: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "sshdtest-")
	if err != nil {
		return nil, fmt.Errorf("sshdtest: %w", err)
	}
	port, err := childproc.FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{dir: dir, sshd: sshd, keygen: keygen, port: port, user: u.Username}
	if err := s.setUp(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) configPath() string  { return filepath.Join(s.dir, "sshd_config") }
func (s *Server) hostKeyPath() string { return filepath.Join(s.dir, "ssh_host_ed25519_key") }
func (s *Server) logPath() string     { return filepath.Join(s.dir, "sshd.log") }
func (s *Server) authorizedKeys() string {
	return filepath.Join(s.dir, "authorized_keys")
}

// Addr is "127.0.0.1:<port>"; the port stays the same across Stop and Start.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// User is the user that can log in: the one running the test.
func (s *Server) User() string { return s.user }

// Dir is the directory holding the server's config, keys and log.
func (s *Server) Dir() string { return s.dir }

// ClientKeyFile is the private key (mode 0600) the server accepts for User.
func (s *Server) ClientKeyFile() string { return filepath.Join(s.dir, "client_ed25519") }

// HostKey is the server's current public host key in authorized_keys format
// ("ssh-ed25519 AAAA...").
func (s *Server) HostKey() (string, error) {
	b, err := os.ReadFile(s.hostKeyPath() + ".pub")
	if err != nil {
		return "", fmt.Errorf("sshdtest: read host key: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return "", fmt.Errorf("sshdtest: host key %s.pub is malformed", s.hostKeyPath())
	}
	return fields[0] + " " + fields[1], nil
}

// HostKeyFingerprint is the current host key's "SHA256:..." fingerprint, as
// ssh-keygen -l prints it.
func (s *Server) HostKeyFingerprint() (string, error) {
	out, err := exec.Command(s.keygen, "-l", "-E", "sha256", "-f", s.hostKeyPath()+".pub").Output()
	if err != nil {
		return "", fmt.Errorf("sshdtest: ssh-keygen -l: %w", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 {
		return "", fmt.Errorf("sshdtest: ssh-keygen -l printed %q", out)
	}
	return fields[1], nil
}

// setUp writes the config, the host key, the client key and authorized_keys.
func (s *Server) setUp() error {
	if err := s.generateKey(s.hostKeyPath()); err != nil {
		return err
	}
	if err := s.generateKey(s.ClientKeyFile()); err != nil {
		return err
	}
	pub, err := os.ReadFile(s.ClientKeyFile() + ".pub")
	if err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	if err := os.WriteFile(s.authorizedKeys(), pub, 0o600); err != nil {
		return fmt.Errorf("sshdtest: write authorized_keys: %w", err)
	}
	config := strings.Join([]string{
		"Port " + strconv.Itoa(s.port),
		"ListenAddress 127.0.0.1",
		"HostKey " + s.hostKeyPath(),
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + s.authorizedKeys(),
		// The temporary directory is not owned and locked down the way
		// sshd wants a home directory to be.
		"StrictModes no",
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + s.user,
		"UseDNS no",
		"PrintMotd no",
		"LogLevel VERBOSE",
		"Subsystem sftp internal-sftp",
		"",
	}, "\n")
	if err := os.WriteFile(s.configPath(), []byte(config), 0o600); err != nil {
		return fmt.Errorf("sshdtest: write config: %w", err)
	}
	return nil
}

// generateKey makes a new ed25519 key pair at path (and path.pub),
// replacing any there.
func (s *Server) generateKey(path string) error {
	for _, p := range []string{path, path + ".pub"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sshdtest: %w", err)
		}
	}
	out, err := exec.Command(s.keygen, "-q", "-t", "ed25519", "-N", "", "-C", "sshdtest", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sshdtest: ssh-keygen %s: %w: %s", filepath.Base(path), err, out)
	}
	return nil
}

// RegenerateHostKey stops the server, gives it a new host key and starts it
// again on the same port.
func (s *Server) RegenerateHostKey() error {
	if err := s.Stop(); err != nil {
		return err
	}
	if err := s.generateKey(s.hostKeyPath()); err != nil {
		return err
	}
	return s.Start()
}

// Start starts sshd (again, after Stop) and waits until it greets a client.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("sshdtest: server already running")
	}
	out, err := exec.Command(s.sshd, "-t", "-f", s.configPath()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sshdtest: sshd -t rejects the config: %w: %s", err, out)
	}
	logFile, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(s.sshd, "-D", "-e", "-f", s.configPath())
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	proc, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("sshdtest: start sshd: %w", err)
	}
	s.proc = proc
	if err := s.waitReady(); err != nil {
		s.proc = nil
		proc.Stop(syscall.SIGKILL, stopTimeout)
		return err
	}
	return nil
}

// waitReady waits for the server's "SSH-2.0-" banner on its port.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.greets()
		if err == nil {
			return nil
		}
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("sshdtest: sshd exited during start-up:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshdtest: sshd not ready after %s: %w\n%s", readyTimeout, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) greets() error {
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

// Log is the tail of sshd's log (its -e output), for failure messages.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return "(no sshd log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		return "..." + string(b[len(b)-4000:])
	}
	return string(b)
}

// Stop stops the listening sshd (SIGTERM, then SIGKILL) and waits for it.
// Sessions already open are served by their own processes until they end.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	proc := s.proc
	s.proc = nil
	if proc.Stop(syscall.SIGTERM, stopTimeout) {
		return fmt.Errorf("sshdtest: sshd ignored SIGTERM for %s and was killed", stopTimeout)
	}
	return nil
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	err := s.Stop()
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("sshdtest: remove %s: %w", s.dir, rerr))
	}
	return err
}
