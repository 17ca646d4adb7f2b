package sshexec_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hybridsuite/hybrid/controlplane/sshexec"
	"github.com/hybridsuite/hybrid/test/sshdtest"
)

func configFor(srv *sshdtest.Server) sshexec.Config {
	return sshexec.Config{
		Address:     srv.Addr(),
		User:        srv.User(),
		KeyFile:     srv.ClientKeyFile(),
		DialTimeout: 5 * time.Second,
	}
}

func TestDial_FirstContactWithTrustOnFirstUse_ReturnsKeyToPin(t *testing.T) {
	srv := sshdtest.Start(t)
	cfg := configFor(srv)
	cfg.TrustOnFirstUse = true
	c, err := sshexec.Dial(context.Background(), cfg)
	require.NoError(t, err, srv.Log())
	defer c.Close()

	wantKey, err := srv.HostKey()
	require.NoError(t, err)
	wantFP, err := srv.HostKeyFingerprint()
	require.NoError(t, err)
	require.Equal(t, sshexec.HostKey{Fingerprint: wantFP, AuthorizedKey: wantKey}, c.HostKey())

	// Later contact: pinned, same key, works without trust on first use.
	cfg = configFor(srv)
	cfg.HostKey = c.HostKey().AuthorizedKey
	again, err := sshexec.Dial(context.Background(), cfg)
	require.NoError(t, err)
	defer again.Close()
	require.Equal(t, wantFP, again.HostKey().Fingerprint)
	res, err := again.Run(context.Background(), sshexec.Command{Args: []string{"echo", "pinned"}})
	require.NoError(t, err)
	require.Equal(t, "pinned\n", res.Stdout)
}

func TestDial_NoPinnedKeyWithoutTrustOnFirstUse_Refused(t *testing.T) {
	srv := sshdtest.Start(t)
	c, err := sshexec.Dial(context.Background(), configFor(srv))
	require.Nil(t, c)
	var unknown *sshexec.HostKeyUnknownError
	require.ErrorAs(t, err, &unknown)
	wantFP, _ := srv.HostKeyFingerprint()
	require.Equal(t, wantFP, unknown.PresentedKey.Fingerprint)
	require.Contains(t, err.Error(), "not pinned")
	require.NotContains(t, srv.Log(), "Accepted publickey")
}

func TestDial_HostKeyChanged_RefusedAndNothingRun(t *testing.T) {
	srv := sshdtest.Start(t)
	pinned, err := srv.HostKey()
	require.NoError(t, err)
	oldFP, err := srv.HostKeyFingerprint()
	require.NoError(t, err)
	c := dialServer(t, srv)
	_, err = c.Run(context.Background(), sshexec.Command{Args: []string{"true"}})
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(srv.Log(), "Accepted publickey"))

	require.NoError(t, srv.RegenerateHostKey())
	newFP, err := srv.HostKeyFingerprint()
	require.NoError(t, err)

	cfg := configFor(srv)
	cfg.HostKey = pinned
	cfg.TrustOnFirstUse = true // never overrides a pinned key
	changed, err := sshexec.Dial(context.Background(), cfg)
	require.Nil(t, changed)
	var hkErr *sshexec.HostKeyChangedError
	require.ErrorAs(t, err, &hkErr)
	require.Equal(t, oldFP, hkErr.Expected)
	require.Equal(t, newFP, hkErr.Presented)
	require.Equal(t, newFP, hkErr.PresentedKey.Fingerprint)
	require.Equal(t, srv.Addr(), hkErr.Address)
	require.Contains(t, err.Error(), "host key of "+srv.Addr()+" changed: pinned "+oldFP+", the server presented "+newFP)
	// The handshake stopped at the host key: the client never logged in.
	require.Equal(t, 1, strings.Count(srv.Log(), "Accepted publickey"), srv.Log())
}

// writeKey writes a new ed25519 private key in OpenSSH format with mode.
func writeKey(t *testing.T, mode os.FileMode) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "id_ed25519")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(block), 0o600))
	require.NoError(t, os.Chmod(path, mode))
	return path
}

func TestDial_WrongClientKey_AuthErrorNamingKey(t *testing.T) {
	srv := sshdtest.Start(t)
	cfg := configFor(srv)
	cfg.HostKey, _ = srv.HostKey()
	cfg.KeyFile = writeKey(t, 0o600)
	c, err := sshexec.Dial(context.Background(), cfg)
	require.Nil(t, c)
	var auth *sshexec.AuthError
	require.ErrorAs(t, err, &auth)
	require.Equal(t, cfg.KeyFile, auth.KeyFile)
	require.Equal(t, srv.User(), auth.User)
	require.True(t, strings.HasPrefix(auth.KeyFingerprint, "SHA256:"))
	require.Contains(t, err.Error(), "ssh login to "+srv.Addr()+" as "+srv.User()+" refused with key "+cfg.KeyFile)
}

