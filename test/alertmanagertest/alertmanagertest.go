// Package alertmanagertest runs a real Alertmanager (Debian's
// prometheus-alertmanager) for tests: its configuration and storage in a
// temporary directory, its API on a free port of 127.0.0.1, clustering off.
// It can be stopped and started again on the same port and storage, to test
// delivery across an outage. It also runs `amtool check-config`.
//
// Without the binaries a test is skipped, except in CI (CI=true), where it
// fails. The process dies with the test binary even if that one is killed
// (parent-death signal), and is stopped by the test's cleanup otherwise.
package alertmanagertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hybridsuite/hybrid/test/childproc"
)

const (
	readyTimeout = 15 * time.Second
	stopTimeout  = 10 * time.Second
)

// Instance is a running (or stopped) Alertmanager.
type Instance struct {
	t          testing.TB
	bin        string
	dir        string
	configFile string
	addr       string // 127.0.0.1:port, kept across Stop and Start

	mu   sync.Mutex
	proc *childproc.Process // nil while stopped
	log  *syncBuffer
}

// Binary is the Alertmanager binary's path. A missing one skips the test,
// or fails it when CI=true.
func Binary(t testing.TB) string {
	t.Helper()
	return lookPath(t, "prometheus-alertmanager", "alertmanager")
}

// Start writes configYAML and runs Alertmanager on it until the test ends.
// It returns once the API answers.
func Start(t testing.TB, configYAML []byte) *Instance {
	t.Helper()
	i := &Instance{t: t, bin: Binary(t), dir: t.TempDir(), log: &syncBuffer{}}
	i.configFile = filepath.Join(i.dir, "alertmanager.yml")
	if err := os.WriteFile(i.configFile, configYAML, 0o600); err != nil {
		t.Fatalf("alertmanagertest: %v", err)
	}
	t.Cleanup(func() {
		if err := i.stop(); err != nil {
			t.Errorf("alertmanagertest: %v", err)
		}
		if t.Failed() {
			t.Logf("alertmanager's log:\n%s", i.logTail())
		}
	})
	// A free port can be taken between choosing it and Alertmanager binding
	// it: choose again if that happens.
	var err error
	for range 3 {
		i.addr = freeAddr(t)
		if err = i.start(); err == nil {
			return i
		}
	}
	t.Fatalf("alertmanagertest: %v", err)
	return nil
}

// URL is Alertmanager's base URL, http://127.0.0.1:port.
func (i *Instance) URL() string { return "http://" + i.addr }

// ConfigFile is the path of the configuration Alertmanager runs on.
func (i *Instance) ConfigFile() string { return i.configFile }

// Stop shuts Alertmanager down (SIGTERM, SIGKILL after 10 s) and waits for
// it to exit. Its port and storage stay for Start.
func (i *Instance) Stop() {
	i.t.Helper()
	if err := i.stop(); err != nil {
		i.t.Fatalf("alertmanagertest: %v", err)
	}
}

// Start runs Alertmanager again, after Stop, on the same port and storage.
func (i *Instance) Start() {
	i.t.Helper()
	if err := i.start(); err != nil {
		i.t.Fatalf("alertmanagertest: %v", err)
	}
}

func (i *Instance) start() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.proc != nil {
		return errors.New("alertmanager already running")
	}
	fmt.Fprintf(i.log, "--- alertmanagertest: starting on %s\n", i.addr)
	cmd := exec.Command(i.bin,
		"--config.file="+i.configFile,
		"--storage.path="+filepath.Join(i.dir, "data"),
		"--web.listen-address="+i.addr,
		"--cluster.listen-address=", // no clustering: no gossip port, no peers
		"--log.level=debug",
	)
	cmd.Stdout, cmd.Stderr = i.log, i.log
	proc, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("start alertmanager: %w", err)
	}
	i.proc = proc
	if err := i.waitReady(); err != nil {
		_ = i.stopLocked(syscall.SIGKILL)
		return err
	}
	return nil
}

func (i *Instance) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(i.URL() + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/-/ready: %s", resp.Status)
		}
		select {
		case <-i.proc.Exited():
			return fmt.Errorf("alertmanager exited during start-up:\n%s", i.log.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("alertmanager not ready after %s: %w\n%s", readyTimeout, err, i.log.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (i *Instance) stop() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.stopLocked(syscall.SIGTERM)
}

func (i *Instance) stopLocked(sig syscall.Signal) error {
	if i.proc == nil {
		return nil
	}
	proc := i.proc
	i.proc = nil
	if proc.Stop(sig, stopTimeout) {
		return fmt.Errorf("alertmanager did not stop within %s of %s; killed", stopTimeout, sig)
	}
	return nil
}

func (i *Instance) logTail() string { return i.log.tail() }

// CheckConfig runs `amtool check-config` on configYAML and returns its
// output, and an error when amtool finds the configuration invalid.
func CheckConfig(t testing.TB, configYAML []byte) (string, error) {
	t.Helper()
	amtool := lookPath(t, "amtool")
	path := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(path, configYAML, 0o600); err != nil {
		t.Fatalf("alertmanagertest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, amtool, "check-config", path).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("alertmanagertest: run amtool: %v", err)
	}
	if err != nil {
		return string(out), fmt.Errorf("amtool check-config: %w: %s", err, out)
	}
	return string(out), nil
}

func lookPath(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("alertmanagertest: %s not found in PATH: install the Debian package prometheus-alertmanager", names[0])
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("alertmanagertest: free port: %v", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}
