package alerting

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/common/model"
)

// Severities, the values of the severity label the routing knows.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// WatchdogAlertName is the alert that always fires: its notifications
// stopping is what the dead-man's switch detects.
const WatchdogAlertName = "Watchdog"

// Config is what GenerateConfig turns into alertmanager.yml. Secrets are
// given as files (absolute paths) that Alertmanager reads itself, so none is
// written into alertmanager.yml. Webhook URLs are written as they are:
// Alertmanager 0.25 has no url_file (0.26 does); put a webhook's secret in
// its bearer_token_file rather than in its URL.
type Config struct {
	// ControlPlane is the control plane's incident intake; it gets every
	// alert, of every severity.
	ControlPlane *ControlPlaneConfig `yaml:"control_plane"`
	Email        *EmailConfig        `yaml:"email"`
	Slack        *SlackConfig        `yaml:"slack"`
	// Webhooks are other Alertmanager-webhook receivers (a pager's
	// integration, a chat bridge), each for the severities it lists.
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// Watchdog is the dead-man's-switch service the Watchdog alert goes to.
	// Without it the Watchdog goes to the control plane, which raises an
	// incident when it stops arriving.
	Watchdog *WatchdogConfig `yaml:"watchdog"`
	Route    RouteConfig     `yaml:"route"`
}

