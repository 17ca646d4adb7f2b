package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/hybridsuite/hybrid/internal/strictyaml"
)

// Config is the agent's configuration. Defaults come from DefaultConfig, then a
// YAML file (unknown keys are errors), then command-line flags.
type Config struct {
	// Root is the server's folder: agent/, benches/, archived/ live under it.
	Root             string        `yaml:"root"`
	LogLevel         string        `yaml:"log_level"`
	CollectorTimeout time.Duration `yaml:"collector_timeout"`
	Web              WebConfig     `yaml:"web"`
	Host             HostConfig    `yaml:"host"`
	MariaDB          MariaDBConfig `yaml:"mariadb"`
	Bench            BenchConfig   `yaml:"bench"`
	API              APIConfig     `yaml:"api"`
	Sites            SitesConfig   `yaml:"sites"`
}

// APIConfig is the job API the control plane calls.
type APIConfig struct {
	Enabled       bool   `yaml:"enabled"`
	ListenAddress string `yaml:"listen_address"`
	// TokenHashFile holds the hex SHA-256 of the bearer token. Empty means
	// <root>/agent/api-token.sha256; when it does not exist, a token is made
	// on first start and its clear text left in <root>/agent/api-token (0600)
	// for the control plane to take.
	TokenHashFile string `yaml:"token_hash_file"`
	// Workers is how many jobs run at once.
	Workers int `yaml:"workers"`
	// JobTimeout bounds each job.
	JobTimeout time.Duration `yaml:"job_timeout"`
	// WebConfigFile is an exporter-toolkit web configuration whose
	// tls_server_config serves the API over TLS (basic_auth_users is refused:
	// the API checks its own bearer token). Required when listen_address is
	// not a loopback address.
	WebConfigFile string `yaml:"web_config_file"`
	// CallbackSecretFile (0600) holds the secret that signs callbacks
	// (agentapi.SignatureHeader). Empty means <root>/agent/callback-secret;
	// when that does not exist, a secret is made on first start for the
	// control plane to take, as with the API token.
	CallbackSecretFile string `yaml:"callback_secret_file"`
	// JobRetention is how long ended jobs are kept in the job store; the
	// last job of each type per site or bench is kept whatever its age.
	JobRetention time.Duration `yaml:"job_retention"`
}

// SitesConfig is what site and bench operations need.
type SitesConfig struct {
	// BenchCommand is how the bench CLI is called inside a bench container.
	BenchCommand []string `yaml:"bench_command"`
	// AdminCredentialsFile is a my.cnf-style file (0600) of a MariaDB user
	// that may create and drop databases and users. Empty means
	// <root>/agent/mariadb-admin.cnf.
	AdminCredentialsFile string `yaml:"admin_credentials_file"`
	// DBHost and DBPort are where bench containers reach MariaDB.
	DBHost string `yaml:"db_host"`
	DBPort int    `yaml:"db_port"`
	// ExtraHosts are added to bench containers' /etc/hosts.
	ExtraHosts []string      `yaml:"extra_hosts"`
	Nginx      NginxConfig   `yaml:"nginx"`
	Offsite    OffsiteConfig `yaml:"offsite"`
	// BackupRetention is site.prune_backups' policy when its request sets
	// none; 0 keeps the built-in default (the last 7, and 7 days).
	BackupRetention RetentionConfig `yaml:"backup_retention"`
}

// RetentionConfig keeps a site's KeepLast newest backups and any younger
// than KeepDays days.
type RetentionConfig struct {
	KeepLast int `yaml:"keep_last"`
	KeepDays int `yaml:"keep_days"`
}

// NginxConfig says how the host nginx is driven.
type NginxConfig struct {
	// MainConfig is a system nginx's nginx.conf that includes
	// <root>/agent/nginx/benches/*.conf; empty means the agent runs its own.
	MainConfig string `yaml:"main_config"`
	Listen     string `yaml:"listen"`
	// ProbeListen is the loopback address of the reload probe.
	ProbeListen string `yaml:"probe_listen"`
	User        string `yaml:"user"`
	// RequestMetrics makes nginx send each site request's access log line
	// to the agent (<root>/agent/run/nginx-access.sock), which exports
	// hybrid_site_http_requests_total{site,code} and the request durations.
	RequestMetrics bool `yaml:"request_metrics"`
}

// OffsiteConfig is the S3-compatible storage for offsite backups; no
// endpoint disables offsite backups.
type OffsiteConfig struct {
	Endpoint      string `yaml:"endpoint"`
	Bucket        string `yaml:"bucket"`
	Region        string `yaml:"region"`
	AccessKeyFile string `yaml:"access_key_file"`
	SecretKeyFile string `yaml:"secret_key_file"`
	Insecure      bool   `yaml:"insecure"`
}

// WebConfig says where /metrics and /healthz are served.
type WebConfig struct {
	ListenAddress string `yaml:"listen_address"`
	// ConfigFile is an exporter-toolkit web configuration (basic auth, TLS).
	// Empty means <root>/agent/web.yml, generated with a random password on
	// first start so that metrics are never served without authentication.
	ConfigFile string `yaml:"config_file"`
}

