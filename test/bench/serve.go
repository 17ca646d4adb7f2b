package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

func (b *Bench) serveCmd(ctx context.Context, args []string) error {
	a, err := parseArgs("serve", args, argSpec{
		valued:       []string{"port", "bind"},
		ignoredBools: []string{"noreload", "nothreading", "with-coverage", "profile", "proxy"},
	})
	if err != nil {
		return err
	}
	if len(a.pos) != 0 {
		return usagef("serve takes no arguments")
	}
	port := a.vals["port"]
	if port == "" {
		port = "8000"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return usagef("serve: --port %q is not a port number", port)
	}
	if fail, err := hookSet(filepath.Join(b.SitesDir(), failServeFile)); err != nil || fail {
		return fmt.Errorf("serve: fails on purpose (%s present): %v", failServeFile, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(a.vals["bind"], port))
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(b.Stderr, nil))
	h := b.Handler(logger)
	defer h.Close()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(b.Stdout, "Serving the sites of %s on %s\n", b.SitesDir(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	faultCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	faultc := make(chan error, 1)
	go func() { faultc <- (&processFaults{b: b, interval: time.Second}).run(faultCtx) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case err := <-faultc:
		if err != nil {
			srv.Close()
			return err
		}
		<-ctx.Done()
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("serve: shut down: %w", err)
	}
	return nil
}

// SiteHandler serves the bench's sites, choosing the site by Host header
// (or Frappe's X-Frappe-Site-Name, which a proxy may set). Each request
// checks the site's config file, so new, changed and dropped sites and
// maintenance mode take effect at once; database pools are kept per site and
// replaced when the config changes.
type SiteHandler struct {
	b   *Bench
	log *slog.Logger

	mu    sync.Mutex
	sites map[string]*siteConn
}

type siteConn struct {
	info os.FileInfo // of site_config.json when read
	cfg  *siteConfig
	db   *sql.DB
}

// Handler returns the HTTP handler of the bench's sites; Close it to close
// its database pools.
func (b *Bench) Handler(logger *slog.Logger) *SiteHandler {
	return &SiteHandler{b: b, log: logger, sites: map[string]*siteConn{}}
}

// Close closes the database pools.
func (h *SiteHandler) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, sc := range h.sites {
		sc.db.Close()
		delete(h.sites, name)
	}
}

// siteFor returns the site's config and pool, nil when it does not exist.
func (h *SiteHandler) siteFor(site string) (*siteConn, error) {
	info, err := os.Stat(h.b.siteConfigPath(site))
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.sites[site]
	if errors.Is(err, fs.ErrNotExist) {
		if old != nil {
			old.db.Close()
			delete(h.sites, site)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// The inode too: two atomic rewrites within the clock's granularity leave
	// the same mtime (and maintenance on/off the same size).
	if old != nil && os.SameFile(old.info, info) && old.info.ModTime().Equal(info.ModTime()) && old.info.Size() == info.Size() {
		return old, nil
	}
	cfg, err := h.b.readSiteConfig(site)
	if errors.Is(err, errNoSite) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	if old != nil {
		old.db.Close()
	}
	sc := &siteConn{info: info, cfg: cfg, db: db}
	h.sites[site] = sc
	return sc, nil
}

// siteName is the request's site: the host without port, lower-cased.
func siteName(r *http.Request) string {
	host := r.Header.Get("X-Frappe-Site-Name")
	if host == "" {
		host = r.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

func (h *SiteHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	site := siteName(r)
	if err := validateSiteName(site); err != nil {
		writeError(w, http.StatusNotFound, "DoesNotExistError", fmt.Sprintf("Site %s does not exist", site))
		return
	}
	sc, err := h.siteFor(site)
	if err != nil {
		h.log.Error("load site config", "site", site, "err", err)
		writeError(w, http.StatusInternalServerError, "ValidationError", "the site's configuration cannot be read")
		return
	}
	if sc == nil {
		writeError(w, http.StatusNotFound, "DoesNotExistError", fmt.Sprintf("Site %s does not exist", site))
		return
	}
	if f := sc.cfg.Fault; f.Delay > 0 || f.Status != 0 {
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.Status != 0 {
			writeError(w, f.Status, "HybridFault", fmt.Sprintf("answers %d on purpose (set-fault)", f.Status))
			return
		}
	}
	if sc.cfg.Maintenance {
		writeError(w, http.StatusServiceUnavailable, "SessionStopped", "The site is in maintenance mode")
		return
	}
	if r.URL.Path == "/api/method/ping" {
		if fail, _ := hookSet(filepath.Join(h.b.SitesDir(), failPingFile)); fail {
			writeError(w, http.StatusInternalServerError, "ValidationError", "ping fails on purpose ("+failPingFile+" present)")
			return
		}
	}
	api := &siteAPI{db: sc.db, log: h.log.With("site", site)}
	api.route(w, r)
}

// siteAPI is one site's requests.
type siteAPI struct {
	db  *sql.DB
	log *slog.Logger
}

const kvPrefix = "/api/resource/KV"

func (s *siteAPI) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/api/method/ping":
		s.ping(w, r)
	case p == kvPrefix || p == kvPrefix+"/":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		s.listKV(w, r)
	case strings.HasPrefix(p, kvPrefix+"/"):
		key := strings.TrimPrefix(p, kvPrefix+"/")
		if strings.Contains(key, "/") || len(key) > 140 {
			writeError(w, http.StatusBadRequest, "ValidationError", "a KV name has at most 140 characters and no '/'")
			return
		}
		switch r.Method {
		case http.MethodGet:
			s.getKV(w, r, key)
		case http.MethodPut:
			s.putKV(w, r, key)
		case http.MethodDelete:
			s.deleteKV(w, r, key)
		default:
			methodNotAllowed(w, "GET, PUT, DELETE")
		}
	default:
		writeError(w, http.StatusNotFound, "DoesNotExistError", "Not found")
	}
}

// ping answers pong when the site's database answers too, as a Frappe
// request needs its database.
func (s *siteAPI) ping(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		s.dbError(w, "ping database", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "pong"})
}

type kvDoc struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (s *siteAPI) getKV(w http.ResponseWriter, r *http.Request, key string) {
	var v sql.NullString
	err := s.db.QueryRowContext(r.Context(), "SELECT `value` FROM `tabKV` WHERE `name` = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		writeError(w, http.StatusNotFound, "DoesNotExistError", fmt.Sprintf("KV %s not found", key))
		return
	}
	if err != nil {
		s.dbError(w, "read KV", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": kvDoc{key, v.String}})
}

func (s *siteAPI) putKV(w http.ResponseWriter, r *http.Request, key string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "ValidationError", "the value is larger than 1 MiB")
		return
	}
	_, err = s.db.ExecContext(r.Context(),
		"INSERT INTO `tabKV` (`name`, `value`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `value` = VALUES(`value`)", key, string(body))
	if err != nil {
		s.dbError(w, "write KV", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": kvDoc{key, string(body)}})
}

func (s *siteAPI) deleteKV(w http.ResponseWriter, r *http.Request, key string) {
	res, err := s.db.ExecContext(r.Context(), "DELETE FROM `tabKV` WHERE `name` = ?", key)
	if err != nil {
		s.dbError(w, "delete KV", err)
		return
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		writeError(w, http.StatusNotFound, "DoesNotExistError", fmt.Sprintf("KV %s not found", key))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "ok"})
}

func (s *siteAPI) listKV(w http.ResponseWriter, r *http.Request) {
	rows, err := s.db.QueryContext(r.Context(), "SELECT `name`, `value` FROM `tabKV` ORDER BY `name`")
	if err != nil {
		s.dbError(w, "list KV", err)
		return
	}
	defer rows.Close()
	docs := []kvDoc{}
	for rows.Next() {
		var d kvDoc
		var v sql.NullString
		if err := rows.Scan(&d.Name, &v); err != nil {
			s.dbError(w, "list KV", err)
			return
		}
		d.Value = v.String
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		s.dbError(w, "list KV", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": docs})
}

func (s *siteAPI) dbError(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "err", err)
	writeError(w, http.StatusInternalServerError, "OperationalError", what+": the database failed")
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "ValidationError", "method not allowed")
}

func writeError(w http.ResponseWriter, status int, excType, msg string) {
	writeJSON(w, status, map[string]any{"exc_type": excType, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
