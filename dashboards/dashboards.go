//lint:file-ignore SA1019 dashboard v1 (the classic JSON model) is what every Grafana version imports; v2 is new in Grafana 12 and not yet generally available.

package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Dashboard is one built dashboard.
type Dashboard struct {
	// Name is the file name without .json: host for host.json.
	Name string
	// UID is Grafana's stable identifier (hybrid-host), the one links use.
	UID string
	// Model is the dashboard as Grafana's JSON model.
	Model dashboard.Dashboard
}

// tag marks every dashboard of the suite; the dashboards link to each other
// through it.
const tag = "hybrid"

// specs lists every dashboard, in the order All returns them.
var specs = []func() spec{
	host,
	mariadb,
	benches,
	jobs,
	sites,
	alerts,
}

// All builds every dashboard of the suite.
func All() ([]Dashboard, error) {
	out := make([]Dashboard, 0, len(specs))
	for _, s := range specs {
		d, err := s().build()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Marshal renders d as indented JSON ending in a newline, the form of the
// committed files. Characters such as < > & stay as they are (encoding/json
// would write \u003c), so the PromQL in the files reads as written.
func Marshal(d Dashboard) ([]byte, error) {
	raw, err := json.MarshalIndent(d.Model, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal dashboard %s: %w", d.Name, err)
	}
	return append(unescapeHTML(raw), '\n'), nil
}

// unescapeHTML turns the \u003c, \u003e and \u0026 escapes encoding/json
// writes back into the characters, leaving every other escape (an escaped
// backslash followed by "u003c" included) as it is.
func unescapeHTML(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "003c":
				out = append(out, '<')
				i += 5
				continue
			case "003e":
				out = append(out, '>')
				i += 5
				continue
			case "0026":
				out = append(out, '&')
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// spec is what a dashboard file declares; build turns it into a Dashboard.
type spec struct {
	name        string
	uid         string
	title       string
	description string
	variables   []cog.Builder[dashboard.VariableModel]
	sections    []section
}

// section is a row and the panels under it, laid out left to right in the
// order given (24 grid columns a line).
type section struct {
	title  string
	panels []cog.Builder[dashboard.Panel]
}

func (s spec) build() (Dashboard, error) {
	b := dashboard.NewDashboardBuilder(s.title).
		Uid(s.uid).
		Description(s.description).
		Tags([]string{tag}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Timezone(common.TimeZoneBrowser).
		Time("now-6h", "now").
		Refresh("1m").
		Link(dashboard.NewDashboardLinkBuilder("Hybrid dashboards").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{tag}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		Variables(s.variables)
	for _, sec := range s.sections {
		// An expanded row's panels follow it at the top level: Grafana
		// drops panels nested in a row that is not collapsed.
		b.WithRow(dashboard.NewRowBuilder(sec.title))
		for _, p := range sec.panels {
			b.WithPanel(p)
		}
	}
	model, err := b.Build()
	if err != nil {
		return Dashboard{}, fmt.Errorf("build dashboard %s: %w", s.name, err)
	}
	// The SDK's default placement (inside the controls menu) hides the
	// links in Grafana 12; the default of older versions shows them.
	for i := range model.Links {
		model.Links[i].Placement = nil
	}
	numberPanels(&model)
	return Dashboard{Name: s.name, UID: s.uid, Model: model}, nil
}

// numberPanels gives rows and panels ids 1, 2, ... in layout order, so links
// to a panel (viewPanel=<id>) survive regeneration.
func numberPanels(d *dashboard.Dashboard) {
	var id uint32
	next := func() uint32 { id++; return id }
	for _, p := range d.Panels {
		switch {
		case p.RowPanel != nil:
			p.RowPanel.Id = next()
			for i := range p.RowPanel.Panels {
				n := next()
				p.RowPanel.Panels[i].Id = &n
			}
		case p.Panel != nil:
			n := next()
			p.Panel.Id = &n
		}
	}
}

// panels returns every panel that is not a row, nested ones included.
func panels(d dashboard.Dashboard) []dashboard.Panel {
	var out []dashboard.Panel
	for _, p := range d.Panels {
		switch {
		case p.RowPanel != nil:
			out = append(out, p.RowPanel.Panels...)
		case p.Panel != nil:
			out = append(out, *p.Panel)
		}
	}
	return out
}
