package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSiteLog_WorkersCannotEnterAgentFolder_OffWithFolderNamed(t *testing.T) {
	root := t.TempDir()
	agentDir := filepath.Join(root, "agent")
	require.NoError(t, os.MkdirAll(agentDir, 0o700))
	require.NoError(t, os.Chmod(filepath.Dir(root), 0o755))
	require.NoError(t, os.Chmod(root, 0o755))
	uid, gid, err := workerIDs("")
	require.NoError(t, err)
	require.NotZero(t, uid, "nginx's default workers are nobody's")
	if os.Getuid() == 0 {
		require.Equal(t, agentDir, unreachable(filepath.Join(agentDir, "run"), uid, gid))
		require.NoError(t, os.Chmod(agentDir, 0o711))
		require.Empty(t, unreachable(filepath.Join(agentDir, "run"), uid, gid))
	}
	require.Empty(t, unreachable(filepath.Join(agentDir, "run"), 0, 0), "root enters everywhere")

	uid, gid, err = workerIDs("root")
	require.NoError(t, err)
	require.Zero(t, uid)
	require.Zero(t, gid)
	_, _, err = workerIDs("no-such-user-here")
	require.Error(t, err)
}

// With nginx's default workers (nobody) and a server root closed to others,
// request metrics are on: the socket is under /run/hybrid-agent, not
// <root>/agent, and only root and the workers' group may send to it.
func TestSiteLog_DefaultWorkersAndClosedRoot_On(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("makes the socket's folder in /run, as the agent (root) does")
	}
	root := t.TempDir() // 0700, like a home folder
	require.NoError(t, os.MkdirAll(filepath.Join(root, "agent"), 0o700))
	c, err := newSiteLog(root, "", slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NotNil(t, c, "request metrics stay on")
	t.Cleanup(func() { c.Close() })
	sock := siteLogSocket(root)
	require.True(t, strings.HasPrefix(sock, "/run/hybrid-agent/"), sock)
	require.NotEqual(t, sock, siteLogSocket(t.TempDir()), "another root, another socket")
	st, err := os.Stat(sock)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket|0o660, st.Mode()&(os.ModeSocket|os.ModePerm))
}
