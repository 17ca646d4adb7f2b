package sites

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/agent/names"
)

func TestBenchNew_EachStepFails_UndoesWhatWasMadeBefore_RetryStartsClean(t *testing.T) {
	broke := errors.New("it broke")
	container := "container " + benches.ContainerName(testBench)
	claim := "claim on the name " + testBench
	for _, tc := range []struct {
		step   string
		setup  func(f *fixture) string // makes the step fail once; the job's cause
		undone func(o *Operations) []string
		calls  []string // the fakes' calls, the undo's included
	}{
		{
			step:   "prepare folders",
			setup:  func(f *fixture) string { f.rt.fail["prepare"] = broke; return "it broke" },
			undone: func(o *Operations) []string { return []string{"bench folder " + o.Runtime.Dir(testBench), claim} },
			calls:  []string{"prepare b1"},
		},
		{
			step:  "start container",
			setup: func(f *fixture) string { f.rt.fail["start"] = broke; return "it broke" },
			undone: func(o *Operations) []string {
				return []string{container, "bench folder " + o.Runtime.Dir(testBench), claim}
			},
			calls: []string{"prepare b1", "start b1", "remove b1"},
		},
		{
			step: "wait until serving",
			setup: func(f *fixture) string {
				f.rt.port = closedPort(t)
				f.ops.Timeout = time.Second
				return ""
			},
			undone: func(o *Operations) []string {
				return []string{container, "bench folder " + o.Runtime.Dir(testBench), claim}
			},
			calls: []string{"prepare b1", "start b1", "remove b1"},
		},
		{
			step:  "route",
			setup: func(f *fixture) string { f.router.fail = []error{broke}; return "it broke" },
			undone: func(o *Operations) []string {
				return []string{container, "bench folder " + o.Runtime.Dir(testBench), "nginx route of bench " + testBench, claim}
			},
			// The undo's route has the bench no more.
			calls: []string{"prepare b1", "start b1", "route ", "remove b1", "route "},
		},
	} {
		t.Run(strings.ReplaceAll(tc.step, " ", "_"), func(t *testing.T) {
			f := newFixture(t)
			f.rt.port = servingPort(t)
			cause := tc.setup(f)
			f.start()
			req := agentapi.NewBench{Name: testBench, Image: "img"}

			job := f.run(agentapi.TypeBenchNew, req)
			require.Equal(t, agentapi.Failure, job.Status)
			undone := tc.undone(f.ops)
			if cause != "" {
				require.Equal(t, "step "+tc.step+": "+cause+"; undone: "+strings.Join(undone, ", "), job.Error)
			} else {
				require.Equal(t, "timed out after 1s", job.Error)
			}
			res := undoneOf(t, job)
			require.Equal(t, undone, res.Undone)
			require.Empty(t, res.Left)
			require.Equal(t, tc.calls, f.ev.all())
			require.NoDirExists(t, f.ops.Runtime.Dir(testBench))
			require.NoFileExists(t, f.ops.claimPath("bench", testBench))
			require.False(t, f.ops.BenchExists(testBench))

			f.ev.reset()
			f.rt.port = servingPort(t)
			job = f.run(agentapi.TypeBenchNew, req)
			require.Equal(t, agentapi.Success, job.Status, job.Error)
			require.Equal(t, []string{"prepare b1", "start b1", "route "}, f.ev.all())
			require.True(t, f.ops.BenchExists(testBench))
			require.NoFileExists(t, f.ops.claimPath("bench", testBench))
		})
	}
}

// A bench of the name that exists is not this job's: its undo leaves it.
func TestBenchNew_BenchExists_RefusedAndLeftAlone(t *testing.T) {
	f := newFixture(t)
	f.rt.addBench(t, testBench)
	f.start()

	job := f.run(agentapi.TypeBenchNew, agentapi.NewBench{Name: testBench, Image: "img"})
	require.Equal(t, agentapi.Failure, job.Status)
	require.Equal(t, "step claim the name: bench b1 exists; undone: claim on the name b1", job.Error)
	require.Empty(t, f.ev.all(), "no container removed, nothing routed")
	require.DirExists(t, f.ops.Runtime.Dir(testBench))
}

