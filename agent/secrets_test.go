package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/internal/webauth"
)

func TestEnsureCallbackSecret_FirstStart_Generated0600AndKept(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(cfg.Root, "agent"), 0o700))
	secret, err := ensureCallbackSecret(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(secret), 32)
	st, err := os.Stat(cfg.CallbackSecretFile())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	again, err := ensureCallbackSecret(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, secret, again, "a restart keeps the secret the control plane knows")
}

func TestEnsureCallbackSecret_BadFile_RefusedNamingTheField(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	cases := map[string]struct{ path, want string }{
		"missing explicit file": {filepath.Join(dir, "nope"), "no such file"},
		"readable by others":    {write("open", "0123456789abcdef0123\n", 0o644), "mode 0644"},
		"too short":             {write("short", "abc\n", 0o600), "at least 16"},
		"empty":                 {write("empty", "\n", 0o600), "one non-empty line"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Root = t.TempDir()
			cfg.API.CallbackSecretFile = tc.path
			_, err := ensureCallbackSecret(cfg, slog.New(slog.DiscardHandler))
			require.ErrorContains(t, err, "api.callback_secret_file")
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "0123456789abcdef0123", "the secret is never in an error")
		})
	}
}

func TestAgentSecrets_TokenMetricsPasswordOffsiteKeysAndCallbackSecret(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	agentDir := filepath.Join(cfg.Root, "agent")
	require.NoError(t, os.MkdirAll(agentDir, 0o700))
	write := func(path, content string) {
		require.NoError(t, os.WriteFile(path, []byte(content+"\n"), 0o600))
	}
	write(filepath.Join(agentDir, "api-token"), "the-api-token")
	write(webauth.PasswordFile(cfg.WebConfigFile()), "the-metrics-password")
	cfg.Sites.Offsite = OffsiteConfig{Endpoint: "s3.example.com", Bucket: "b",
		AccessKeyFile: filepath.Join(agentDir, "access"), SecretKeyFile: filepath.Join(agentDir, "secret")}
	write(cfg.Sites.Offsite.AccessKeyFile, "AKIDEXAMPLE")
	write(cfg.Sites.Offsite.SecretKeyFile, "the-s3-secret-key")

	got := agentSecrets(cfg, []byte("the-callback-secret"))
	require.ElementsMatch(t, []string{"the-callback-secret", "the-api-token", "the-metrics-password", "AKIDEXAMPLE", "the-s3-secret-key"}, got)

	// Files that are not there (the control plane took the token) are skipped.
	require.NoError(t, os.Remove(filepath.Join(agentDir, "api-token")))
	cfg.Sites.Offsite = OffsiteConfig{}
	got = agentSecrets(cfg, []byte("the-callback-secret"))
	require.ElementsMatch(t, []string{"the-callback-secret", "the-metrics-password"}, got)
}
