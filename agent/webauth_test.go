package agent

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
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	path, err := ensureWebConfig(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(cfg.Root, "agent", "web.yml"), path)
	require.NoError(t, web.Validate(path))

	password, err := os.ReadFile(filepath.Join(cfg.Root, "agent", "metrics.password"))
	require.NoError(t, err)
	webYML, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(webYML), strings.TrimSpace(string(password)), "only the hash is in web.yml")
	for _, p := range []string{path, filepath.Join(cfg.Root, "agent", "metrics.password")} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), p)
	}

	// A second start keeps the same credentials.
	_, err = ensureWebConfig(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, webYML, again)
}

func TestEnsureWebConfig_ExplicitFileMissing_IsAnError(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.Web.ConfigFile = filepath.Join(cfg.Root, "missing-web.yml")
	_, err := ensureWebConfig(cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "web.config_file")
	require.NoFileExists(t, cfg.Web.ConfigFile, "an explicit file is never created")
}
