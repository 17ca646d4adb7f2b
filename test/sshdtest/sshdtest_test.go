package sshdtest_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/hybridsuite/hybrid/test/sshdtest"
)

// run logs in with the server's client key, accepting only wantHostKey, and
// runs command.
func run(t *testing.T, srv *sshdtest.Server, wantHostKey, command string) (string, error) {
	t.Helper()
	keyPEM, err := os.ReadFile(srv.ClientKeyFile())
	require.NoError(t, err)
	signer, err := ssh.ParsePrivateKey(keyPEM)
	require.NoError(t, err)
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(wantHostKey))
	require.NoError(t, err)
	client, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:              srv.User(),
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(pinned),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           5 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer client.Close()
	session, err := client.NewSession()
	require.NoError(t, err)
	defer session.Close()
	out, err := session.CombinedOutput(command)
	return string(out), err
}

func TestStart_ClientKeyLogsInAndRunsCommand(t *testing.T) {
	srv := sshdtest.Start(t)
	hostKey, err := srv.HostKey()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(hostKey, "ssh-ed25519 "), hostKey)

	info, err := os.Stat(srv.ClientKeyFile())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	out, err := run(t, srv, hostKey, "echo hello; id -un")
	require.NoError(t, err, srv.Log())
	require.Equal(t, "hello\n"+srv.User()+"\n", out)
}

func TestRegenerateHostKey_SamePortNewKey(t *testing.T) {
	srv := sshdtest.Start(t)
	oldKey, err := srv.HostKey()
	require.NoError(t, err)
	oldFP, err := srv.HostKeyFingerprint()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(oldFP, "SHA256:"), oldFP)
	port := srv.Port()

	require.NoError(t, srv.RegenerateHostKey())
	require.Equal(t, port, srv.Port())
	newKey, err := srv.HostKey()
	require.NoError(t, err)
	newFP, err := srv.HostKeyFingerprint()
	require.NoError(t, err)
	require.NotEqual(t, oldKey, newKey)
	require.NotEqual(t, oldFP, newFP)

	_, err = run(t, srv, oldKey, "true")
	require.Error(t, err, "the old host key must no longer be presented")
	out, err := run(t, srv, newKey, "echo again")
	require.NoError(t, err, srv.Log())
	require.Equal(t, "again\n", out)
}

func TestStop_PortClosedUntilStart(t *testing.T) {
	srv := sshdtest.Start(t)
	require.NoError(t, srv.Stop())
	_, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
	require.Error(t, err)
	require.NoError(t, srv.Start())
	conn, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
	require.NoError(t, err)
	conn.Close()
}
