package webauth

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/stretchr/testify/require"
)

func TestEnsureWebConfig_FirstStart_GeneratesHashedCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent", "web.yml")
	require.NoError(t, Ensure(path, false, slog.New(slog.DiscardHandler)))
	require.NoError(t, web.Validate(path))

	password, err := os.ReadFile(PasswordFile(path))
	require.NoError(t, err)
	webYML, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(webYML), strings.TrimSpace(string(password)), "only the hash is in web.yml")
	for _, p := range []string{path, PasswordFile(path)} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), p)
	}

	// A second start keeps the same credentials.
	require.NoError(t, Ensure(path, false, slog.New(slog.DiscardHandler)))
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, webYML, again)
}

func TestEnsureWebConfig_ExplicitFileMissing_IsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-web.yml")
	err := Ensure(path, true, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "web.config_file")
	require.NoFileExists(t, path, "an explicit file is never created")
}