// HostConfig configures the host collectors (node_exporter's and ours).
type HostConfig struct {
	Enabled           bool          `yaml:"enabled"`
	ProcFS            string        `yaml:"procfs"`
	SysFS             string        `yaml:"sysfs"`
	RootFS            string        `yaml:"rootfs"`
	Collectors        []string      `yaml:"collectors"`
	MariaDBDataDir    string        `yaml:"mariadb_datadir"`
	DirectoryInterval time.Duration `yaml:"directory_interval"`
	// ProcessesMinInterval is the least time between two reads of every
	// process (per-user process metrics); sooner scrapes get the last read.
	ProcessesMinInterval time.Duration `yaml:"processes_min_interval"`
	// TextfileDirectory holds *.prom files that the textfile collector
	// exports (cron jobs, scripts); default Debian's
	// /var/lib/prometheus/node-exporter.
	TextfileDirectory string `yaml:"textfile_directory"`
}

// MariaDBConfig configures the MariaDB collector.
type MariaDBConfig struct {
	Enabled bool `yaml:"enabled"`
	// CredentialsFile is a my.cnf-style file ([client] user, password, host,
	// port or socket), mode 0600. Empty means <root>/agent/mariadb.cnf.
	CredentialsFile   string        `yaml:"credentials_file"`
	QueryTimeout      time.Duration `yaml:"query_timeout"`
	LockWaitTimeout   time.Duration `yaml:"lock_wait_timeout"`
	DatabasesInterval time.Duration `yaml:"databases_interval"`
	// VariablesInterval is how often SHOW GLOBAL VARIABLES is re-read.
	VariablesInterval time.Duration `yaml:"variables_interval"`
}

