package sites

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/jobs"
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

// A prune killed between removing a backup's manifest and its files left a
// folder no listing shows: the step run again (the job resumed) finishes
// deleting the backup its result names as Deleting.
func TestPruneBackups_ResumedAfterKillMidDelete_FinishesTheDeletion(t *testing.T) {
	f := newFixture(t)
	f.makeSite(testBench, testSite)
	dir := f.ops.backupsDir(testBench, testSite)
	const id = "20260102_030405"
	half := filepath.Join(dir, id) // its manifest gone already
	require.NoError(t, os.MkdirAll(half, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(half, "x-database.sql.gz"), []byte("dump"), 0o640))

	raw, err := json.Marshal(agentapi.SitePruneBackupsRequest{SiteRequest: siteReq()})
	require.NoError(t, err)
	steps, err := f.ops.sitePruneBackups(raw)
	require.NoError(t, err)
	job := runJob(t, func(json.RawMessage) ([]jobs.Step, error) {
		return append([]jobs.Step{{Name: "killed mid-delete", Run: func(_ context.Context, run *jobs.Run) error {
			return run.SetResult(agentapi.PruneResult{Local: agentapi.PrunedBackups{Deleting: id}})
		}}}, steps...), nil
	})
	require.Equal(t, agentapi.Success, job.Status, job.Error)
	require.NoDirExists(t, half)
	var res agentapi.PruneResult
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.Contains(t, res.Local.Deleted, id)
	require.Empty(t, res.Local.Deleting)
}
