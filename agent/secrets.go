package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"

	"github.com/hybridsuite/hybrid/internal/atomicfile"
	"github.com/hybridsuite/hybrid/internal/mycnf"
	"github.com/hybridsuite/hybrid/internal/webauth"
)

// maxSecretFileBytes bounds a secret file: a key or a token, one line.
const maxSecretFileBytes = 4 << 10

// minCallbackSecretBytes: a shorter HMAC key could be guessed.
const minCallbackSecretBytes = 16

// readSecretFile reads a one-line secret from path, refusing a file that is
// not regular or that group or others may read. field names the setting in
// errors; the secret itself is never in one.
func readSecretFile(field, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s is not a regular file", field, path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s: %s has mode %04o: it holds a secret, so group and others must have no access (chmod 600 %s)",
			field, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s: read %s: %w", field, path, err)
	}
	if len(data) > maxSecretFileBytes {
		return "", fmt.Errorf("%s: %s is longer than %d bytes", field, path, maxSecretFileBytes)
	}
	s := strings.TrimSpace(string(data))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: %s: want exactly one non-empty line", field, path)
	}
	return s, nil
}

// ensureCallbackSecret returns the secret that signs callbacks. With the
// default file missing, it makes one (0600) for the control plane to take;
// a configured file must exist.
func ensureCallbackSecret(cfg Config, logger *slog.Logger) ([]byte, error) {
	path := cfg.CallbackSecretFile()
	secret, err := readSecretFile("api.callback_secret_file", path)
	if err == nil {
		if len(secret) < minCallbackSecretBytes {
			return nil, fmt.Errorf("api.callback_secret_file: %s: want at least %d characters", path, minCallbackSecretBytes)
		}
		return []byte(secret), nil
	}
	if !errors.Is(err, fs.ErrNotExist) || cfg.API.CallbackSecretFile != "" {
		return nil, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate the callback secret: %w", err)
	}
	secret = hex.EncodeToString(b)
	if err := atomicfile.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("api.callback_secret_file: %w", err)
	}
	logger.Info("generated the callback secret", "file", path)
	return []byte(secret), nil
}

// checkAPIWebConfig refuses an API web configuration that would not serve
// TLS, or that asks for basic auth (the API authenticates by its bearer
// token, in the same Authorization header), and checks its certificates.
func checkAPIWebConfig(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("api.web_config_file: %w", err)
	}
	var c struct {
		TLS   map[string]any `yaml:"tls_server_config"`
		Users map[string]any `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("api.web_config_file %s: %w", path, err)
	}
	if len(c.Users) > 0 {
		return fmt.Errorf("api.web_config_file %s: basic_auth_users is not supported: the API checks its own bearer token", path)
	}
	if c.TLS["cert_file"] == nil && c.TLS["cert"] == nil || c.TLS["key_file"] == nil && c.TLS["key"] == nil {
		return fmt.Errorf("api.web_config_file %s: tls_server_config needs a certificate and a key (cert_file and key_file)", path)
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("api.web_config_file %s: %w", path, err)
	}
	return nil
}

// agentSecrets are the agent-wide secrets that jobs must never record:
// the clear API token (while its file is there), the offsite keys, the
// callback secret and the metrics password. A file that is not there is
// skipped: there is then nothing of it to leak.
func agentSecrets(cfg Config, callbackSecret []byte) []string {
	secrets := []string{string(callbackSecret)}
	files := []string{
		cfg.TokenFile(),
		webauth.PasswordFile(cfg.WebConfigFile()),
	}
	if o := cfg.Sites.Offsite; o.Endpoint != "" {
		files = append(files, o.AccessKeyFile, o.SecretKeyFile)
	}
	for _, f := range files {
		if s, err := readSecretFile("secret", f); err == nil {
			secrets = append(secrets, s)
		}
	}
	// The admin user creates and drops every site's database.
	if creds, err := mycnf.Read(cfg.AdminCredentialsFile()); err == nil && creds.Password != "" {
		secrets = append(secrets, creds.Password)
	}
	return secrets
}