// BenchConfig configures the bench-container collector.
type BenchConfig struct {
	Enabled    bool   `yaml:"enabled"`
	DockerHost string `yaml:"docker_host"`
	Label      string `yaml:"label"`
	CgroupRoot string `yaml:"cgroup_root"`
	ProcFS     string `yaml:"procfs"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{
		Root:             "/home/frappe",
		LogLevel:         "info",
		CollectorTimeout: 10 * time.Second,
		Web:              WebConfig{ListenAddress: "127.0.0.1:9470"},
		Host: HostConfig{
			Enabled:              true,
			ProcFS:               "/proc",
			SysFS:                "/sys",
			RootFS:               "/",
			MariaDBDataDir:       "/var/lib/mysql",
			DirectoryInterval:    5 * time.Minute,
			ProcessesMinInterval: 10 * time.Second,
		},
		MariaDB: MariaDBConfig{
			Enabled:           true,
			QueryTimeout:      2 * time.Second,
			LockWaitTimeout:   2 * time.Second,
			DatabasesInterval: 5 * time.Minute,
			VariablesInterval: time.Minute,
		},
		Bench: BenchConfig{
			Enabled:    true,
			Label:      "io.hybrid.bench",
			CgroupRoot: "/sys/fs/cgroup",
			ProcFS:     "/proc",
		},
		API: APIConfig{
			Enabled:       true,
			ListenAddress: "127.0.0.1:9475",
			Workers:       2,
			JobTimeout:    time.Hour,
			JobRetention:  30 * 24 * time.Hour,
		},
		Sites: SitesConfig{
			BenchCommand: []string{"bench"},
			DBHost:       "host.docker.internal",
			DBPort:       3306,
			ExtraHosts:   []string{"host.docker.internal:host-gateway"},
			Nginx:        NginxConfig{Listen: "80", ProbeListen: "127.0.0.1:9471", RequestMetrics: true},
		},
	}
}

// LoadConfig reads path over the defaults. Unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	err := strictyaml.DecodeFile(path, &cfg)
	return cfg, err
}

// WebConfigFile is the web configuration in effect.
func (c Config) WebConfigFile() string {
	if c.Web.ConfigFile != "" {
		return c.Web.ConfigFile
	}
	return filepath.Join(c.Root, "agent", "web.yml")
}

// MariaDBCredentialsFile is the MariaDB credentials file in effect.
func (c Config) MariaDBCredentialsFile() string {
	if c.MariaDB.CredentialsFile != "" {
		return c.MariaDB.CredentialsFile
	}
	return filepath.Join(c.Root, "agent", "mariadb.cnf")
}

// AdminCredentialsFile is the MariaDB admin credentials file in effect.
func (c Config) AdminCredentialsFile() string {
	if c.Sites.AdminCredentialsFile != "" {
		return c.Sites.AdminCredentialsFile
	}
	return filepath.Join(c.Root, "agent", "mariadb-admin.cnf")
}

// TokenHashFile is the API token's hash file in effect.
func (c Config) TokenHashFile() string {
	if c.API.TokenHashFile != "" {
		return c.API.TokenHashFile
	}
	return filepath.Join(c.Root, "agent", "api-token.sha256")
}

// TokenFile is where the agent leaves the clear API token it made, for the
// control plane to take: beside the hash.
func (c Config) TokenFile() string {
	return filepath.Join(filepath.Dir(c.TokenHashFile()), "api-token")
}

// CallbackSecretFile is the callback secret's file in effect.
func (c Config) CallbackSecretFile() string {
	if c.API.CallbackSecretFile != "" {
		return c.API.CallbackSecretFile
	}
	return filepath.Join(c.Root, "agent", "callback-secret")
}

// isLoopback says whether a listen address's host only takes connections
// from this machine. An empty host, 0.0.0.0 or a name other than
// localhost listens beyond it.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate reports every problem at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	absolute := func(field, p string) {
		if !filepath.IsAbs(p) {
			bad(field, "must be an absolute path, got %q", p)
		}
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, "must be a positive duration, got %s", d)
		}
	}

	absolute("root", c.Root)
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("log_level", "must be one of debug, info, warn, error, got %q", c.LogLevel)
	}
	positive("collector_timeout", c.CollectorTimeout)
	if _, _, err := net.SplitHostPort(c.Web.ListenAddress); err != nil {
		bad("web.listen_address", "must be host:port, got %q", c.Web.ListenAddress)
	}
	if c.Web.ConfigFile != "" {
		absolute("web.config_file", c.Web.ConfigFile)
	}
	if c.Host.Enabled {
		absolute("host.procfs", c.Host.ProcFS)
		absolute("host.sysfs", c.Host.SysFS)
		absolute("host.rootfs", c.Host.RootFS)
		absolute("host.mariadb_datadir", c.Host.MariaDBDataDir)
		positive("host.directory_interval", c.Host.DirectoryInterval)
		positive("host.processes_min_interval", c.Host.ProcessesMinInterval)
		for i, name := range c.Host.Collectors {
			if strings.TrimSpace(name) == "" {
				bad(fmt.Sprintf("host.collectors[%d]", i), "must not be empty")
			}
		}
	}
	if c.MariaDB.Enabled {
		if c.MariaDB.CredentialsFile != "" {
			absolute("mariadb.credentials_file", c.MariaDB.CredentialsFile)
		}
		positive("mariadb.query_timeout", c.MariaDB.QueryTimeout)
		positive("mariadb.lock_wait_timeout", c.MariaDB.LockWaitTimeout)
		positive("mariadb.databases_interval", c.MariaDB.DatabasesInterval)
		positive("mariadb.variables_interval", c.MariaDB.VariablesInterval)
	}
	if c.Bench.Enabled {
		if c.Bench.Label == "" {
			bad("bench.label", "must not be empty")
		}
		absolute("bench.cgroup_root", c.Bench.CgroupRoot)
		absolute("bench.procfs", c.Bench.ProcFS)
	}
	if c.API.Enabled {
		if host, _, err := net.SplitHostPort(c.API.ListenAddress); err != nil {
			bad("api.listen_address", "must be host:port, got %q", c.API.ListenAddress)
		} else if !isLoopback(host) && c.API.WebConfigFile == "" {
			bad("api.web_config_file", "must be set (a web configuration with tls_server_config) when api.listen_address %q is not a loopback address: the API's token and jobs must not cross the network in clear", c.API.ListenAddress)
		}
		if c.API.WebConfigFile != "" {
			absolute("api.web_config_file", c.API.WebConfigFile)
		}
		if c.API.CallbackSecretFile != "" {
			absolute("api.callback_secret_file", c.API.CallbackSecretFile)
		}
		if c.API.TokenHashFile != "" {
			absolute("api.token_hash_file", c.API.TokenHashFile)
		}
		if c.API.Workers < 1 || c.API.Workers > 64 {
			bad("api.workers", "must be 1..64, got %d", c.API.Workers)
		}
		positive("api.job_timeout", c.API.JobTimeout)
		positive("api.job_retention", c.API.JobRetention)
		if len(c.Sites.BenchCommand) == 0 {
			bad("sites.bench_command", "must not be empty")
		}
		if c.Sites.AdminCredentialsFile != "" {
			absolute("sites.admin_credentials_file", c.Sites.AdminCredentialsFile)
		}
		if c.Sites.DBHost == "" {
			bad("sites.db_host", "must not be empty")
		}
		if r := c.Sites.BackupRetention; r.KeepLast < 0 || r.KeepDays < 0 {
			bad("sites.backup_retention", "keep_last and keep_days must not be negative")
		}
		if c.Sites.DBPort < 1 || c.Sites.DBPort > 65535 {
			bad("sites.db_port", "must be a port, got %d", c.Sites.DBPort)
		}
		if o := c.Sites.Offsite; o.Endpoint != "" && (o.Bucket == "" || o.AccessKeyFile == "" || o.SecretKeyFile == "") {
			bad("sites.offsite", "endpoint needs bucket, access_key_file and secret_key_file")
		}
	}
	if !c.Host.Enabled && !c.MariaDB.Enabled && !c.Bench.Enabled && !c.API.Enabled {
		errs = append(errs, errors.New("host, mariadb, bench, api: at least one must be enabled"))
	}
	return errors.Join(errs...)
}
