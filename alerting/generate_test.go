package alerting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	amtemplate "github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/test/alertmanagertest"
)

// secretFiles writes secret files with recognisable contents and returns
// their paths by name.
func secretFiles(t *testing.T) map[string]string {
	dir := t.TempDir()
	files := map[string]string{}
	for name, content := range map[string]string{
		"cp-token":      "cp-token-s3cret",
		"smtp-password": "smtp-s3cret",
		"slack-url":     "https://hooks.slack.com/services/T0/B0/slack-s3cret",
		"pager-token":   "pager-s3cret",
	} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content+"\n"), 0o600))
		files[name] = p
	}
	return files
}

func allReceivers(files map[string]string) Config {
	return Config{
		ControlPlane: &ControlPlaneConfig{URL: "http://127.0.0.1:8080/api/incidents/alertmanager", BearerTokenFile: files["cp-token"]},
		Email: &EmailConfig{
			Smarthost: "smtp.example.com:587", From: "hybrid@example.com", To: []string{"oncall@example.com", "ops@example.com"},
			AuthUsername: "hybrid", AuthPasswordFile: files["smtp-password"],
		},
		Slack:    &SlackConfig{APIURLFile: files["slack-url"], Channel: "#ops"},
		Webhooks: []WebhookConfig{{URL: "https://pager.example.com/integration", BearerTokenFile: files["pager-token"]}, {URL: "https://chat.example.com/hook", Severities: []string{SeverityWarning, SeverityInfo}}},
		Watchdog: &WatchdogConfig{URL: "https://hc-ping.example.com/uuid"},
	}
}

func TestGenerateConfig_Variants_PassAmtoolCheckConfig(t *testing.T) {
	files := secretFiles(t)
	off := false
	for name, cfg := range map[string]Config{
		"all receivers":       allReceivers(files),
		"control plane only":  {ControlPlane: &ControlPlaneConfig{URL: "http://127.0.0.1:8080/api/incidents/alertmanager"}},
		"email without auth":  {Email: &EmailConfig{Smarthost: "localhost:25", From: "hybrid@example.com", To: []string{"ops@example.com"}, RequireTLS: &off}},
		"slack and a webhook": {Slack: &SlackConfig{APIURLFile: files["slack-url"]}, Webhooks: []WebhookConfig{{URL: "https://pager.example.com/x"}}},
		"short route settings": {
			ControlPlane: &ControlPlaneConfig{URL: "http://127.0.0.1:8080/x"},
			Route: RouteConfig{GroupBy: []string{"alertname"}, GroupWait: 500 * time.Millisecond, GroupInterval: time.Second,
				RepeatInterval: time.Hour, WatchdogRepeatInterval: 30 * time.Second, InhibitEqual: []string{"instance"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			yml, err := GenerateConfig(cfg)
			require.NoError(t, err)

			out, err := alertmanagertest.CheckConfig(t, yml)
			require.NoError(t, err, "%s\n%s", out, yml)
			require.Contains(t, out, "SUCCESS")
		})
	}
}

func TestGenerateConfig_CraftedInvalid_AmtoolCheckConfigFails(t *testing.T) {
	yml, err := GenerateConfig(Config{ControlPlane: &ControlPlaneConfig{URL: "http://127.0.0.1:8080/x"}})
	require.NoError(t, err)
	for name, broken := range map[string]string{
		"undefined receiver": strings.Replace(string(yml), "receiver: critical", "receiver: pager", 1),
		// Alertmanager 0.25 has no url_file for webhooks (0.26 has): the
		// reason GenerateConfig writes webhook URLs as they are.
		"webhook url_file": strings.Replace(string(yml), "url: http://127.0.0.1:8080/x", "url_file: /etc/hybrid/url", 1),
		"bad duration":     strings.Replace(string(yml), "group_wait: 30s", "group_wait: soon", 1),
	} {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, string(yml), broken, "the crafted change applies")
			out, err := alertmanagertest.CheckConfig(t, []byte(broken))
			require.Error(t, err, out)
			require.Contains(t, out, "FAILED")
		})
	}
}

