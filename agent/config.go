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
	if !c.Host.Enabled && !c.MariaDB.Enabled && !c.Bench.Enabled {
		errs = append(errs, errors.New("host, mariadb, bench: at least one collector group must be enabled"))
	}
	return errors.Join(errs...)
}