func TestSiteArchive_StepsInOrder_ReRunWhenGoneIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.makeSite(testBench, testSite)
	db := names.DatabaseName(testSite)
	var passwordAtRoute []bool
	f.router.onApply = func() {
		_, err := os.Stat(f.ops.passwordPath(testSite))
		passwordAtRoute = append(passwordAtRoute, err == nil)
	}
	f.start()
	req := agentapi.SiteArchiveRequest{SiteRequest: siteReq()}

	job := f.run(agentapi.TypeSiteArchive, req)
	require.Equal(t, agentapi.Success, job.Status, job.Error)
	var steps []string
	for _, s := range job.Steps {
		steps = append(steps, s.Name)
	}
	require.Equal(t, []string{"bench drop-site", "drop database", "route", "remove the database password"}, steps)
	require.Equal(t, []string{
		"exec drop-site " + testSite + " --no-backup --force --archived-sites-path " + containerSites + "/archived_sites",
		"drop database " + db,
		"route ",
	}, f.ev.all())
	require.Equal(t, []bool{true}, passwordAtRoute, "the password file goes after the route")
	require.False(t, f.db.has(db))
	require.NoFileExists(t, f.ops.passwordPath(testSite))
	require.NoFileExists(t, f.ops.recordPath(testSite))
	require.False(t, f.ops.SiteExists(testBench, testSite))

	f.ev.reset()
	job = f.run(agentapi.TypeSiteArchive, req)
	require.Equal(t, agentapi.Success, job.Status, job.Error)
	require.Contains(t, job.Steps[0].Output, "site is gone already")
	require.Equal(t, []string{"drop database " + db, "route "}, f.ev.all(), "no drop-site of a site that is gone")
}

// The password file goes only once the database is dropped: a failed drop
// keeps it, and a re-run finishes the archive.
func TestSiteArchive_DropDatabaseFails_StopsBeforeForgettingTheSite(t *testing.T) {
	f := newFixture(t)
	f.makeSite(testBench, testSite)
	f.db.fail["drop"] = errors.New("lost connection")
	f.start()

	job := f.run(agentapi.TypeSiteArchive, agentapi.SiteArchiveRequest{SiteRequest: siteReq()})
	require.Equal(t, agentapi.Failure, job.Status)
	require.Equal(t, "step drop database: lost connection", job.Error)
	require.FileExists(t, f.ops.passwordPath(testSite), "kept while its database may still be there")
	require.True(t, f.db.has(names.DatabaseName(testSite)))

	job = f.run(agentapi.TypeSiteArchive, agentapi.SiteArchiveRequest{SiteRequest: siteReq()})
	require.Equal(t, agentapi.Success, job.Status, job.Error)
	require.False(t, f.db.has(names.DatabaseName(testSite)))
	require.NoFileExists(t, f.ops.passwordPath(testSite))
}

// restoreArgs are the database dumps the `bench restore`s were given.
func restoreArgs(f *fixture) []string {
	var out []string
	for _, e := range f.rt.execsOf("restore") {
		out = append(out, e.Args[3])
	}
	return out
}

func TestSiteMigrate_MigrateFails_RestoresPreMigrateBackupAndSaysSo(t *testing.T) {
	f := newFixture(t)
	f.makeSite(testBench, testSite)
	f.rt.fail["exec migrate"] = errors.New("patch broke")
	f.start()

	job := f.run(agentapi.TypeSiteMigrate, siteReq())
	require.Equal(t, agentapi.Failure, job.Status)
	var res backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.NotEmpty(t, res.Dir)
	require.Equal(t, "step migrate: migrate failed; the pre-migrate backup "+res.Dir+" was restored and the site is back in service: patch broke", job.Error)
	m, err := backup.Verify(t.Context(), res.Dir)
	require.NoError(t, err)
	require.Equal(t, []string{
		"exec --site " + testSite + " set-maintenance-mode on",
		"exec --site " + testSite + " backup",
		"exec --site " + testSite + " migrate",
		"exec --site " + testSite + " restore " + restoreArgs(f)[0],
		"exec --site " + testSite + " set-maintenance-mode off",
	}, f.ev.all())
	require.Equal(t, []string{containerSites + "/" + testSite + "/private/backups/" + m.ID + "/" + m.Files[0].Name}, restoreArgs(f))
	require.Equal(t, agentapi.Skipped, job.Steps[len(job.Steps)-1].Status, "maintenance off ran in the migrate step")
}

