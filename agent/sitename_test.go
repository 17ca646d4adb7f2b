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
