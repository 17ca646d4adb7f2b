package sites

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/names"
)

const (
	testBench = "b1"
	testSite  = "a.example.com"
)

func siteReq() agentapi.SiteRequest { return agentapi.SiteRequest{Bench: testBench, Site: testSite} }

// requireNothingLeft checks that a failed site.new left nothing of the site:
// a retry starts clean.
func requireNothingLeft(t *testing.T, f *fixture) {
	t.Helper()
	o := f.ops
	require.NoDirExists(t, o.siteDir(testBench, testSite))
	require.NoFileExists(t, o.recordPath(testSite))
	require.NoFileExists(t, o.passwordPath(testSite))
	require.NoFileExists(t, o.claimPath("site", testSite))
	require.False(t, f.db.has(names.DatabaseName(testSite)), "database dropped")
	require.False(t, o.SiteExists(testBench, testSite))
}

func TestSiteNew_EachStepFails_UndoesWhatWasMadeBefore_RetryStartsClean(t *testing.T) {
	db := names.DatabaseName(testSite)
	broke := errors.New("it broke")
	for _, tc := range []struct {
		step string
		// setup makes the step fail once; it returns the job's cause.
		setup func(f *fixture) string
		// undone lists what the undo takes back, in order.
		undone func(o *Operations) []string
	}{
		{
			step: "claim the name",
			setup: func(f *fixture) string {
				f.db.fail["exists"] = broke
				return "it broke"
			},
			undone: func(o *Operations) []string { return []string{"claim on the name " + testSite} },
		},
		{
			step: "create database",
			setup: func(f *fixture) string {
				f.db.fail["create"] = broke
				return "it broke"
			},
			undone: func(o *Operations) []string {
				return []string{"database and user " + db, "password file " + o.passwordPath(testSite), "claim on the name " + testSite}
			},
		},
		{
			step: "bench new-site",
			setup: func(f *fixture) string {
				// The bench made half a site before it failed.
				f.rt.onExec = func(args []string, out io.Writer) error {
					if args[0] != "new-site" {
						return nil
					}
					f.rt.onExec = nil
					dir := f.ops.siteDir(testBench, testSite)
					require.NoError(t, os.MkdirAll(filepath.Join(dir, "private"), 0o755))
					require.NoError(t, os.WriteFile(f.ops.siteConfig(testBench, testSite), []byte(`{}`), 0o644))
					return broke
				}
				return "it broke"
			},
			undone: func(o *Operations) []string {
				return []string{"site folder " + o.siteDir(testBench, testSite), "site record " + o.recordPath(testSite),
					"database and user " + db, "password file " + o.passwordPath(testSite), "claim on the name " + testSite}
			},
		},
		{
			step: "route",
			setup: func(f *fixture) string {
				f.router.fail = []error{broke}
				return "it broke"
			},
			undone: func(o *Operations) []string {
				return []string{"site folder " + o.siteDir(testBench, testSite), "site record " + o.recordPath(testSite),
					"nginx route of " + testSite, "database and user " + db, "password file " + o.passwordPath(testSite),
					"claim on the name " + testSite}
			},
		},
		{
			step: "check it answers",
			setup: func(f *fixture) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusBadGateway)
				}))
				t.Cleanup(srv.Close)
				f.ops.SiteURL = srv.URL
				f.ops.Timeout = time.Second
				return ""
			},
			undone: func(o *Operations) []string {
				return []string{"site folder " + o.siteDir(testBench, testSite), "site record " + o.recordPath(testSite),
					"nginx route of " + testSite, "database and user " + db, "password file " + o.passwordPath(testSite),
					"claim on the name " + testSite}
			},
		},
	} {
		t.Run(strings.ReplaceAll(tc.step, " ", "_"), func(t *testing.T) {
			f := newFixture(t)
			f.rt.addBench(t, testBench)
			cause := tc.setup(f)
			f.start()

			job := f.run(agentapi.TypeSiteNew, siteReq())
			require.Equal(t, agentapi.Failure, job.Status)
			undone := tc.undone(f.ops)
			want := "step " + tc.step + ": "
			if cause != "" {
				require.Equal(t, want+cause+"; undone: "+strings.Join(undone, ", "), job.Error)
			} else { // the job's timeout: the queue says it; the undo ran all the same
				require.Equal(t, "timed out after 1s", job.Error)
				require.Contains(t, job.Steps[4].Output, "undo: claim on the name "+testSite+": removed")
			}
			res := undoneOf(t, job)
			require.Equal(t, undone, res.Undone)
			require.Empty(t, res.Left)
			require.False(t, res.Undoing)
			requireNothingLeft(t, f)
			if tc.step == "route" || tc.step == "check it answers" {
				require.Empty(t, f.router.last, "the undo's route no longer has the site")
			}

			f.ops.SiteURL = ""
			job = f.run(agentapi.TypeSiteNew, siteReq())
			require.Equal(t, agentapi.Success, job.Status, job.Error)
			require.True(t, f.ops.SiteExists(testBench, testSite))
			require.True(t, f.db.has(db))
			require.NoFileExists(t, f.ops.claimPath("site", testSite), "released once made")
			require.Len(t, f.router.last, 1)
		})
	}
}

