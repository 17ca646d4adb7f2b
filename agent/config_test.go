package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.yml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestLoadConfig_OverridesDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, `
root: /srv/frappe
mariadb:
  query_timeout: 500ms
bench:
  enabled: false
`))
	require.NoError(t, err)
	require.Equal(t, "/srv/frappe", cfg.Root)
	require.Equal(t, 500*time.Millisecond, cfg.MariaDB.QueryTimeout)
	require.Equal(t, 5*time.Minute, cfg.MariaDB.DatabasesInterval, "unset keys keep their default")
	require.False(t, cfg.Bench.Enabled)
	require.True(t, cfg.Host.Enabled)
	require.Equal(t, "/srv/frappe/agent/mariadb.cnf", cfg.MariaDBCredentialsFile())
	require.NoError(t, cfg.Validate())
}

func TestLoadConfig_EmptyFile_IsDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, ""))
	require.NoError(t, err)
	require.Equal(t, DefaultConfig(), cfg)
}

func TestLoadConfig_BadInput_NamesTheProblem(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown key":        {"mariadb:\n  pasword: x\n", "line 2: mariadb.pasword: unknown key"},
		"malformed yaml":     {"root: [unclosed\n", "config "},
		"wrong type":         {"collector_timeout: forever\n", "line 1: collector_timeout: cannot unmarshal"},
		"unknown top-level":  {"listen: :9100\n", "listen: unknown key"},
		"tab indentation":    {"web:\n\tlisten_address: x\n", "line 2"},
		"list for a mapping": {"host: [a, b]\n", "line 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestLoadConfig_MissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yml"))
	require.ErrorContains(t, err, "nope.yml")
}

func TestValidate_ReportsEveryProblemWithItsField(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Root = "relative/root"
	cfg.LogLevel = "loud"
	cfg.CollectorTimeout = 0
	cfg.Web.ListenAddress = "nohostport"
	cfg.MariaDB.QueryTimeout = -time.Second
	cfg.Bench.Label = ""
	cfg.Host.Collectors = []string{"cpu", " "}
	err := cfg.Validate()
	require.Error(t, err)
	for _, field := range []string{
		"root:", "log_level:", "collector_timeout:", "web.listen_address:",
		"mariadb.query_timeout:", "bench.label:", "host.collectors[1]:",
	} {
		require.Contains(t, err.Error(), field)
	}
}

func TestValidate_AllGroupsDisabled(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Host.Enabled, cfg.MariaDB.Enabled, cfg.Bench.Enabled, cfg.API.Enabled = false, false, false, false
	require.ErrorContains(t, cfg.Validate(), "at least one must be enabled")
}

func TestValidate_APIBeyondLoopbackWithoutTLS_Refused(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9475", ":9475", "10.1.2.3:9475", "[::]:9475", "agent.example.com:9475"} {
		t.Run(addr, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.API.ListenAddress = addr
			err := cfg.Validate()
			require.ErrorContains(t, err, "api.web_config_file: must be set")
			require.ErrorContains(t, err, addr)

			cfg.API.WebConfigFile = "/etc/hybrid/api-web.yml"
			require.NoError(t, cfg.Validate(), "with TLS it may listen anywhere")
		})
	}
	for _, addr := range []string{"127.0.0.1:9475", "127.0.0.2:9475", "[::1]:9475", "localhost:9475"} {
		t.Run(addr, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.API.ListenAddress = addr
			require.NoError(t, cfg.Validate(), "loopback needs no TLS")
		})
	}
	t.Run("relative paths", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.API.WebConfigFile = "api-web.yml"
		cfg.API.CallbackSecretFile = "secret"
		err := cfg.Validate()
		require.ErrorContains(t, err, "api.web_config_file: must be an absolute path")
		require.ErrorContains(t, err, "api.callback_secret_file: must be an absolute path")
	})
	t.Run("disabled API", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.API.Enabled = false
		cfg.API.ListenAddress = "0.0.0.0:9475"
		require.NoError(t, cfg.Validate())
	})
}

func TestLoadConfig_APISecurityKeys(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, `
api:
  listen_address: 0.0.0.0:9475
  web_config_file: /srv/agent/api-web.yml
  callback_secret_file: /srv/agent/cb
`))
	require.NoError(t, err)
	require.Equal(t, "/srv/agent/api-web.yml", cfg.API.WebConfigFile)
	require.Equal(t, "/srv/agent/cb", cfg.CallbackSecretFile())
	require.NoError(t, cfg.Validate())
	require.Equal(t, "/home/frappe/agent/callback-secret", DefaultConfig().CallbackSecretFile())
}
