package runbooks_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/hybridsuite/hybrid/runbooks"
)

// runbookURLPrefix is where runbook_url annotations point; it maps to this
// folder.
const runbookURLPrefix = "{{ $externalURL }}/runbooks/"

const rulesDir = "../rules"

// sections every page has, in this order.
var sections = []string{"## Meaning", "## Impact", "## Diagnosis", "## Mitigation", "## Escalation"}

var severities = []string{"critical", "warning", "info"}

// ruleFile is a Prometheus rule file, decoded strictly so that a misspelled
// key (annotaions:, label:) fails here instead of silently dropping what it
// holds.
type ruleFile struct {
	Groups []struct {
		Name        string            `yaml:"name"`
		Interval    string            `yaml:"interval"`
		QueryOffset string            `yaml:"query_offset"`
		Limit       int               `yaml:"limit"`
		Labels      map[string]string `yaml:"labels"`
		Rules       []rule            `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record        string            `yaml:"record"`
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

type alertRule struct {
	file, group string
	rule
}

// alertRules returns every alerting rule of rules/*.yml, test files excluded.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(rulesDir, "*.yml"))
	require.NoError(t, err)
	var alerts []alertRule
	files := 0
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.yml") {
			continue
		}
		files++
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		var f ruleFile
		require.NoError(t, dec.Decode(&f), "decode %s", path)
		require.NotEmpty(t, f.Groups, "%s has no rule group", path)
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					alerts = append(alerts, alertRule{file: filepath.Base(path), group: g.Name, rule: r})
				}
			}
		}
	}
	require.NotZero(t, files, "no rule file in %s", rulesDir)
	require.NotEmpty(t, alerts, "no alerting rule in %s", rulesDir)
	return alerts
}

// pages returns the runbook pages of this folder by alert name, README.md
// excluded.
func pages(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("*.md")
	require.NoError(t, err)
	out := make(map[string]string)
	for _, path := range paths {
		if path == "README.md" {
			continue
		}
		out[strings.TrimSuffix(path, ".md")] = path
	}
	return out
}

func TestAlerts_HaveSeverityAndAnnotations(t *testing.T) {
	for _, a := range alertRules(t) {
		t.Run(a.Alert+"/"+a.Labels["severity"], func(t *testing.T) {
			require.Regexp(t, `^[A-Z][A-Za-z0-9]*$`, a.Alert, "%s: alert names are CamelCase", a.file)
			require.Contains(t, severities, a.Labels["severity"], "%s: severity label", a.file)
			for _, key := range []string{"summary", "description", "runbook_url"} {
				require.NotEmpty(t, strings.TrimSpace(a.Annotations[key]), "%s: annotation %s", a.file, key)
			}
		})
	}
}

func TestAlerts_RunbookURLPointsToTheirPage(t *testing.T) {
	have := pages(t)
	for _, a := range alertRules(t) {
		t.Run(a.Alert+"/"+a.Labels["severity"], func(t *testing.T) {
			url := a.Annotations["runbook_url"]
			name, ok := strings.CutPrefix(url, runbookURLPrefix)
			require.True(t, ok, "%s: runbook_url %q does not start with %s", a.file, url, runbookURLPrefix)
			require.Equal(t, a.Alert, name, "%s: runbook_url must name the alert's own page", a.file)
			require.Contains(t, have, a.Alert, "%s: page %s.md is missing", a.file, a.Alert)
		})
	}
}

func TestPages_EachBelongsToAnAlert(t *testing.T) {
	alerts := make(map[string]bool)
	for _, a := range alertRules(t) {
		alerts[a.Alert] = true
	}
	for name, path := range pages(t) {
		require.True(t, alerts[name], "%s has no alert named %s in %s (orphan page)", path, name, rulesDir)
	}
}

func TestPages_HaveTitleAndSectionsInOrder(t *testing.T) {
	for name, path := range pages(t) {
		t.Run(name, func(t *testing.T) {
			headings := headingLines(t, path)
			require.NotEmpty(t, headings, "%s has no heading", path)
			require.Equal(t, "# "+name, headings[0], "%s: the first heading is the alert's name", path)
			var found []string
			for _, h := range headings {
				if slices.Contains(sections, h) {
					found = append(found, h)
				}
			}
			require.Equal(t, sections, found, "%s: sections, each once and in this order", path)
		})
	}
}

func TestReadme_IndexesEveryPage(t *testing.T) {
	data, err := os.ReadFile("README.md")
	require.NoError(t, err)
	links := make(map[string]bool)
	for _, m := range regexp.MustCompile(`\]\(([A-Za-z0-9]+)\.md\)`).FindAllStringSubmatch(string(data), -1) {
		links[m[1]] = true
	}
	var missing []string
	for name := range pages(t) {
		if !links[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "README.md does not link these pages")
}

// headingLines returns the Markdown heading lines of a page, trimmed, those
// inside fenced code blocks (shell comments) excluded.
func headingLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	fenced := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t")
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if !fenced && strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

func TestHandler_ServesEveryAlertsPageAndRefusesOthers(t *testing.T) {
	srv := httptest.NewServer(runbooks.Handler())
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	for _, a := range alertRules(t) {
		code, body := get("/runbooks/" + a.Alert)
		require.Equal(t, http.StatusOK, code, a.Alert)
		require.True(t, strings.HasPrefix(body, "# "+a.Alert+"\n"), "%s: the alert's own page", a.Alert)
	}
	code, body := get("/runbooks/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "MariaDBDown")
	for _, bad := range []string{"/runbooks/NoSuchAlert", "/runbooks/..%2Fgo.mod", "/runbooks/runbooks_test.go", "/runbooks/README.md"} {
		code, _ := get(bad)
		require.Equal(t, http.StatusNotFound, code, bad)
	}
}