func TestSiteNew_UndoFails_NamesWhatWasLeftAndWhy(t *testing.T) {
	f := newFixture(t)
	f.rt.addBench(t, testBench)
	f.router.fail = []error{errors.New("nginx -t failed"), errors.New("nginx -t failed again")}
	f.db.fail["drop"] = errors.New("lost connection")
	f.start()

	job := f.run(agentapi.TypeSiteNew, siteReq())
	require.Equal(t, agentapi.Failure, job.Status)
	o, db := f.ops, names.DatabaseName(testSite)
	require.Equal(t, "step route: nginx -t failed; undone: site folder "+o.siteDir(testBench, testSite)+
		", site record "+o.recordPath(testSite)+", password file "+o.passwordPath(testSite)+", claim on the name "+testSite+
		"; left behind: nginx route of "+testSite+" (nginx -t failed again); database and user "+db+" (lost connection)", job.Error)
	res := undoneOf(t, job)
	require.Equal(t, []string{"nginx route of " + testSite + " (nginx -t failed again)", "database and user " + db + " (lost connection)"}, res.Left)
	require.True(t, f.db.has(db), "the fake's drop failed: the database is still there")
	require.Contains(t, job.Steps[3].Output, "undo: database and user "+db+": left, lost connection")
}

// A site name taken by another job, or a database of the name with no site,
// is not this job's: its undo touches nothing of them.
func TestSiteNew_StrayDatabaseOfTheName_RefusedAndNotDropped(t *testing.T) {
	f := newFixture(t)
	f.rt.addBench(t, testBench)
	db := names.DatabaseName(testSite)
	f.db.dbs[db] = "*OTHER"
	f.start()

	job := f.run(agentapi.TypeSiteNew, siteReq())
	require.Equal(t, agentapi.Failure, job.Status)
	require.Contains(t, job.Error, "database "+db+" exists with no site "+testSite)
	require.True(t, strings.HasSuffix(job.Error, "; undone: claim on the name "+testSite), job.Error)
	require.Equal(t, "*OTHER", f.db.dbs[db], "not dropped, not changed")
	require.NotContains(t, f.ev.all(), "drop database "+db)
}

func TestSiteNew_OtherJobHoldsTheName_NothingUndone(t *testing.T) {
	f := newFixture(t)
	f.rt.addBench(t, testBench)
	_, err := f.ops.claim("site", testSite, "b2", "someone-else")
	require.NoError(t, err)
	f.start()

	job := f.run(agentapi.TypeSiteNew, siteReq())
	require.Equal(t, agentapi.Failure, job.Status)
	require.Equal(t, "step claim the name: site "+testSite+" is being created on bench b2 by job someone-else", job.Error)
	require.Empty(t, job.Result)
	held, ok := f.ops.claimHolder("site", testSite)
	require.True(t, ok)
	require.Equal(t, "someone-else", held.Job)
}

func TestSiteNew_Password_OnlyInTheBenchsEnv_RedactedFromTheJob(t *testing.T) {
	f := newFixture(t)
	f.rt.addBench(t, testBench)
	// A bench that prints what it was given, and its password.
	f.rt.onExec = func(args []string, out io.Writer) error {
		pw, err := os.ReadFile(f.ops.passwordPath(testSite))
		require.NoError(t, err)
		_, err = io.WriteString(out, "args "+strings.Join(args, " ")+"; password "+string(pw))
		return err
	}
	f.start()

	job := f.run(agentapi.TypeSiteNew, siteReq())
	require.Equal(t, agentapi.Success, job.Status, job.Error)
	pw, ok := f.ops.knownPassword(testSite)
	require.True(t, ok)
	require.Regexp(t, `^[0-9a-f]{32}$`, pw)
	hash := nativePasswordHash(pw)

	execs := f.rt.execsOf("new-site")
	require.Len(t, execs, 1)
	require.Equal(t, []string{DBPasswordEnv + "=" + pw}, execs[0].Env)
	require.Equal(t, []string{"new-site", testSite, "--db-name", names.DatabaseName(testSite),
		"--db-host", "db.internal", "--db-port", "3306"}, execs[0].Args)
	for _, e := range f.rt.execs {
		for _, a := range e.Args {
			require.NotContains(t, a, pw)
		}
	}
	require.Equal(t, []string{hash}, f.db.hashes, "the database gets the hash, never the password")

	out := job.Steps[2].Output
	require.Contains(t, out, "password [redacted]", "the bench printed it; the job records it redacted")
	for _, s := range job.Steps {
		require.NotContains(t, s.Output, pw)
		require.NotContains(t, s.Output, hash)
	}
	require.NotContains(t, string(job.Result), pw)
}

func TestSiteNew_BenchFailsPrintingThePassword_ErrorRedacted(t *testing.T) {
	f := newFixture(t)
	f.rt.addBench(t, testBench)
	var pw string
	f.rt.onExec = func(args []string, out io.Writer) error {
		b, err := os.ReadFile(f.ops.passwordPath(testSite))
		require.NoError(t, err)
		pw = strings.TrimSpace(string(b))
		return errors.New("access denied for password " + pw)
	}
	f.start()

	job := f.run(agentapi.TypeSiteNew, siteReq())
	require.Equal(t, agentapi.Failure, job.Status)
	require.NotEmpty(t, pw)
	require.NotContains(t, job.Error, pw)
	require.Contains(t, job.Error, "step bench new-site: access denied for password [redacted]; undone: ")
	for _, s := range job.Steps {
		require.NotContains(t, s.Output, pw)
	}
}
