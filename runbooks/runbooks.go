// Package runbooks holds the on-call pages, one per alert, and serves them:
// every alert's runbook_url is <external_url>/runbooks/<alert>, so the page
// resolves on whatever address the suite runs at, not on a fixed repository.
package runbooks

import (
	"embed"
	"net/http"
	"regexp"
)

//go:embed *.md
var pages embed.FS

// alertName is what an alert's name looks like: it is also the page's file
// name, so nothing else reaches the file system.
var alertName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,127}$`)

// Page returns the Markdown of an alert's page; false when there is none.
func Page(alert string) ([]byte, bool) {
	if !alertName.MatchString(alert) {
		return nil, false
	}
	b, err := pages.ReadFile(alert + ".md")
	return b, err == nil
}

// Handler serves GET /runbooks/{alert} (and /runbooks/ as the index) as
// Markdown text.
func Handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(w http.ResponseWriter, name string) {
		b, ok := Page(name)
		if !ok {
			http.Error(w, "no runbook for "+name, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(b)
	}
	mux.HandleFunc("GET /runbooks/{$}", func(w http.ResponseWriter, _ *http.Request) { serve(w, "README") })
	mux.HandleFunc("GET /runbooks/{alert}", func(w http.ResponseWriter, r *http.Request) { serve(w, r.PathValue("alert")) })
	return mux
}
