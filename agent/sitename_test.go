package agent

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// TestSiteNew_SameNameOnTwoBenches_SecondRefused_FirstIntact: a site's
// database, password, offsite prefix and server_name depend on its name
// alone, so a name is unique on the server: refused by the API (409) when it
// exists on another bench, and by the job's first step when two submissions
// race past the API. The first site keeps working either way.
func TestSiteNew_SameNameOnTwoBenches_SecondRefused_FirstIntact(t *testing.T) {
	env := newSiteEnv(t)
	ag := startSiteAgent(t, env.cfg)
	stamp := time.Now().UnixNano() % 1e8
	a, b := fmt.Sprintf("sa%d", stamp), fmt.Sprintf("sb%d", stamp)
	env.removeBench(t, a)
	env.removeBench(t, b)
	ag.api.run("/benches", agentapi.NewBench{Name: a, Image: env.image})
	ag.api.run("/benches", agentapi.NewBench{Name: b, Image: env.image})

	intact := func(t *testing.T, bench, site string) {
		t.Helper()
		code, body := siteGet(t, env.nginxAddr, site, http.MethodGet, "/api/method/ping", "")
		require.Equal(t, http.StatusOK, code, body)
		require.True(t, env.databaseExists(t, site))
		require.True(t, env.userExists(t, site))
		require.FileExists(t, filepath.Join(ag.root, "agent", "secrets", site+".db-password"))
		require.FileExists(t, filepath.Join(ag.root, "benches", bench, "sites", site, "site_config.json"))
	}

	t.Run("refused by the API", func(t *testing.T) {
		site := "one.example.com"
		ag.api.run("/benches/"+a+"/sites", agentapi.NewSite{Name: site})
		code, body := siteGet(t, env.nginxAddr, site, http.MethodPut, "/api/resource/KV/k", "kept")
		require.Equal(t, http.StatusOK, code, body)

		code, data := ag.api.do(http.MethodPost, "/benches/"+b+"/sites", agentapi.NewSite{Name: site}, "")
		require.Equal(t, http.StatusConflict, code, string(data))
		require.Contains(t, string(data), "exists on bench \\\""+a+"\\\"")
		intact(t, a, site)
		code, body = siteGet(t, env.nginxAddr, site, http.MethodGet, "/api/resource/KV/k", "")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "kept")
		require.NoDirExists(t, filepath.Join(ag.root, "benches", b, "sites", site))
	})

	t.Run("two submissions racing, refused by the job", func(t *testing.T) {
		site := "race.example.com"
		ids := map[string]string{a: "race-" + a, b: "race-" + b}
		// Both benches busy first (a restart holds its bench alone), so that
		// neither site.new has claimed the name before the other is
		// submitted: both pass the API, and the job must refuse one.
		for _, bench := range []string{a, b} {
			code, data := ag.api.do(http.MethodPost, "/benches/"+bench+"/restart", nil, "")
			require.Equal(t, http.StatusAccepted, code, string(data))
		}
		for _, bench := range []string{a, b} {
			code, data := ag.api.do(http.MethodPost, "/benches/"+bench+"/sites", agentapi.NewSite{Name: site}, ids[bench])
			require.Equal(t, http.StatusAccepted, code, "both pass the API before either runs: %s", data)
		}
		jobs := map[string]agentapi.Job{a: ag.api.waitJob(ids[a]), b: ag.api.waitJob(ids[b])}
		winner, loser := a, b
		if jobs[a].Status != agentapi.Success {
			winner, loser = b, a
		}
		require.Equal(t, agentapi.Success, jobs[winner].Status, "one of them makes the site: %s", jobs[winner].Error)
		require.Equal(t, agentapi.Failure, jobs[loser].Status, "the other is refused")
		require.Equal(t, "claim the name", failedStep(jobs[loser]), jobs[loser].Error)
		require.True(t, strings.Contains(jobs[loser].Error, "site "+site+" exists on bench "+winner) ||
			strings.Contains(jobs[loser].Error, "site "+site+" is being created on bench "+winner), jobs[loser].Error)
		intact(t, winner, site)
		require.NoDirExists(t, filepath.Join(ag.root, "benches", loser, "sites", site))
		_, err := os.Stat(filepath.Join(ag.root, "agent", "claims", "site-"+site))
		require.True(t, os.IsNotExist(err), "no claim is left once the site is made")
	})
}

