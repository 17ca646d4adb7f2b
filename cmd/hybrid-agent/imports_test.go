package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent stays slim: it never links the TSDB, the rules engine, Alertmanager
// or the control core's packages.
func TestImports_AgentStaysSlim(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/prometheus/prometheus/",
		"github.com/prometheus/alertmanager/",
		"github.com/hybridsuite/hybrid/rules",
		"github.com/hybridsuite/hybrid/alerting",
		"github.com/hybridsuite/hybrid/controlplane",
		"github.com/hybridsuite/hybrid/dashboards",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned too little to be right: %q", deps)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) || dep == strings.TrimSuffix(f, "/") {
				t.Errorf("hybrid-agent depends on %s", dep)
			}
		}
	}
}

// Collectors depend on the messages (agent/agentapi) and small interfaces of
// their own, never on the agent's packages that use them: no import runs
// upward from exporters/ into agent/.
func TestImports_ExportersDoNotImportTheAgent(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "../../exporters/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 5 {
		t.Fatalf("go list returned too few packages: %q", lines)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "github.com/hybridsuite/hybrid/agent") && imp != "github.com/hybridsuite/hybrid/agent/agentapi" {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}
