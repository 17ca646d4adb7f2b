package dashboards

import (
	"strconv"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/gauge"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Units, as Grafana names them.
const (
	unitNone     = "none"
	unitShort    = "short"
	unitBytes    = "bytes"
	unitBytesPS  = "Bps"
	unitPercent  = "percentunit" // 0..1
	unitSeconds  = "s"
	unitReqPS    = "reqps"
	unitOpsPS    = "ops"
	unitOpsPM    = "opm"
	unitPktsPS   = "pps"
	unitDuration = "dtdurations"
)

// allValue is what a variable's "All" stands for in a regex matcher.
const allValue = ".+"

func datasourceRef() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// datasourceVariable lets the person importing pick any Prometheus data
// source: the control core's, or an external Prometheus scraping the agents.
func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus")
}

// queryVariable is a multi-value variable with "All", listing the values of
// a label; query is a Grafana Prometheus variable query such as
// label_values(up{job="hybrid-agent"}, instance).
func queryVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	all := dashboard.VariableOption{
		Selected: cog.ToPtr(true),
		Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
		Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
	}
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasourceRef()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(allValue).
		Current(all)
}

// instanceVariable picks agents by their scrape target (host:port).
func instanceVariable() *dashboard.QueryVariableBuilder {
	return queryVariable("instance", "Server", `label_values(up{job="hybrid-agent"}, instance)`)
}

// queryKind says how Grafana runs a target.
type queryKind int

const (
	rangeQuery   queryKind = iota // a series over the time range
	instantQuery                  // the value at the range's end
	tableQuery                    // instant, one table row a series
)

// target is one query of a panel.
type target struct {
	expr   string
	legend string
	kind   queryKind
}

// series is a range query; legend is a Grafana legend format ({{label}}).
func series(expr, legend string) target { return target{expr: expr, legend: legend, kind: rangeQuery} }

// instant is an instant query, for values over $__range or lists.
func instant(expr, legend string) target {
	return target{expr: expr, legend: legend, kind: instantQuery}
}

// rows is an instant query whose series become table rows.
func rows(expr string) target { return target{expr: expr, kind: tableQuery} }

// targets builds the Prometheus queries of a panel, lettered A, B, ...
func targets(ts []target) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(ts))
	for i, t := range ts {
		q := prometheus.NewDataqueryBuilder().
			Datasource(datasourceRef()).
			RefId(string(rune('A' + i))).
			EditorMode(prometheus.QueryEditorModeCode).
			Expr(t.expr)
		if t.legend != "" {
			q.LegendFormat(t.legend)
		}
		switch t.kind {
		case rangeQuery:
			q.Range()
		case instantQuery:
			q.Instant()
		case tableQuery:
			q.Instant().Format(prometheus.PromQueryFormatTable)
		}
		out = append(out, q)
	}
	return out
}

// level is a threshold step: from at upwards the value shows in color.
type level struct {
	at    float64
	color string
}

// thresholds starts at base (below every level) and changes color at each level.
func thresholds(base string, levels ...level) *dashboard.ThresholdsConfigBuilder {
	steps := []dashboard.Threshold{{Color: base}} // a nil value is -Infinity
	for _, l := range levels {
		steps = append(steps, dashboard.Threshold{Value: cog.ToPtr(l.at), Color: l.color})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

// usage is the threshold of a 0..1 fill level: orange from 80 %, red from 90 %.
func usage() *dashboard.ThresholdsConfigBuilder {
	return thresholds("green", level{0.8, "orange"}, level{0.9, "red"})
}

// valueText maps one exact value to a text and a color.
type valueText struct {
	value string
	text  string
	color string
}

func mappings(vs ...valueText) []dashboard.ValueMapping {
	m := dashboard.NewValueMap()
	for i, v := range vs {
		m.Options[v.value] = dashboard.ValueMappingResult{
			Text:  cog.ToPtr(v.text),
			Color: cog.ToPtr(v.color),
			Index: cog.ToPtr(int32(i)),
		}
	}
	return []dashboard.ValueMapping{{ValueMap: m}}
}

// upDown shows a 1/0 health value as Up/Down.
func upDown() []dashboard.ValueMapping {
	return mappings(valueText{"0", "Down", "red"}, valueText{"1", "Up", "green"})
}

func thresholdColors() *dashboard.FieldColorBuilder {
	return dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdThresholds)
}

func legend() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().
		ShowLegend(true).
		DisplayMode(common.LegendDisplayModeList).
		Placement(common.LegendPlacementBottom)
}

