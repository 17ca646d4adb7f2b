package nginx

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestErrorLogTail_SocketAlertsOfAgentOutage_Skipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.log")
	require.NoError(t, os.WriteFile(path, []byte(`2026/12/04 14:55:15 [emerg] 1#1: bind() to 127.0.0.1:80 failed (98: Address already in use)
2026/12/04 14:55:16 [alert] 2#2: connect() failed (2: No such file or directory)
2026/12/04 14:55:16 [alert] 2#2: connect() failed (111: Connection refused)
2026/12/04 14:55:17 [warn] 2#2: something else
`), 0o644))
	require.Equal(t, "2026/12/04 14:55:15 [emerg] 1#1: bind() to 127.0.0.1:80 failed (98: Address already in use)", errorLogTail(path, 5))
}