func TestGenerateConfig_Secrets_OnlyFileReferencesWritten(t *testing.T) {
	files := secretFiles(t)

	yml, err := GenerateConfig(allReceivers(files))
	require.NoError(t, err)

	for name, path := range files {
		content, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NotContains(t, string(yml), strings.TrimSpace(string(content)), name)
		require.Contains(t, string(yml), path, name)
	}
	for _, key := range []string{"credentials_file: " + files["cp-token"], "auth_password_file: " + files["smtp-password"], "api_url_file: " + files["slack-url"]} {
		require.Contains(t, string(yml), key)
	}
}

func TestGenerateConfig_AllReceivers_RoutesBySeverity(t *testing.T) {
	yml, err := GenerateConfig(allReceivers(secretFiles(t)))
	require.NoError(t, err)
	cfg, err := amconfig.Load(string(yml))
	require.NoError(t, err)
	tree := dispatch.NewRoute(cfg.Route, nil)

	for _, tc := range []struct {
		labels   model.LabelSet
		receiver string
	}{
		{model.LabelSet{"alertname": "SiteDown", "severity": "critical"}, ReceiverCritical},
		{model.LabelSet{"alertname": "DiskFilling", "severity": "warning"}, ReceiverWarning},
		{model.LabelSet{"alertname": "BackupOld", "severity": "info"}, ReceiverInfo},
		{model.LabelSet{"alertname": "Watchdog", "severity": "none"}, ReceiverWatchdog},
		{model.LabelSet{"alertname": "Watchdog", "severity": "critical"}, ReceiverWatchdog},
		{model.LabelSet{"alertname": "NoSeverity"}, ReceiverWarning},
		{model.LabelSet{"alertname": "Odd", "severity": "page"}, ReceiverWarning},
	} {
		routes := tree.Match(tc.labels)
		require.Len(t, routes, 1, "%v", tc.labels)
		require.Equal(t, tc.receiver, routes[0].RouteOpts.Receiver, "%v", tc.labels)
	}
	watchdog := tree.Match(model.LabelSet{"alertname": "Watchdog"})[0].RouteOpts
	require.Equal(t, time.Minute, watchdog.RepeatInterval)
	root := tree.RouteOpts
	require.Equal(t, 30*time.Second, root.GroupWait)
	require.Equal(t, 5*time.Minute, root.GroupInterval)
	require.Equal(t, 4*time.Hour, root.RepeatInterval)
	require.Contains(t, root.GroupBy, model.LabelName("alertname"))
	require.Contains(t, root.GroupBy, model.LabelName("instance"))

	receivers := map[string]amconfig.Receiver{}
	for _, r := range cfg.Receivers {
		receivers[r.Name] = r
	}
	critical := receivers[ReceiverCritical]
	require.Len(t, critical.WebhookConfigs, 2, "control plane and the paging webhook")
	require.Len(t, critical.EmailConfigs, 1)
	require.Len(t, critical.SlackConfigs, 1)
	require.Equal(t, "oncall@example.com, ops@example.com", critical.EmailConfigs[0].To)
	warning := receivers[ReceiverWarning]
	require.Len(t, warning.WebhookConfigs, 2, "control plane and the chat webhook")
	require.Len(t, warning.EmailConfigs, 1)
	require.Len(t, warning.SlackConfigs, 1)
	info := receivers[ReceiverInfo]
	require.Len(t, info.WebhookConfigs, 2, "control plane and the chat webhook")
	require.Empty(t, info.EmailConfigs)
	require.Empty(t, info.SlackConfigs)
	watchdogReceiver := receivers[ReceiverWatchdog]
	require.Len(t, watchdogReceiver.WebhookConfigs, 1)
	require.Equal(t, "https://hc-ping.example.com/uuid", string(watchdogReceiver.WebhookConfigs[0].URL))
	for _, w := range critical.WebhookConfigs {
		require.True(t, w.SendResolved(), "the control plane closes incidents on resolved")
	}

	require.Len(t, cfg.InhibitRules, 1)
	inhibit := cfg.InhibitRules[0]
	require.Len(t, inhibit.SourceMatchers, 1)
	require.Equal(t, `severity="critical"`, inhibit.SourceMatchers[0].String())
	require.Len(t, inhibit.TargetMatchers, 1)
	require.Equal(t, `severity="warning"`, inhibit.TargetMatchers[0].String())
	require.Equal(t, []string{"alertname", "instance"}, inhibit.Equal)
}

