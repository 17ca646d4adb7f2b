package rules

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
)

// groupSettings is what every group built from a set of rule files shares.
type groupSettings struct {
	interval       time.Duration // a group's own interval wins
	externalLabels labels.Labels // for templates ($externalLabels) only
	externalURL    string        // for templates ($externalURL) only
	order          map[string]int
	manager        *promrules.ManagerOptions
	parser         parser.Parser
}

// newGroups builds Prometheus rule groups, in the order they are evaluated:
// group_eval_order first (unlisted groups count as its first place, as in
// promtool), then file order, then order in the file. Alerting rules start
// "restored", so their ALERTS and ALERTS_FOR_STATE series are written from
// the first evaluation, as in promtool.
func newGroups(files []File, s groupSettings) ([]*promrules.Group, error) {
	var groups []*promrules.Group
	for _, f := range files {
		for _, rg := range f.Groups {
			interval := s.interval
			if rg.Interval != 0 {
				interval = time.Duration(rg.Interval)
			}
			rules := make([]promrules.Rule, 0, len(rg.Rules))
			for _, r := range rg.Rules {
				expr, err := s.parser.ParseExpr(r.Expr)
				if err != nil {
					return nil, fmt.Errorf("%s: group %q: parse %q: %w", f.Path, rg.Name, r.Expr, err)
				}
				lbls := promrules.FromMaps(rg.Labels, r.Labels)
				if r.Record != "" {
					rules = append(rules, promrules.NewRecordingRule(r.Record, expr, lbls))
					continue
				}
				rules = append(rules, promrules.NewAlertingRule(
					r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
					lbls, labels.FromMap(r.Annotations), s.externalLabels, s.externalURL,
					true, s.manager.Logger.With("alert", r.Alert),
				))
			}
			groups = append(groups, promrules.NewGroup(promrules.GroupOptions{
				Name:        rg.Name,
				File:        f.Path,
				Interval:    interval,
				Limit:       rg.Limit,
				Rules:       rules,
				Opts:        s.manager,
				QueryOffset: (*time.Duration)(rg.QueryOffset),
			}))
		}
	}
	slices.SortStableFunc(groups, func(a, b *promrules.Group) int {
		return cmp.Compare(s.order[a.Name()], s.order[b.Name()])
	})
	return groups, nil
}
