package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// alerts is the rules evaluator's view: the ALERTS and ALERTS_FOR_STATE
// series it writes to its TSDB, and the scrapes it evaluates them on.
func alerts() spec {
	return spec{
		name:        "alerts",
		uid:         "hybrid-alerts",
		title:       "Hybrid / Alerts",
		description: "Alerts of the suite's rules as the evaluator records them (ALERTS): what fires now, since when, the history, the Watchdog, and whether the agents are scraped.",
		variables: []cog.Builder[dashboard.VariableModel]{
			datasourceVariable(),
		},
		sections: []section{
			{title: "Now", panels: []cog.Builder[dashboard.Panel]{
				statPanel("Critical", "Critical alerts firing now.", unitNone,
					series(`count(ALERTS{alertstate="firing", severity="critical"}) or vector(0)`, "critical")).
					Thresholds(thresholds("green", level{1, "red"})),
				statPanel("Warning", "Warning alerts firing now.", unitNone,
					series(`count(ALERTS{alertstate="firing", severity="warning"}) or vector(0)`, "warning")).
					Thresholds(thresholds("green", level{1, "orange"})),
				statPanel("Info", "Info alerts firing now, the Watchdog left out.", unitNone,
					series(`count(ALERTS{alertstate="firing", severity="info", alertname!="Watchdog"}) or vector(0)`, "info")).
					Thresholds(thresholds("green", level{1, "blue"})),
				statPanel("Pending", "Alerts whose condition holds but not yet for their for: duration.", unitNone,
					series(`count(ALERTS{alertstate="pending"}) or vector(0)`, "pending")).
					Thresholds(thresholds("green", level{1, "yellow"})),
				statPanel("Watchdog", "The dead-man's switch: it always fires while rules are evaluated. Not firing means the evaluator, or the path to it, is broken and no other alert can fire either.", unitNone,
					series(`count(ALERTS{alertname="Watchdog", alertstate="firing"}) or vector(0)`, "watchdog")).
					Mappings(mappings(valueText{"0", "not firing", "red"}, valueText{"1", "firing", "green"})).
					Thresholds(thresholds("red", level{1, "green"})).
					GraphMode(common.BigValueGraphModeNone),
				statPanel("Agents down", "Agents the last scrape could not reach.", unitNone,
					series(`count(up{job="hybrid-agent"} == 0) or vector(0)`, "down")).
					Thresholds(thresholds("green", level{1, "red"})),
				tablePanel("Firing alerts", "Each alert firing now with its labels, and how long it has been active (since it started pending).", unitDuration, "Active for",
					rows(`time() - (ALERTS_FOR_STATE and ignoring (alertstate) ALERTS{alertstate="firing"})`)),
			}},
			{title: "History", panels: []cog.Builder[dashboard.Panel]{
				stateTimeline("Firing", "When each alert fired, by name and severity.",
					series(`count by (alertname, severity) (ALERTS{alertstate="firing"})`, "{{alertname}} ({{severity}})")).
					Thresholds(thresholds("transparent", level{1, "red"})),
				bars(stacked(timeSeries("Firing alerts by severity", "Number of alerts firing, by severity.", unitShort,
					series(`count by (severity) (ALERTS{alertstate="firing"})`, "{{severity}}")))).
					Decimals(0),
				bars(stacked(timeSeries("Pending alerts", "Alerts pending (condition true, for: not yet elapsed), by name: often pending and never firing is a rule to look at.", unitShort,
					series(`count by (alertname) (ALERTS{alertstate="pending"})`, "{{alertname}}")))).
					Decimals(0),
			}},
			{title: "Scrapes", panels: []cog.Builder[dashboard.Panel]{
				stateTimeline("Scrape targets", "Whether each scrape of each target succeeded; a down agent leaves its server's rules without data.",
					series(`up`, "{{job}} {{instance}}")).
					Mappings(upDown()).
					Thresholds(thresholds("red", level{1, "green"})),
			}},
		},
	}
}