func TestGenerateConfig_NoWatchdogService_WatchdogToControlPlane(t *testing.T) {
	yml, err := GenerateConfig(Config{ControlPlane: &ControlPlaneConfig{URL: "http://127.0.0.1:8080/x"}})
	require.NoError(t, err)
	cfg, err := amconfig.Load(string(yml))
	require.NoError(t, err)
	for _, r := range cfg.Receivers {
		require.Len(t, r.WebhookConfigs, 1, r.Name)
		require.Equal(t, "http://127.0.0.1:8080/x", string(r.WebhookConfigs[0].URL), r.Name)
	}
}

func TestGenerateConfig_SlackText_RendersEachAlertWithRunbook(t *testing.T) {
	tmpl, err := amtemplate.FromGlobs(nil)
	require.NoError(t, err)
	data := &amtemplate.Data{Alerts: amtemplate.Alerts{{
		Status:      "firing",
		Labels:      amtemplate.KV{"alertname": "SiteDown", "instance": "a:9470", "severity": "critical"},
		Annotations: amtemplate.KV{"summary": "site x is down", "runbook_url": "https://runbooks.example.com/SiteDown"},
	}}}

	text, err := tmpl.ExecuteTextString(slackText, data)

	require.NoError(t, err)
	require.Equal(t, "*CRITICAL* SiteDown on a:9470: site x is down\nRunbook: https://runbooks.example.com/SiteDown\n", text)
}

func TestConfigValidate_EveryProblemNamesItsField(t *testing.T) {
	err := Config{
		ControlPlane: &ControlPlaneConfig{URL: "127.0.0.1:8080", BearerTokenFile: "token"},
		Email:        &EmailConfig{Smarthost: "smtp.example.com", From: "nobody", AuthUsername: "u"},
		Slack:        &SlackConfig{},
		Webhooks:     []WebhookConfig{{URL: "https://x.example.com", Severities: []string{"page"}}},
		Watchdog:     &WatchdogConfig{},
		Route:        RouteConfig{GroupBy: []string{"bad-label"}, GroupWait: -time.Second},
	}.Validate()

	require.Error(t, err)
	for _, field := range []string{
		"control_plane.url:", "control_plane.bearer_token_file: must be an absolute path",
		"email.smarthost:", "email.from:", "email.to: required", "email.auth_password_file: required",
		"slack.api_url_file: required", "webhooks[0].severities:", "watchdog.url: required",
		"route.group_by:", "route.group_wait:",
	} {
		require.ErrorContains(t, err, field)
	}
}

func TestConfigValidate_NoReceiver_Refused(t *testing.T) {
	require.ErrorContains(t, DefaultConfig().Validate(), "no receiver")
	_, err := GenerateConfig(Config{})
	require.ErrorContains(t, err, "no receiver")
}

func TestWriteConfig_Mode0600_ReplacesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alertmanager.yml")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))

	require.NoError(t, WriteConfig(path, Config{ControlPlane: &ControlPlaneConfig{URL: "http://127.0.0.1:8080/x"}}))

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	_, err = amconfig.LoadFile(path)
	require.NoError(t, err)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
}