func TestSiteMigrate_RestoreFailsToo_SaysTheSiteIsNotRestored(t *testing.T) {
	f := newFixture(t)
	f.makeSite(testBench, testSite)
	f.rt.fail["exec migrate"] = errors.New("patch broke")
	f.rt.fail["exec restore"] = errors.New("dump unreadable")
	f.start()

	job := f.run(agentapi.TypeSiteMigrate, siteReq())
	require.Equal(t, agentapi.Failure, job.Status)
	var res backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.Equal(t, "step migrate: migrate failed (patch broke), and restoring the pre-migrate backup "+res.Dir+" failed too: dump unreadable", job.Error)
	require.NotContains(t, f.ev.all(), "exec --site "+testSite+" set-maintenance-mode off", "a half-restored site stays in maintenance")
}

func TestSiteRestore_BenchRestoreFails_FallsBackToPreRestoreBackup(t *testing.T) {
	f := newFixture(t)
	f.makeSite(testBench, testSite)
	f.start()
	job := f.run(agentapi.TypeSiteBackup, agentapi.SiteBackupRequest{SiteRequest: siteReq()})
	require.Equal(t, agentapi.Success, job.Status, job.Error)
	var chosen backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &chosen))

	f.ev.reset()
	f.rt.fail["exec restore"] = errors.New("dump unreadable") // the first restore only
	job = f.run(agentapi.TypeSiteRestore, agentapi.SiteRestoreRequest{SiteRequest: siteReq(),
		Restore: agentapi.Restore{Path: filepath.Base(chosen.Dir)}})
	require.Equal(t, agentapi.Failure, job.Status)
	var res struct {
		From string `json:"restored_from"`
		Pre  sealed `json:"pre_restore_backup"`
	}
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.Equal(t, chosen.Dir, res.From)
	require.NotEmpty(t, res.Pre.Dir)
	require.NotEqual(t, chosen.Dir, res.Pre.Dir)
	require.Equal(t, "step bench restore: restore failed; the pre-restore backup "+res.Pre.Dir+" was restored and the site is back in service: dump unreadable", job.Error)

	inContainer := func(dir string) string {
		m, err := backup.Verify(t.Context(), dir)
		require.NoError(t, err)
		return containerSites + "/" + testSite + "/private/backups/" + m.ID + "/" + m.Files[0].Name
	}
	require.Equal(t, []string{inContainer(chosen.Dir), inContainer(res.Pre.Dir)}, restoreArgs(f), "the chosen backup, then the pre-restore one")
	require.Equal(t, []string{
		"exec --site " + testSite + " set-maintenance-mode on",
		"exec --site " + testSite + " backup --with-files",
		"exec --site " + testSite + " restore " + inContainer(chosen.Dir),
		"exec --site " + testSite + " restore " + inContainer(res.Pre.Dir),
		"exec --site " + testSite + " set-maintenance-mode off",
	}, f.ev.all())
	require.Contains(t, job.Steps[1].Output, "checking the sites folder only", "the fake MariaDB's data directory is not known")
}

func TestSiteRestore_PreRestoreBackupFails_NothingRestoredSiteBackInService(t *testing.T) {
	f := newFixture(t)
	f.makeSite(testBench, testSite)
	f.start()
	job := f.run(agentapi.TypeSiteBackup, agentapi.SiteBackupRequest{SiteRequest: siteReq()})
	require.Equal(t, agentapi.Success, job.Status, job.Error)
	var chosen backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &chosen))

	f.ev.reset()
	f.rt.fail["exec backup"] = errors.New("disk full")
	job = f.run(agentapi.TypeSiteRestore, agentapi.SiteRestoreRequest{SiteRequest: siteReq(),
		Restore: agentapi.Restore{Path: filepath.Base(chosen.Dir)}})
	require.Equal(t, agentapi.Failure, job.Status)
	require.Equal(t, "step pre-restore bench backup: the pre-restore backup failed, so nothing was restored and the site is back in service: disk full", job.Error)
	require.Empty(t, restoreArgs(f))
	require.Equal(t, []string{
		"exec --site " + testSite + " set-maintenance-mode on",
		"exec --site " + testSite + " backup --with-files",
		"exec --site " + testSite + " set-maintenance-mode off",
	}, f.ev.all())
}
