package agent

import (
	"context"

	"github.com/hybridsuite/hybrid/agent/sites"
	"github.com/hybridsuite/hybrid/exporters/agentjobs"
)

// siteList gives the agent-jobs collector the sites that exist, so that a
// site never backed up has a last-backup series (0) and an archived one has
// none.
type siteList struct{ ops *sites.Operations }

var _ agentjobs.SiteLister = siteList{}

func (l siteList) Sites(ctx context.Context) ([]agentjobs.SiteRef, error) {
	benches, err := l.ops.Runtime.List()
	if err != nil {
		return nil, err
	}
	all, err := l.ops.AllSites()
	if err != nil {
		return nil, err
	}
	var out []agentjobs.SiteRef
	for _, b := range benches {
		for _, s := range all[b.Name] {
			out = append(out, agentjobs.SiteRef{Bench: b.Name, Site: s})
		}
	}
	return out, nil
}
