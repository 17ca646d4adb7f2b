package agent

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
)

// The whole path, all real: a stand-in bench container behind the agent's
// nginx, and the agent's /metrics counting what nginx served.
func TestLifecycle_SiteRequests_CountedBySiteAndCode(t *testing.T) {
	env := newSiteEnv(t)
	cfg, nginxAddr := env.cfg, env.nginxAddr
	cfg.Sites.Nginx.RequestMetrics = true // newSiteEnv's NginxConfig leaves it out
	bench := fmt.Sprintf("rq%d", time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)

	ag := startSiteAgent(t, cfg)
	api := ag.api
	scrape := func() map[string]float64 {
		mfs := ag.scrape(t)
		out := map[string]float64{}
		if mf := mfs["hybrid_site_http_requests_total"]; mf != nil {
			for _, m := range mf.Metric {
				labels := map[string]string{}
				for _, l := range m.Label {
					labels[l.GetName()] = l.GetValue()
				}
				out[labels["site"]+" "+labels["code"]] = m.Counter.GetValue()
			}
		}
		return out
	}

	api.run("/benches", agentapi.NewBench{Name: bench, Image: env.image, Limits: agentapi.Limits{MemoryBytes: 256 << 20}})
	site := "req1.example.com"
	api.run("/benches/"+bench+"/sites", agentapi.NewSite{Name: site})
	before := scrape() // the jobs' own checks of the site may have been counted

	get := func(host, method, path string, want, n int) {
		for range n {
			code, body := siteGet(t, nginxAddr, host, method, path, "")
			require.Equal(t, want, code, body)
		}
	}
	get(site, http.MethodGet, "/api/method/ping", http.StatusOK, 6)
	get(site, http.MethodGet, "/no/such/page", http.StatusNotFound, 3)
	get(site, http.MethodPost, "/api/resource/KV", http.StatusMethodNotAllowed, 2)
	get("not-a-site.example.com", http.MethodGet, "/", http.StatusNotFound, 4)
	api.run("/benches/"+bench+"/sites/"+site+"/maintenance", agentapi.Maintenance{On: true})
	get(site, http.MethodGet, "/api/method/ping", http.StatusServiceUnavailable, 5)

	want := map[string]float64{
		site + " 200": before[site+" 200"] + 6,
		site + " 404": before[site+" 404"] + 3,
		site + " 405": before[site+" 405"] + 2,
		site + " 503": before[site+" 503"] + 5,
		"_other 404":  before["_other 404"] + 4,
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got := scrape()
		if got[site+" 503"] >= want[site+" 503"] {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	got := scrape()
	for k := range got {
		if _, ok := want[k]; !ok {
			want[k] = before[k] // nothing else moved
		}
	}
	require.Equal(t, want, got)
}
