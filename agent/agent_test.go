package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/internal/webauth"
	"github.com/hybridsuite/hybrid/test/burner/burnerimage"
	"github.com/hybridsuite/hybrid/test/dockertest"
	"github.com/hybridsuite/hybrid/test/mariadbtest"
	"github.com/hybridsuite/hybrid/test/promtooltest"
)

// syncBuffer is a log sink safe for the agent's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type runningAgent struct {
	url, password string
	logs          *syncBuffer
	// apiAddr is the job API's address when it is enabled.
	apiAddr string
}

// startAgent runs the agent in-process on free loopback ports (the metrics,
// and the job API when it is enabled) until the test ends.
func startAgent(t *testing.T, cfg Config) runningAgent {
	t.Helper()
	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var apiL net.Listener
	if cfg.API.Enabled {
		apiL, err = net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, l, apiL) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	password, err := os.ReadFile(filepath.Join(cfg.Root, "agent", "metrics.password"))
	require.NoError(t, err)
	r := runningAgent{url: "http://" + l.Addr().String(), password: strings.TrimSpace(string(password)), logs: logs}
	if apiL != nil {
		r.apiAddr = apiL.Addr().String()
	}
	return r
}

func (r runningAgent) get(t *testing.T, path, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url+path, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func (r runningAgent) scrape(t *testing.T) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	code, body := r.get(t, "/metrics", webauth.User, r.password)
	require.Equal(t, http.StatusOK, code, body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return body, families
}

// value returns the value of the first sample of name whose labels include want.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := families[name]
	if !ok {
		return 0, false
	}
samples:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue samples
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func collectorSuccess(families map[string]*dto.MetricFamily, name string) float64 {
	v, ok := value(families, "hybrid_exporter_collector_success", map[string]string{"collector": name})
	if !ok {
		return -1
	}
	return v
}

func TestAgent_AllCollectors_ServedBehindBasicAuth(t *testing.T) {
	ctx := context.Background()
	db := mariadbtest.Start(t)
	creds := db.WriteCredentials(t, "hybrid_exporter", "s3cret-for-agent-test")
	db.Exec(t, "CREATE DATABASE site_agent_test", "CREATE TABLE site_agent_test.kv (k VARCHAR(64) PRIMARY KEY, v TEXT)")

	cli := dockertest.Client(t)
	image := burnerimage.Build(ctx, t, cli)
	bench := fmt.Sprintf("agent-test-%d", time.Now().UnixNano())
	dockertest.Run(ctx, t, cli, bench, &container.Config{
		Image: image, Cmd: []string{"idle"},
		Labels: map[string]string{"io.hybrid.bench": bench},
	}, &container.HostConfig{})

	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.API.Enabled = false
	cfg.MariaDB.CredentialsFile = creds
	a := startAgent(t, cfg)

	t.Run("authentication", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/healthz", "/"} {
			code, _ := a.get(t, path, "", "")
			require.Equal(t, http.StatusUnauthorized, code, "%s without credentials", path)
			code, _ = a.get(t, path, webauth.User, "wrong")
			require.Equal(t, http.StatusUnauthorized, code, "%s with a wrong password", path)
		}
		code, body := a.get(t, "/healthz", webauth.User, a.password)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)
	})

	var body string
	var families map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		body, families = a.scrape(t)
		_, bench := value(families, "container_cpu_usage_seconds_total", map[string]string{"bench": bench, "name": bench})
		_, size := value(families, "hybrid_mariadb_database_size_bytes", map[string]string{"database": "site_agent_test"})
		return bench && size
	}, 30*time.Second, 250*time.Millisecond, "the bench container and the site database appear in a scrape")

	for _, c := range []string{"mariadb", "bench", "cpu", "meminfo", "filesystem", "directories", "processes"} {
		require.Equal(t, 1.0, collectorSuccess(families, c), "collector %s", c)
	}
	up, ok := value(families, "mysql_up", nil)
	require.True(t, ok)
	require.Equal(t, 1.0, up)
	for _, name := range []string{"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_load1",
		"mysql_global_status_uptime", "container_memory_usage_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		require.Contains(t, families, name)
	}
	require.NotContains(t, a.logs.String(), "s3cret-for-agent-test", "the database password is never logged")

	t.Run("promtool check metrics", func(t *testing.T) {
		problems := promtooltest.CheckMetrics(t, []byte(body))
		require.NotEmpty(t, problems, "promtool lints node_exporter's camelCase names too; none means it did not run")
		require.Empty(t, promtooltest.Unexplained(problems))
	})
}

func TestAgent_BrokenBackends_StaysUpAndReportsWhichFailed(t *testing.T) {
	db := mariadbtest.Start(t)
	db.WriteCredentials(t, "hybrid_exporter", "right-password")
	wrong := mariadbtest.WriteCredentialsFile(t, "hybrid_exporter", "wrong-password-xyz", "127.0.0.1", db.Port())

	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.API.Enabled = false
	cfg.MariaDB.CredentialsFile = wrong
	cfg.Bench.DockerHost = "unix:///nonexistent/docker.sock"
	a := startAgent(t, cfg)

	_, families := a.scrape(t)
	require.Equal(t, 0.0, collectorSuccess(families, "mariadb"))
	require.Equal(t, 0.0, collectorSuccess(families, "bench"))
	require.Equal(t, 1.0, collectorSuccess(families, "cpu"), "the host collectors are unaffected")
	up, ok := value(families, "mysql_up", nil)
	require.True(t, ok)
	require.Equal(t, 0.0, up)

	logs := a.logs.String()
	require.Contains(t, logs, "Access denied for user 'hybrid_exporter'")
	require.Contains(t, logs, "unix:///nonexistent/docker.sock")
	require.NotContains(t, logs, "wrong-password-xyz")
}

