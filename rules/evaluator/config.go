package evaluator

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"time"

	"github.com/hybridsuite/hybrid/alerting"
	"github.com/hybridsuite/hybrid/internal/strictyaml"
)

// Config is the monitor's configuration: defaults, then a YAML file (unknown
// keys are errors), then flags.
type Config struct {
	DataDir            string        `yaml:"data_dir"`
	Retention          time.Duration `yaml:"retention"`
	ScrapeInterval     time.Duration `yaml:"scrape_interval"`
	ScrapeTimeout      time.Duration `yaml:"scrape_timeout"`
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// RuleFiles are the rule files to evaluate; empty means the rule files
	// built into the binary (rules/*.yml), written under <data_dir>/rules.
	RuleFiles   []string       `yaml:"rule_files"`
	ExternalURL string         `yaml:"external_url"`
	LogLevel    string         `yaml:"log_level"`
	Web         WebConfig      `yaml:"web"`
	Targets     []Target       `yaml:"targets"`
	Sites       []Site         `yaml:"sites"`
	Probe       ProbeConfig    `yaml:"probe"`
	Alerting    AlertingConfig `yaml:"alerting"`
}

// WebConfig says where the monitor's own /metrics and /healthz are served.
type WebConfig struct {
	ListenAddress string `yaml:"listen_address"`
	// ConfigFile is an exporter-toolkit web config; "" means
	// <data_dir>/web.yml, generated with a random password on first start.
	ConfigFile string `yaml:"config_file"`
}

// Target is one server's agent.
type Target struct {
	// Name identifies the server; it becomes the `server` label.
	Name    string `yaml:"name"`
	Address string `yaml:"address"` // host:port of the agent's /metrics
	Scheme  string `yaml:"scheme"`  // http (default) or https
	// Username and PasswordFile are the agent's basic-auth credentials.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// CAFile verifies the agent's TLS certificate when Scheme is https.
	CAFile string `yaml:"ca_file"`
}

// Site is one site to probe: GET <url>/api/method/ping.
type Site struct {
	Name string `yaml:"name"` // the site's host name; the `site` label
	URL  string `yaml:"url"`  // base URL; empty means https://<name>
}

// ProbeConfig sets how sites are probed.
type ProbeConfig struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
}

// AlertingConfig says where alerts go.
type AlertingConfig struct {
	// Alertmanagers are base URLs of Alertmanager (API v2). With none,
	// alerts go to the receiver: a log line each, and WebhookURL if set.
	Alertmanagers []string `yaml:"alertmanagers"`
	WebhookURL    string   `yaml:"webhook_url"`
	// WebhookRepeatInterval and WebhookWatchdogRepeatInterval: the plain
	// webhook gets an alert when it changes (fires, resolves, its
	// annotations change) and again every repeat interval while it fires
	// on; the Watchdog every watchdog interval, often enough to serve as a
	// dead-man's switch. Alertmanager gets every resend, as its API expects.
	WebhookRepeatInterval         time.Duration `yaml:"webhook_repeat_interval"`
	WebhookWatchdogRepeatInterval time.Duration `yaml:"webhook_watchdog_repeat_interval"`
	// AlertmanagerConfig is what `hybrid alertmanager-config` turns into an
	// alertmanager.yml: receivers and routing by severity.
	AlertmanagerConfig alerting.Config `yaml:"alertmanager_config"`
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:            "/var/lib/hybrid/monitor",
		Retention:          15 * 24 * time.Hour,
		ScrapeInterval:     15 * time.Second,
		ScrapeTimeout:      10 * time.Second,
		EvaluationInterval: 15 * time.Second,
		ExternalURL:        "http://127.0.0.1:9480",
		LogLevel:           "info",
		Web:                WebConfig{ListenAddress: "127.0.0.1:9480"},
		Probe:              ProbeConfig{Interval: 30 * time.Second, Timeout: 10 * time.Second},
		Alerting: AlertingConfig{
			WebhookRepeatInterval:         alerting.DefaultNoticeRepeatInterval,
			WebhookWatchdogRepeatInterval: alerting.DefaultNoticeWatchdogRepeatInterval,
			AlertmanagerConfig:            alerting.DefaultConfig(),
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
	return filepath.Join(c.DataDir, "web.yml")
}

var namePattern = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$`)

// Validate reports every problem at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, "must be a positive duration, got %s", d)
		}
	}
	if !filepath.IsAbs(c.DataDir) {
		bad("data_dir", "must be an absolute path, got %q", c.DataDir)
	}
	positive("retention", c.Retention)
	positive("scrape_interval", c.ScrapeInterval)
	positive("scrape_timeout", c.ScrapeTimeout)
	positive("evaluation_interval", c.EvaluationInterval)
	if c.ScrapeTimeout > c.ScrapeInterval {
		bad("scrape_timeout", "must not exceed scrape_interval (%s), got %s", c.ScrapeInterval, c.ScrapeTimeout)
	}
	positive("alerting.webhook_repeat_interval", c.Alerting.WebhookRepeatInterval)
	positive("alerting.webhook_watchdog_repeat_interval", c.Alerting.WebhookWatchdogRepeatInterval)
	positive("probe.interval", c.Probe.Interval)
	positive("probe.timeout", c.Probe.Timeout)
	if u, err := url.Parse(c.ExternalURL); err != nil || u.Scheme == "" || u.Host == "" {
		bad("external_url", "must be an absolute URL, got %q", c.ExternalURL)
	}
	if _, _, err := net.SplitHostPort(c.Web.ListenAddress); err != nil {
		bad("web.listen_address", "must be host:port, got %q", c.Web.ListenAddress)
	}
	for i, f := range c.RuleFiles {
		if f == "" {
			bad(fmt.Sprintf("rule_files[%d]", i), "must not be empty")
		}
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		field := fmt.Sprintf("targets[%d]", i)
		if !namePattern.MatchString(t.Name) {
			bad(field+".name", "must be a host-like name (letters, digits, dots, dashes), got %q", t.Name)
		} else if seen[t.Name] {
			bad(field+".name", "%q is used twice", t.Name)
		}
		seen[t.Name] = true
		if _, _, err := net.SplitHostPort(t.Address); err != nil {
			bad(field+".address", "must be host:port, got %q", t.Address)
		}
		if t.Scheme != "" && t.Scheme != "http" && t.Scheme != "https" {
			bad(field+".scheme", "must be http or https, got %q", t.Scheme)
		}
		if (t.Username == "") != (t.PasswordFile == "") {
			bad(field, "username and password_file go together")
		}
	}
	sites := map[string]bool{}
	for i, s := range c.Sites {
		field := fmt.Sprintf("sites[%d]", i)
		if !namePattern.MatchString(s.Name) {
			bad(field+".name", "must be the site's host name, got %q", s.Name)
		} else if sites[s.Name] {
			bad(field+".name", "%q is used twice", s.Name)
		}
		sites[s.Name] = true
		if s.URL != "" {
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(field+".url", "must be an http(s) URL, got %q", s.URL)
			}
		}
	}
	for i, am := range c.Alerting.Alertmanagers {
		if u, err := url.Parse(am); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(fmt.Sprintf("alerting.alertmanagers[%d]", i), "must be an http(s) URL, got %q", am)
		}
	}
	if w := c.Alerting.WebhookURL; w != "" {
		if u, err := url.Parse(w); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("alerting.webhook_url", "must be an http(s) URL, got %q", w)
		}
	}
	return errors.Join(errs...)
}

// siteURL is the probe's base URL of s.
func (s Site) siteURL() string {
	if s.URL != "" {
		return s.URL
	}
	return "https://" + s.Name
}
