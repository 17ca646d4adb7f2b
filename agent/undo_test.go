package agent

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// TestUndo_SiteNew_EachStepFails_NothingLeft_RetrySucceeds: site.new failing
// at each step takes back its database and user, password file, site folder,
// route and claim on the name, so the same name is created by a retry.
func TestUndo_SiteNew_EachStepFails_NothingLeft_RetrySucceeds(t *testing.T) {
	env := newSiteEnv(t)
	bench := fmt.Sprintf("un%d", time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)
	ag := startSiteAgent(t, env.cfg)
	ag.api.run("/benches", agentapi.NewBench{Name: bench, Image: env.image})
	sitesDir := filepath.Join(ag.root, "benches", bench, "sites")

	cases := []struct {
		step  string
		fail  func(t *testing.T) (repair func())
		left  string // what the undo is expected to report left behind, if anything
		after string // in the step output
	}{
		{"create database", func(t *testing.T) func() {
			// MariaDB refuses the GRANT after the database and the user
			// were created: the undo drops both.
			env.db.Exec(t, "REVOKE GRANT OPTION ON *.* FROM 'hybrid_admin'@'%'")
			env.killAdminConnections(t)
			return func() {
				env.db.Exec(t, "GRANT ALL PRIVILEGES ON *.* TO 'hybrid_admin'@'%' WITH GRANT OPTION")
				env.killAdminConnections(t)
			}
		}, "", "undo: database and user"},
		{"bench new-site", func(t *testing.T) func() {
			hook := filepath.Join(sitesDir, "fail_new_site") // the bench dies halfway, leaving folder and tables
			require.NoError(t, os.WriteFile(hook, nil, 0o644))
			return func() { require.NoError(t, os.Remove(hook)) }
		}, "", "undo: site folder"},
		{"route", func(t *testing.T) func() {
			return breakNginx(t, ag.root)
		}, "nginx route", "undo: site folder"},
		{"check it answers", func(t *testing.T) func() {
			hook := filepath.Join(sitesDir, "fail_ping")
			require.NoError(t, os.WriteFile(hook, nil, 0o644))
			return func() { require.NoError(t, os.Remove(hook)) }
		}, "", "undo: nginx route"},
	}
	for i, tc := range cases {
		t.Run(tc.step, func(t *testing.T) {
			site := fmt.Sprintf("undo%d.example.com", i)
			repair := tc.fail(t)
			job := ag.api.runFailing("/benches/"+bench+"/sites", agentapi.NewSite{Name: site})
			repair()
			require.Equal(t, tc.step, failedStep(job), "job error: %s", job.Error)
			require.Contains(t, job.Error, "undone:")
			var res struct {
				Undone []string `json:"undone"`
				Left   []string `json:"left"`
			}
			require.NoError(t, jsonUnmarshal(job.Result, &res), string(job.Result))
			if tc.left == "" {
				require.Empty(t, res.Left, "nothing is left behind: %s", job.Error)
			} else {
				require.Len(t, res.Left, 1, "%s", job.Error)
				require.Contains(t, res.Left[0], tc.left, "what is left is named, with why")
				require.Contains(t, job.Error, "left behind: "+tc.left)
			}
			var output string
			for _, s := range job.Steps {
				output += s.Output
			}
			require.Contains(t, output, tc.after)

			require.False(t, env.databaseExists(t, site), "database dropped")
			require.False(t, env.userExists(t, site), "user dropped")
			require.NoFileExists(t, filepath.Join(ag.root, "agent", "secrets", site+".db-password"))
			require.NoDirExists(t, filepath.Join(sitesDir, site))
			require.NoFileExists(t, filepath.Join(ag.root, "agent", "claims", "site-"+site))
			require.False(t, nginxRoutesSite(t, ag.root, site), "nginx does not route the site")

			// The same name again starts clean and succeeds.
			ag.api.run("/benches/"+bench+"/sites", agentapi.NewSite{Name: site})
			code, body := siteGet(t, env.nginxAddr, site, http.MethodGet, "/api/method/ping", "")
			require.Equal(t, http.StatusOK, code, body)
			require.True(t, env.databaseExists(t, site))
			require.NoFileExists(t, filepath.Join(ag.root, "agent", "claims", "site-"+site), "the claim ends with the job")
		})
	}
}

