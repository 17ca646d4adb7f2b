package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// sites is the sites as their visitors see them: the control core's HTTP
// probes (blackbox_exporter's names, job="site-probe") and the requests nginx
// served (counted by the agents).
func sites() spec {
	return spec{
		name:        "sites",
		uid:         "hybrid-sites",
		title:       "Hybrid / Sites",
		description: "Each site from outside: whether the HTTP probe succeeds, the status code and time it gets, and the requests the site serves.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVariable(),
			queryVariable("site", "Site", `label_values(probe_success, site)`),
		},
		sections: []section{
			{title: "Availability", panels: []cog.Builder[dashboard.Panel]{
				statPanel("Sites up", "Sites whose last probe succeeded.", unitNone,
					series(`sum(probe_success{site=~"$site"})`, "up")).
					Thresholds(thresholds("blue")),
				statPanel("Sites down", "Sites whose last probe failed (no answer, or an unexpected status code); as in the SiteDown alert, a suspended site (402) or a rate-limited probe (429) is not down.", unitNone,
					series(`count(probe_success{site=~"$site"} == 0 unless on (job, instance, site) (probe_http_status_code{site=~"$site"} == 402 or probe_http_status_code{site=~"$site"} == 429)) or vector(0)`, "down")).
					Thresholds(thresholds("green", level{1, "red"})),
				statPanel("Availability", "Share of successful probes over the dashboard's time range, all selected sites together.", unitPercent,
					instant(`avg(avg_over_time(probe_success{site=~"$site"}[$__range]))`, "availability")).
					Thresholds(thresholds("red", level{0.99, "orange"}, level{0.999, "green"})).
					Decimals(2).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("Slowest probe", "Longest time a probe of a selected site took, at the last probe.", unitSeconds,
					series(`max(probe_duration_seconds{site=~"$site"})`, "slowest")).
					Thresholds(thresholds("green", level{1, "orange"}, level{3, "red"})),
				statPanel("Requests", "Requests per second served by the selected sites.", unitReqPS,
					series(`sum(rate(hybrid_site_http_requests_total{site=~"$site"}[$__rate_interval]))`, "requests")).
					Thresholds(thresholds("blue")),
				statPanel("Server errors", "Share of the selected sites' requests answered with a 5xx status.", unitPercent,
					series(`(sum(rate(hybrid_site_http_requests_total{code=~"5..", site=~"$site"}[$__rate_interval])) or vector(0)) / sum(rate(hybrid_site_http_requests_total{site=~"$site"}[$__rate_interval]))`, "5xx")).
					Thresholds(thresholds("green", level{0.01, "orange"}, level{0.05, "red"})),
			}},
			{title: "Probes", panels: []cog.Builder[dashboard.Panel]{
				stateTimeline("Probe result", "Whether each site's probe succeeded.",
					series(`probe_success{site=~"$site"}`, "{{site}}")).
					Mappings(mappings(valueText{"0", "down", "red"}, valueText{"1", "up", "green"})).
					Thresholds(thresholds("red", level{1, "green"})),
				stateTimeline("HTTP status", "Status code each probe got: 402 is a suspended site and 429 a rate limit, not an outage; 0 means no answer.",
					series(`probe_http_status_code{site=~"$site"}`, "{{site}}")).
					Mappings(mappings(
						valueText{"0", "no answer", "red"},
						valueText{"402", "402 suspended", "blue"},
						valueText{"429", "429 rate limited", "purple"},
					)).
					Thresholds(thresholds("red", level{200, "green"}, level{400, "orange"}, level{500, "red"})).
					ShowValue(common.VisibilityModeAuto),
				withLimits(timeSeries("Probe duration", "Time each probe took, connection and TLS included.", unitSeconds,
					series(`probe_duration_seconds{site=~"$site"}`, "{{site}}")),
					thresholds("green", level{1, "orange"}, level{3, "red"})).
					Span(24),
			}},
			{title: "Traffic", panels: []cog.Builder[dashboard.Panel]{
				timeSeries("Requests by site", "Requests per second each site served.", unitReqPS,
					series(`sum by (site) (rate(hybrid_site_http_requests_total{site=~"$site"}[$__rate_interval]))`, "{{site}}")),
				stacked(timeSeries("Requests by status", "Requests per second by status code, the selected sites together.", unitReqPS,
					series(`sum by (code) (rate(hybrid_site_http_requests_total{site=~"$site"}[$__rate_interval]))`, "{{code}}"))),
				withLimits(timeSeries("Server error ratio", "Share of each site's requests answered with a 5xx status.", unitPercent,
					series(`(sum by (site) (rate(hybrid_site_http_requests_total{code=~"5..", site=~"$site"}[$__rate_interval])) or 0 * sum by (site) (rate(hybrid_site_http_requests_total{site=~"$site"}[$__rate_interval]))) / sum by (site) (rate(hybrid_site_http_requests_total{site=~"$site"}[$__rate_interval]))`, "{{site}}")),
					thresholds("green", level{0.01, "orange"}, level{0.05, "red"})).
					Span(24),
			}},
		},
	}
}
