package agent

import (
	"os"
	"path/filepath"
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