// TestUndo_BenchNew_EachStepFails_NothingLeft_RetrySucceeds: bench.new
// failing at each step (or cancelled while waiting) takes back its
// container, folders, route and claim, so a retry of the same name does not
// find "bench exists".
func TestUndo_BenchNew_EachStepFails_NothingLeft_RetrySucceeds(t *testing.T) {
	env := newSiteEnv(t)
	ag := startSiteAgent(t, env.cfg)
	benchDir := func(b string) string { return filepath.Join(ag.root, "benches", b) }

	cases := []struct {
		step  string
		image string
		fail  func(t *testing.T, bench string) (repair func())
		run   func(t *testing.T, bench string, req agentapi.NewBench) agentapi.Job
	}{
		{step: "prepare folders", fail: func(t *testing.T, bench string) func() {
			// Something not a folder where the bench's folder goes.
			require.NoError(t, os.MkdirAll(filepath.Dir(benchDir(bench)), 0o755))
			require.NoError(t, os.WriteFile(benchDir(bench), []byte("x"), 0o644))
			return func() {}
		}},
		{step: "start container", image: "hybrid-test/no-such-image:1"},
		{step: "wait until serving", fail: func(t *testing.T, bench string) func() {
			// The container serves nothing; the job is cancelled while it waits.
			require.NoError(t, os.MkdirAll(filepath.Join(benchDir(bench), "sites"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(benchDir(bench), "sites", "fail_serve"), nil, 0o644))
			return func() {}
		}, run: func(t *testing.T, bench string, req agentapi.NewBench) agentapi.Job {
			id := "cancel-" + bench
			code, body := ag.api.do(http.MethodPost, "/benches", req, id)
			require.Equal(t, http.StatusAccepted, code, string(body))
			require.Eventually(t, func() bool {
				code, body := ag.api.do(http.MethodGet, "/jobs/"+id, nil, "")
				require.Equal(t, http.StatusOK, code)
				var list []agentapi.Job
				require.NoError(t, jsonUnmarshal(body, &list))
				return len(list[0].Steps) > 3 && list[0].Steps[3].Status == agentapi.Running
			}, time.Minute, 100*time.Millisecond)
			time.Sleep(time.Second)
			code, body = ag.api.do(http.MethodPost, "/jobs/"+id+"/cancel", nil, "")
			require.Equal(t, http.StatusAccepted, code, string(body))
			job := ag.api.waitJob(id)
			require.Equal(t, agentapi.Failure, job.Status)
			require.Equal(t, "cancelled", job.Error)
			return job
		}},
		{step: "route", fail: func(t *testing.T, bench string) func() { return breakNginx(t, ag.root) }},
	}
	for i, tc := range cases {
		t.Run(tc.step, func(t *testing.T) {
			bench := fmt.Sprintf("ub%d-%d", time.Now().UnixNano()%1e8, i)
			env.removeBench(t, bench)
			repair := func() {}
			if tc.fail != nil {
				repair = tc.fail(t, bench)
			}
			req := agentapi.NewBench{Name: bench, Image: env.image}
			if tc.image != "" {
				req.Image = tc.image
			}
			var job agentapi.Job
			if tc.run != nil {
				job = tc.run(t, bench, req)
			} else {
				job = ag.api.runFailing("/benches", req)
				require.Contains(t, job.Error, "undone:")
			}
			repair()
			require.Equal(t, tc.step, failedStep(job), "job error: %s", job.Error)
			var output string
			for _, s := range job.Steps {
				output += s.Output
			}
			require.Contains(t, output, "undo: bench folder")

			require.False(t, env.containerExists(t, bench), "container removed")
			require.NoFileExists(t, benchDir(bench))
			require.NoDirExists(t, benchDir(bench))
			require.NoFileExists(t, filepath.Join(ag.root, "agent", "claims", "bench-"+bench))
			require.False(t, nginxRoutesBench(t, ag.root, bench), "nginx has no upstream for the bench")

			// The same name again starts clean and succeeds.
			ag.api.run("/benches", agentapi.NewBench{Name: bench, Image: env.image})
			require.True(t, env.containerExists(t, bench))
			require.True(t, nginxRoutesBench(t, ag.root, bench))
		})
	}
}
