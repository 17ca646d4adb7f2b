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
	var out []agentjobs.SiteRef
	for _, b := range benches {
		names, err := l.ops.Sites(b.Name)
		if err != nil {
			return nil, err
		}
		for _, s := range names {
			out = append(out, agentjobs.SiteRef{Bench: b.Name, Site: s})
		}
	}
	return out, nil
}
