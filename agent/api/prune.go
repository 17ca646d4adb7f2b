package api

import (
	"io"
	"net/http"
	"strings"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/names"
)

// pruneBackups handles POST /benches/{bench}/sites/{site}/backups/prune,
// whose body (a retention policy) is optional.
func (s *Server) pruneBackups(w http.ResponseWriter, r *http.Request) {
	bench, ok := s.bench(w, r)
	if !ok {
		return
	}
	site := r.PathValue("site")
	if err := names.Site(site); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	var p agentapi.PruneBackups
	if strings.TrimSpace(string(data)) != "" {
		if len(data) > maxBody {
			writeError(w, http.StatusBadRequest, "body larger than 1 MiB")
			return
		}
		if err := decodeJSON(strings.NewReader(string(data)), &p); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	// The policy's own checks, on what the request sets (the rest comes
	// from the agent's defaults, already checked).
	given := backup.Retention{KeepLast: 1}
	if p.KeepLast != nil {
		given.KeepLast = *p.KeepLast
	}
	if p.KeepDays != nil {
		given.KeepDays = *p.KeepDays
	}
	if err := given.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	s.submit(w, r, agentapi.TypeSitePruneBackups, agentapi.SitePruneBackupsRequest{
		SiteRequest: agentapi.SiteRequest{Bench: bench, Site: site}, PruneBackups: p}, s.siteExists(bench, site))
}
