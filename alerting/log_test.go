package alerting

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLogReceiver_OneLinePerAlert_FiringAndResolved(t *testing.T) {
	var out bytes.Buffer
	r := NewLogReceiver(slog.New(slog.NewTextHandler(&out, nil)))
	firing := testAlert("SiteDown", "a:9470", SeverityCritical)
	firing.EndsAt = time.Now().Add(time.Hour)
	resolved := testAlert("DiskFull", "b:9470", SeverityWarning)
	resolved.EndsAt = time.Now().Add(-time.Minute)

	require.NoError(t, r.Notify(context.Background(), []Alert{firing, resolved}))

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], `level=WARN msg="alert firing" alertname=SiteDown severity=critical instance=a:9470`)
	require.Contains(t, lines[0], "runbook_url=https://runbooks.example.com/SiteDown")
	require.Contains(t, lines[1], `level=INFO msg="alert resolved" alertname=DiskFull`)
	require.Contains(t, lines[1], "ends_at=")
}