func noLegend() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().
		ShowLegend(false).
		DisplayMode(common.LegendDisplayModeHidden).
		Placement(common.LegendPlacementBottom)
}

func tooltip() *common.VizTooltipOptionsBuilder {
	return common.NewVizTooltipOptionsBuilder().
		Mode(common.TooltipDisplayModeMulti).
		Sort(common.SortOrderDescending)
}

func lastValue() *common.ReduceDataOptionsBuilder {
	return common.NewReduceDataOptionsBuilder().Values(false).Calcs([]string{"lastNotNull"})
}

// timeSeries is a half-width graph from zero.
func timeSeries(title, description, unit string, ts ...target) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(targets(ts)).
		Unit(unit).
		Min(0).
		Span(12).
		Height(8).
		DrawStyle(common.GraphDrawStyleLine).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(legend()).
		Tooltip(tooltip())
}

// stacked makes a time series a stacked area, for parts of a whole.
func stacked(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(40)
}

// bars draws a time series as bars, for counts of rare events.
func bars(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.DrawStyle(common.GraphDrawStyleBars).FillOpacity(80)
}

// withLimits draws the thresholds of a time series as dashed lines.
func withLimits(p *timeseries.PanelBuilder, t *dashboard.ThresholdsConfigBuilder) *timeseries.PanelBuilder {
	return p.Thresholds(t).ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().
		Mode(common.GraphThresholdsStyleModeDashed))
}

// statPanel is a small single value (a sixth of a line) with its trend.
func statPanel(title, description, unit string, ts ...target) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(targets(ts)).
		Unit(unit).
		Span(4).
		Height(4).
		ColorScheme(thresholdColors()).
		ReduceOptions(lastValue()).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		JustifyMode(common.BigValueJustifyModeAuto).
		TextMode(common.BigValueTextModeAuto).
		Orientation(common.VizOrientationAuto)
}

// gaugePanel is a small 0..1 fill level.
func gaugePanel(title, description string, ts ...target) *gauge.PanelBuilder {
	return gauge.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(targets(ts)).
		Unit(unitPercent).
		Min(0).
		Max(1).
		Span(4).
		Height(4).
		Thresholds(usage()).
		ColorScheme(thresholdColors()).
		ReduceOptions(lastValue()).
		ShowThresholdMarkers(true).
		Orientation(common.VizOrientationAuto)
}

// barGauge is a half-width list of horizontal bars, one a series.
func barGauge(title, description, unit string, ts ...target) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(targets(ts)).
		Unit(unit).
		Min(0).
		Span(12).
		Height(8).
		ColorScheme(thresholdColors()).
		ReduceOptions(lastValue()).
		Orientation(common.VizOrientationHorizontal).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		ValueMode(common.BarGaugeValueModeColor).
		ShowUnfilled(true)
}

// stateTimeline is a full-width band per series, colored by value.
func stateTimeline(title, description string, ts ...target) *statetimeline.PanelBuilder {
	return statetimeline.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(targets(ts)).
		Span(24).
		Height(8).
		ColorScheme(thresholdColors()).
		ShowValue(common.VisibilityModeNever).
		MergeValues(true).
		RowHeight(0.9).
		FillOpacity(70).
		Legend(noLegend()).
		Tooltip(tooltip())
}

// tablePanel is a full-width table of instant series (rows targets), with
// Grafana's Time column hidden and the Value column renamed valueName.
func tablePanel(title, description, unit, valueName string, ts ...target) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasourceRef()).
		Targets(targets(ts)).
		Unit(unit).
		Span(24).
		Height(8).
		ColorScheme(thresholdColors()).
		ShowHeader(true).
		Filterable(true).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{}).CountRows(false)).
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "organize",
			Options: map[string]any{
				"excludeByName": map[string]bool{"Time": true, "__name__": true},
				"renameByName":  map[string]string{"Value": valueName},
			},
		})
}

// seconds writes a number of seconds into PromQL, like 93600 for 26 hours.
func seconds(s int) string { return strconv.Itoa(s) }
