package sites

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
)

func TestRetention_RequestOverAgentOverDefault(t *testing.T) {
	three, zero, ten := 3, 0, 10
	for name, tc := range map[string]struct {
		agent backup.Retention
		req   agentapi.PruneBackups
		want  backup.Retention
	}{
		"defaults":           {backup.Retention{}, agentapi.PruneBackups{}, backup.Retention{KeepLast: 7, KeepDays: 7}},
		"agent's":            {backup.Retention{KeepLast: 3, KeepDays: 30}, agentapi.PruneBackups{}, backup.Retention{KeepLast: 3, KeepDays: 30}},
		"request's":          {backup.Retention{KeepLast: 5}, agentapi.PruneBackups{KeepLast: &three, KeepDays: &ten}, backup.Retention{KeepLast: 3, KeepDays: 10}},
		"request's zero age": {backup.Retention{KeepDays: 30}, agentapi.PruneBackups{KeepDays: &zero}, backup.Retention{KeepLast: 7, KeepDays: 0}},
	} {
		t.Run(name, func(t *testing.T) {
			o := &Operations{Retention: tc.agent}
			assert.Equal(t, tc.want, o.retention(tc.req))
		})
	}
}

func TestPruneBackups_Steps_OffsiteOnlyWhenAskedOrConfigured(t *testing.T) {
	o := &Operations{}
	raw, _ := json.Marshal(agentapi.SitePruneBackupsRequest{SiteRequest: agentapi.SiteRequest{Bench: "b", Site: "s.example.com"}})
	steps, err := o.sitePruneBackups(raw)
	require.NoError(t, err)
	require.Len(t, steps, 1, "no offsite storage: local only")

	yes := true
	raw, _ = json.Marshal(agentapi.SitePruneBackupsRequest{SiteRequest: agentapi.SiteRequest{Bench: "b", Site: "s.example.com"},
		PruneBackups: agentapi.PruneBackups{Offsite: &yes}})
	steps, err = o.sitePruneBackups(raw)
	require.NoError(t, err)
	require.Len(t, steps, 2, "asked for offsite: the step fails saying it is not configured")

	zero := 0
	raw, _ = json.Marshal(agentapi.SitePruneBackupsRequest{PruneBackups: agentapi.PruneBackups{KeepLast: &zero}})
	_, err = o.sitePruneBackups(raw)
	require.ErrorContains(t, err, "keep_last 0")
}

// An empty backups folder listed before the bench ran is kept as such in the
// job's result, so the seal step, which reads it back, still cleans up.
func TestSealedState_EmptyBackupsBefore_SurvivesTheResult(t *testing.T) {
	b, err := json.Marshal(sealed{BackupsBefore: []string{}})
	require.NoError(t, err)
	var back sealed
	require.NoError(t, json.Unmarshal(b, &back))
	require.NotNil(t, back.BackupsBefore)
	b, err = json.Marshal(sealed{})
	require.NoError(t, err)
	back = sealed{}
	require.NoError(t, json.Unmarshal(b, &back))
	require.Nil(t, back.BackupsBefore, "not listed stays not listed")
}