// ControlPlaneConfig is the control plane's Alertmanager-webhook intake.
type ControlPlaneConfig struct {
	URL string `yaml:"url"`
	// BearerTokenFile holds the token Alertmanager sends as
	// "Authorization: Bearer <token>".
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// EmailConfig sends critical and warning alerts by email.
type EmailConfig struct {
	// Smarthost is the SMTP server, host:port.
	Smarthost string   `yaml:"smarthost"`
	From      string   `yaml:"from"`
	To        []string `yaml:"to"`
	// AuthUsername and AuthPasswordFile authenticate to the smarthost (PLAIN,
	// LOGIN or CRAM-MD5, as it offers); empty: no authentication.
	AuthUsername     string `yaml:"auth_username"`
	AuthPasswordFile string `yaml:"auth_password_file"`
	// RequireTLS nil keeps Alertmanager's default, true (STARTTLS required).
	RequireTLS *bool `yaml:"require_tls"`
}

// SlackConfig sends alerts of every severity but info to Slack.
type SlackConfig struct {
	// APIURLFile holds the incoming-webhook URL, a secret.
	APIURLFile string `yaml:"api_url_file"`
	// Channel overrides the webhook's own channel, e.g. "#ops".
	Channel string `yaml:"channel"`
}

// WebhookConfig is a generic Alertmanager-webhook receiver.
type WebhookConfig struct {
	URL             string `yaml:"url"`
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Severities it gets; default [critical]: a paging integration.
	Severities []string `yaml:"severities"`
}

// WatchdogConfig is a dead-man's-switch service (healthchecks.io,
// Dead Man's Snitch...) expecting a request every few minutes.
type WatchdogConfig struct {
	URL             string `yaml:"url"`
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// RouteConfig are the routing tree's settings. Zero values take DefaultRoute's.
type RouteConfig struct {
	GroupBy        []string      `yaml:"group_by"`
	GroupWait      time.Duration `yaml:"group_wait"`
	GroupInterval  time.Duration `yaml:"group_interval"`
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// WatchdogRepeatInterval is how often the Watchdog is re-sent to its
	// receiver (its group_interval too): expect it every one to two of
	// these, and give the dead-man's switch a period of several.
	WatchdogRepeatInterval time.Duration `yaml:"watchdog_repeat_interval"`
	// InhibitEqual are the labels a critical alert and a warning must share
	// for the critical one to inhibit the warning.
	InhibitEqual []string `yaml:"inhibit_equal"`
}

// DefaultRoute is the routing used where RouteConfig leaves a field zero.
func DefaultRoute() RouteConfig {
	return RouteConfig{
		GroupBy:                []string{model.AlertNameLabel, "instance"},
		GroupWait:              30 * time.Second,
		GroupInterval:          5 * time.Minute,
		RepeatInterval:         4 * time.Hour,
		WatchdogRepeatInterval: time.Minute,
		InhibitEqual:           []string{model.AlertNameLabel, "instance"},
	}
}

// DefaultConfig has no receiver and DefaultRoute's routing.
func DefaultConfig() Config {
	return Config{Route: DefaultRoute()}
}

func defaultGroupBy() []string { return DefaultRoute().GroupBy }

func (c Config) withDefaults() Config {
	d := DefaultRoute()
	r := &c.Route
	if len(r.GroupBy) == 0 {
		r.GroupBy = d.GroupBy
	}
	if r.GroupWait == 0 {
		r.GroupWait = d.GroupWait
	}
	if r.GroupInterval == 0 {
		r.GroupInterval = d.GroupInterval
	}
	if r.RepeatInterval == 0 {
		r.RepeatInterval = d.RepeatInterval
	}
	if r.WatchdogRepeatInterval == 0 {
		r.WatchdogRepeatInterval = d.WatchdogRepeatInterval
	}
	if len(r.InhibitEqual) == 0 {
		r.InhibitEqual = d.InhibitEqual
	}
	if len(c.Webhooks) > 0 {
		c.Webhooks = slices.Clone(c.Webhooks)
		for i := range c.Webhooks {
			if len(c.Webhooks[i].Severities) == 0 {
				c.Webhooks[i].Severities = []string{SeverityCritical}
			}
		}
	}
	return c
}

// Validate reports every problem at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	httpURL := func(field, u string) {
		if u == "" {
			bad(field, "required")
		} else if err := checkHTTPURL(u); err != nil {
			bad(field, "%v", err)
		}
	}
	secretFile := func(field, p string, required bool) {
		switch {
		case p == "" && required:
			bad(field, "required")
		case p != "" && !filepath.IsAbs(p):
			// Alertmanager reads it relative to alertmanager.yml's folder:
			// an absolute path means the same wherever that is written.
			bad(field, "must be an absolute path, got %q", p)
		}
	}
	if c.ControlPlane == nil && c.Email == nil && c.Slack == nil && len(c.Webhooks) == 0 {
		errs = append(errs, errors.New("no receiver: set control_plane, email, slack or webhooks"))
	}
	if cp := c.ControlPlane; cp != nil {
		httpURL("control_plane.url", cp.URL)
		secretFile("control_plane.bearer_token_file", cp.BearerTokenFile, false)
	}
	if e := c.Email; e != nil {
		if host, port, err := net.SplitHostPort(e.Smarthost); err != nil || host == "" || port == "" {
			bad("email.smarthost", "want host:port, got %q", e.Smarthost)
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			bad("email.from", "%q: %v", e.From, err)
		}
		if len(e.To) == 0 {
			bad("email.to", "required")
		}
		for i, to := range e.To {
			if _, err := mail.ParseAddress(to); err != nil {
				bad(fmt.Sprintf("email.to[%d]", i), "%q: %v", to, err)
			}
		}
		secretFile("email.auth_password_file", e.AuthPasswordFile, e.AuthUsername != "")
		if e.AuthPasswordFile != "" && e.AuthUsername == "" {
			bad("email.auth_username", "required with auth_password_file")
		}
	}
	if s := c.Slack; s != nil {
		secretFile("slack.api_url_file", s.APIURLFile, true)
	}
	for i, w := range c.Webhooks {
		field := fmt.Sprintf("webhooks[%d]", i)
		httpURL(field+".url", w.URL)
		secretFile(field+".bearer_token_file", w.BearerTokenFile, false)
		for _, s := range w.Severities {
			if !slices.Contains([]string{SeverityCritical, SeverityWarning, SeverityInfo}, s) {
				bad(field+".severities", "%q is not critical, warning or info", s)
			}
		}
	}
	if w := c.Watchdog; w != nil {
		httpURL("watchdog.url", w.URL)
		secretFile("watchdog.bearer_token_file", w.BearerTokenFile, false)
	}
	r := c.Route
	for _, l := range r.GroupBy {
		if !model.LegacyValidation.IsValidLabelName(l) {
			bad("route.group_by", "%q is not a label name", l)
		}
	}
	for _, l := range r.InhibitEqual {
		if !model.LegacyValidation.IsValidLabelName(l) {
			bad("route.inhibit_equal", "%q is not a label name", l)
		}
	}
	for _, d := range []struct {
		field string
		value time.Duration
	}{
		{"route.group_wait", r.GroupWait},
		{"route.group_interval", r.GroupInterval},
		{"route.repeat_interval", r.RepeatInterval},
		{"route.watchdog_repeat_interval", r.WatchdogRepeatInterval},
	} {
		if d.value < 0 {
			bad(d.field, "must not be negative, got %s", d.value)
		}
	}
	return errors.Join(errs...)
}