// plantSite makes, in a bench's sites folder, what its container can make
// there: a folder named like a site with a site_config.json, owned 1000:1000.
func plantSite(t *testing.T, root, bench, site string) {
	t.Helper()
	dir := filepath.Join(root, "benches", bench, "sites", site)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	cfg := filepath.Join(dir, "site_config.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"db_name":"x","db_password":"x"}`), 0o644))
	require.NoError(t, os.Chown(dir, 1000, 1000))
	require.NoError(t, os.Chown(cfg, 1000, 1000))
}

// TestSiteName_PlantedByABench_NeitherRoutedNorExisting: a bench writes its
// sites folder, so it can make a folder and site_config.json named after
// another bench's site, or after a name not made yet. Neither makes a site:
// nginx keeps routing the real site to its bench (a name on two benches
// made every later route fail), the squatted name is not routed to the
// bench and can still be made elsewhere, and no job runs on the planted
// site.
func TestSiteName_PlantedByABench_NeitherRoutedNorExisting(t *testing.T) {
	env := newSiteEnv(t)
	ag := startSiteAgent(t, env.cfg)
	stamp := time.Now().UnixNano() % 1e8
	hostile, victim := fmt.Sprintf("ha%d", stamp), fmt.Sprintf("vb%d", stamp)
	env.removeBench(t, hostile)
	env.removeBench(t, victim)
	ag.api.run("/benches", agentapi.NewBench{Name: hostile, Image: env.image})
	ag.api.run("/benches", agentapi.NewBench{Name: victim, Image: env.image})

	real, squatted := "real.example.com", "squat.example.com"
	ag.api.run("/benches/"+victim+"/sites", agentapi.NewSite{Name: real})
	code, body := siteGet(t, env.nginxAddr, real, http.MethodPut, "/api/resource/KV/k", "victim's")
	require.Equal(t, http.StatusOK, code, body)

	plantSite(t, ag.root, hostile, real)
	plantSite(t, ag.root, hostile, squatted)
	// A link to the real site's folder, as the bench sees its sites folder.
	require.NoError(t, os.Symlink(real, filepath.Join(ag.root, "benches", hostile, "sites", "link.example.com")))

	// Any route now: the planted names are not in it.
	ag.api.run("/benches/"+victim+"/sites", agentapi.NewSite{Name: "other.example.com"})
	for _, name := range []string{squatted, "link.example.com"} {
		require.False(t, nginxRoutesSite(t, ag.root, name), "%s is routed", name)
	}
	require.Equal(t, 1, strings.Count(nginxConfig(t, ag.root), " "+real), "the real site is routed once")
	code, body = siteGet(t, env.nginxAddr, real, http.MethodGet, "/api/resource/KV/k", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "victim's", "the real site is served by its own bench")

	// No job on the planted sites.
	for _, name := range []string{real, squatted, "link.example.com"} {
		code, data := ag.api.do(http.MethodPost, "/benches/"+hostile+"/sites/"+name+"/archive", agentapi.Archive{}, "")
		require.Equal(t, http.StatusNotFound, code, "%s: %s", name, data)
	}
	require.True(t, env.databaseExists(t, real))

	// The squatted name can be made on another bench.
	ag.api.run("/benches/"+victim+"/sites", agentapi.NewSite{Name: squatted})
	code, body = siteGet(t, env.nginxAddr, squatted, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusOK, code, body)
}

// A bench can remove its site's folder; the site's database stays. A new
// site of that name, on another bench, does not take that database over
// (handing one customer's data to another) nor drop it when it fails: it is
// refused at its first step, and the database is as it was.
func TestSiteNew_DatabaseOfASiteWhoseFolderIsGone_NotTakenOver(t *testing.T) {
	env := newSiteEnv(t)
	ag := startSiteAgent(t, env.cfg)
	stamp := time.Now().UnixNano() % 1e8
	a, b := fmt.Sprintf("la%d", stamp), fmt.Sprintf("lb%d", stamp)
	env.removeBench(t, a)
	env.removeBench(t, b)
	ag.api.run("/benches", agentapi.NewBench{Name: a, Image: env.image})
	ag.api.run("/benches", agentapi.NewBench{Name: b, Image: env.image})

	site := "lost.example.com"
	ag.api.run("/benches/"+a+"/sites", agentapi.NewSite{Name: site})
	code, body := siteGet(t, env.nginxAddr, site, http.MethodPut, "/api/resource/KV/k", "first customer's")
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, os.RemoveAll(filepath.Join(ag.root, "benches", a, "sites", site)))

	job := ag.api.runFailing("/benches/"+b+"/sites", agentapi.NewSite{Name: site})
	require.Equal(t, "claim the name", failedStep(job), job.Error)
	require.Contains(t, job.Error, "exists with no site "+site+" on this server")
	require.True(t, env.databaseExists(t, site), "the database is kept")
	require.True(t, env.userExists(t, site))
	require.NoDirExists(t, filepath.Join(ag.root, "benches", b, "sites", site))
}