func TestNew_CredentialsFileReadableByOthers_Refused(t *testing.T) {
	creds := mariadbtest.WriteCredentialsFile(t, "u", "p", "127.0.0.1", 3306)
	require.NoError(t, os.Chmod(creds, 0o644))
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.API.Enabled = false
	cfg.MariaDB.CredentialsFile = creds
	cfg.Bench.Enabled = false
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, creds)
}

// apiOnlyConfig is an agent with the job API (and its own nginx on free
// loopback ports) and the MariaDB collector, without the host and bench
// collectors.
func apiOnlyConfig(t *testing.T) Config {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the job API runs the agent's nginx: run as root")
	}
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	cfg.Host.Enabled, cfg.Bench.Enabled = false, false
	cfg.Sites.Nginx = NginxConfig{Listen: freeAddr(t), ProbeListen: freeAddr(t), User: "root"}
	return cfg
}

func apiToken(t *testing.T, cfg Config) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(cfg.Root, "agent", "api-token"))
	require.NoError(t, err)
	return strings.TrimSpace(string(token))
}

func apiGet(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestAgent_MariaDBCredentialsMissing_StartsWithMysqlUp0AndTheAPI(t *testing.T) {
	cfg := apiOnlyConfig(t)
	missing := cfg.MariaDBCredentialsFile()
	require.NoFileExists(t, missing)
	a := startAgent(t, cfg)

	for range 3 { // several scrapes: the reason is logged once, not per scrape
		_, families := a.scrape(t)
		up, ok := value(families, "mysql_up", nil)
		require.True(t, ok, "mysql_up is served")
		require.Equal(t, 0.0, up)
		require.Equal(t, 0.0, collectorSuccess(families, "mariadb"))
	}

	code, body := apiGet(t, http.DefaultClient, "http://"+a.apiAddr+"/ping", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"message":"pong"}`, body)
	code, body = apiGet(t, http.DefaultClient, "http://"+a.apiAddr+"/jobs", apiToken(t, cfg))
	require.Equal(t, http.StatusOK, code, body)
	code, _ = apiGet(t, http.DefaultClient, "http://"+a.apiAddr+"/jobs", "wrong-token")
	require.Equal(t, http.StatusUnauthorized, code)

	var naming []string
	for line := range strings.SplitSeq(a.logs.String(), "\n") {
		if strings.Contains(line, missing) {
			naming = append(naming, line)
		}
	}
	require.Len(t, naming, 1, "one log line names the missing file:\n%s", strings.Join(naming, "\n"))
	require.Contains(t, naming[0], "no such file or directory")
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hybrid-agent test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestAgent_APIWithTLS_ServesHTTPSOnly(t *testing.T) {
	cfg := apiOnlyConfig(t)
	cfg.MariaDB.Enabled = false
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	cfg.API.WebConfigFile = filepath.Join(dir, "api-web.yml")
	require.NoError(t, os.WriteFile(cfg.API.WebConfigFile,
		fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile), 0o600))
	// Any interface: allowed because the API has TLS.
	cfg.API.ListenAddress = "0.0.0.0:9475"
	require.NoError(t, cfg.Validate())
	a := startAgent(t, cfg)

	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	code, body := apiGet(t, tlsClient, "https://"+a.apiAddr+"/ping", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"message":"pong"}`, body)
	code, body = apiGet(t, tlsClient, "https://"+a.apiAddr+"/jobs", apiToken(t, cfg))
	require.Equal(t, http.StatusOK, code, body)

	code, _ = apiGet(t, http.DefaultClient, "http://"+a.apiAddr+"/ping", "")
	require.Equal(t, http.StatusBadRequest, code, "plain HTTP is not served")
}

func TestCheckAPIWebConfig_NoTLSOrBasicAuth_Refused(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSignedCert(t, dir)
	cases := map[string]struct{ yaml, want string }{
		"no tls":     {"http_server_config:\n  http2: false\n", "tls_server_config needs a certificate and a key"},
		"no key":     {"tls_server_config:\n  cert_file: " + certFile + "\n", "tls_server_config needs a certificate and a key"},
		"basic auth": {"tls_server_config:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\nbasic_auth_users:\n  u: x\n", "basic_auth_users is not supported"},
		"bad cert":   {"tls_server_config:\n  cert_file: " + keyFile + "\n  key_file: " + keyFile + "\n", "api.web_config_file"},
		"ok":         {"tls_server_config:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "web.yml")
			require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o600))
			err := checkAPIWebConfig(path)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "api.web_config_file")
		})
	}
}

func TestAdminConnection_CredentialsFileMissing_ErrorNamesTheFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "mariadb-admin.cnf")
	db := sql.OpenDB(adminConnector{path: missing})
	defer db.Close()
	err := db.PingContext(t.Context())
	require.ErrorContains(t, err, "sites.admin_credentials_file")
	require.ErrorContains(t, err, missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
}