func TestDial_KeyFileReadableByOthers_RefusedNamingFile(t *testing.T) {
	srv := sshdtest.Start(t)
	cfg := configFor(srv)
	cfg.TrustOnFirstUse = true
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		cfg.KeyFile = filepath.Join(t.TempDir(), "key")
		pemBytes, err := os.ReadFile(srv.ClientKeyFile()) // the right key
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(cfg.KeyFile, pemBytes, 0o600))
		require.NoError(t, os.Chmod(cfg.KeyFile, mode))
		c, err := sshexec.Dial(context.Background(), cfg)
		require.Nil(t, c)
		require.ErrorIs(t, err, sshexec.ErrKeyFilePermissions)
		require.Contains(t, err.Error(), cfg.KeyFile)
		require.NotContains(t, err.Error(), "PRIVATE KEY")
	}
	require.NotContains(t, srv.Log(), "Accepted publickey", "no connection is made with such a key")
}

func TestDial_BadKeyFile_ClearError(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("not a key\n"), 0o600))
	for file, want := range map[string]string{
		filepath.Join(dir, "missing"): "open private key",
		garbage:                       "parse private key " + garbage,
		"":                            "no private key file",
	} {
		_, err := sshexec.Dial(context.Background(), sshexec.Config{Address: "127.0.0.1:1", KeyFile: file})
		require.ErrorContains(t, err, want)
	}
}

func TestDial_PortClosed_ClearErrorAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = sshexec.Dial(context.Background(), sshexec.Config{
		Address: addr, KeyFile: writeKey(t, 0o600), TrustOnFirstUse: true, DialTimeout: 5 * time.Second,
	})
	require.ErrorContains(t, err, "connect to "+addr)
	require.ErrorContains(t, err, "connection refused")
	require.Less(t, time.Since(start), time.Second)
}

func TestDial_ServerNeverAnswers_ErrorWithinDialTimeout(t *testing.T) {
	// Accepts the connection and says nothing, as a stuck host or a
	// firewall that lets the SYN through would.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	var conns sync.WaitGroup
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); _, _ = io.Copy(io.Discard, conn); conn.Close() }()
		}
	}()
	start := time.Now()
	c, err := sshexec.Dial(context.Background(), sshexec.Config{
		Address: l.Addr().String(), KeyFile: writeKey(t, 0o600), TrustOnFirstUse: true, DialTimeout: time.Second,
	})
	elapsed := time.Since(start)
	require.Nil(t, c)
	require.ErrorContains(t, err, "ssh handshake with "+l.Addr().String()+": no answer within 1s")
	require.GreaterOrEqual(t, elapsed, 900*time.Millisecond)
	require.Less(t, elapsed, 2500*time.Millisecond)
	l.Close()
	conns.Wait()
}

func TestDial_ContextCanceled_StopsHandshake(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, conn)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = sshexec.Dial(ctx, sshexec.Config{
		Address: l.Addr().String(), KeyFile: writeKey(t, 0o600), TrustOnFirstUse: true, DialTimeout: 10 * time.Second,
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
}

// freezableProxy forwards TCP to target until frozen, then stops forwarding
// without closing anything: a server that hangs or a network that drops.
type freezableProxy struct {
	l      net.Listener
	mu     sync.Mutex
	frozen bool
}

func startProxy(t *testing.T, target string) *freezableProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezableProxy{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			t.Cleanup(func() { in.Close(); out.Close() })
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *freezableProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen := p.frozen
		p.mu.Unlock()
		if err != nil {
			return
		}
		if !frozen {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

func (p *freezableProxy) freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }

func TestKeepAlive_UnansweredConnection_ClosedAndCommandFails(t *testing.T) {
	srv := sshdtest.Start(t)
	proxy := startProxy(t, srv.Addr())
	cfg := configFor(srv)
	cfg.Address = proxy.l.Addr().String()
	cfg.TrustOnFirstUse = true
	cfg.KeepAliveInterval = 200 * time.Millisecond
	c, err := sshexec.Dial(context.Background(), cfg)
	require.NoError(t, err)
	defer c.Close()

	type outcome struct {
		err     error
		elapsed time.Duration
	}
	result := make(chan outcome, 1)
	go func() {
		start := time.Now()
		_, err := c.Run(context.Background(), sshexec.Command{Args: []string{"sleep", "10"}})
		result <- outcome{err, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond)
	proxy.freeze()
	select {
	case r := <-result:
		require.Error(t, r.err)
		require.False(t, errors.Is(r.err, context.Canceled))
		require.Less(t, r.elapsed, 3*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("a command on a dead connection must fail once keepalives go unanswered")
	}
}

func TestClient_SecretOnStdin_NeverInLogsOrErrors(t *testing.T) {
	srv := sshdtest.Start(t)
	var logs strings.Builder
	var mu sync.Mutex
	cfg := configFor(srv)
	cfg.HostKey, _ = srv.HostKey()
	cfg.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := sshexec.Dial(context.Background(), cfg)
	require.NoError(t, err)
	defer c.Close()

	const secret = "db-pa55-Zq81"
	_, err = c.Run(context.Background(), sshexec.Command{
		Args:   []string{"sh", "-c", `read -r pw; echo "ERROR 1045: Access denied (using password: $pw)" >&2; exit 1`},
		Stdin:  strings.NewReader(secret + "\n"),
		Redact: []string{secret},
	})
	require.Error(t, err)
	_, err2 := c.Upload(context.Background(), filepath.Join(t.TempDir(), "secret.cnf"), strings.NewReader("password="+secret), 0o600)
	require.NoError(t, err2)

	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, logs.String(), "ssh run", "debug lines were written")
	require.NotContains(t, logs.String()+err.Error(), secret)
	require.Contains(t, err.Error(), "Access denied (using password: ***)")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
