package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/agent/names"
)

// Queue is what the API needs of the job queue.
type Queue interface {
	Submit(ctx context.Context, s jobs.Submission) (agentapi.Job, bool, error)
	Get(ctx context.Context, ids ...string) ([]agentapi.Job, error)
	List(ctx context.Context, status agentapi.Status, limit int) ([]agentapi.Job, error)
	ListPage(ctx context.Context, q jobs.ListQuery) ([]agentapi.Job, int64, error)
	Cancel(ctx context.Context, id string) error
}

// Inventory says which benches and sites exist on the server.
type Inventory interface {
	BenchExists(bench string) bool
	SiteExists(bench, site string) bool
	// SiteBench names the bench a site is on (or being created on): a site
	// name is unique on the server, since its database, secrets, offsite
	// prefix and nginx server_name depend on the name alone.
	SiteBench(site string) (bench string, ok bool)
	// BackupsDir is the folder of a site's local backups.
	BackupsDir(bench, site string) string
}

// maxBody bounds a request body: requests are small JSON documents.
const maxBody = 1 << 20

// Server serves the API.
type Server struct {
	queue     Queue
	inventory Inventory
	tokenHash [sha256.Size]byte
	logger    *slog.Logger
}

// New returns a server that accepts the token whose SHA-256 is tokenHash.
func New(queue Queue, inventory Inventory, tokenHash [sha256.Size]byte, logger *slog.Logger) *Server {
	return &Server{queue: queue, inventory: inventory, tokenHash: tokenHash, logger: logger}
}

// HashToken is the stored form of a token.
func HashToken(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// NewToken returns a random token for the control plane.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, agentapi.Pong{Message: "pong"})
	})
	auth := func(h http.HandlerFunc) http.Handler { return s.authenticated(h) }
	mux.Handle("GET /jobs", auth(s.listJobs))
	mux.Handle("GET /jobs/{ids}", auth(s.getJobs))
	mux.Handle("POST /jobs/{id}/cancel", auth(s.cancelJob))
	mux.Handle("POST /benches", auth(s.newBench))
	mux.Handle("POST /benches/{bench}/restart", auth(s.benchJob(agentapi.TypeBenchRestart)))
	mux.Handle("POST /benches/{bench}/archive", auth(s.benchJob(agentapi.TypeBenchArchive)))
	mux.Handle("POST /benches/{bench}/limits", auth(s.benchLimits))
	mux.Handle("POST /benches/{bench}/sites", auth(s.newSite))
	mux.Handle("POST /benches/{bench}/sites/{site}/migrate", auth(s.siteJob(agentapi.TypeSiteMigrate, nil)))
	mux.Handle("POST /benches/{bench}/sites/{site}/backup", auth(s.siteJob(agentapi.TypeSiteBackup, func() any { return &agentapi.Backup{} })))
	mux.Handle("POST /benches/{bench}/sites/{site}/restore", auth(s.siteJob(agentapi.TypeSiteRestore, func() any { return &agentapi.Restore{} })))
	mux.Handle("POST /benches/{bench}/sites/{site}/archive", auth(s.siteJob(agentapi.TypeSiteArchive, func() any { return &agentapi.Archive{} })))
	mux.Handle("POST /benches/{bench}/sites/{site}/maintenance", auth(s.siteJob(agentapi.TypeSiteMaintenance, func() any { return &agentapi.Maintenance{} })))
	mux.Handle("POST /benches/{bench}/sites/{site}/backups/prune", auth(s.pruneBackups))
	// Anything else still needs the token: an unknown route is not a way to
	// learn what exists without it.
	mux.Handle("/", auth(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	}))
	return mux
}

func (s *Server) authenticated(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		hash := HashToken(token)
		if !ok || subtle.ConstantTimeCompare(hash[:], s.tokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hybrid-agent"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next(w, r)
	})
}

// listJobs answers a page of jobs, newest first, without their steps
// output (GET /jobs/<ids> has it): ?limit= (100, at most 1000), ?status=,
// and ?before=<cursor> from the X-Next-Cursor header (and Link rel="next")
// of the page before, which is absent on the last page.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	status := agentapi.Status(query.Get("status"))
	switch status {
	case "", agentapi.Pending, agentapi.Running, agentapi.Success, agentapi.Failure:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status %q: want Pending, Running, Success or Failure", clip(string(status))))
		return
	}
	lq := jobs.ListQuery{Status: status, Limit: 100}
	if v := query.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > jobs.MaxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", clip(v), jobs.MaxListLimit))
			return
		}
		lq.Limit = n
	}
	if v := query.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("before %q: want the X-Next-Cursor of the page before", clip(v)))
			return
		}
		lq.Before = n
	}
	list, next, err := s.queue.ListPage(r.Context(), lq)
	if err != nil {
		s.internal(w, "list jobs", err)
		return
	}
	if list == nil {
		list = []agentapi.Job{} // an empty list, not null
	}
	if next > 0 {
		cursor := strconv.FormatInt(next, 10)
		nextQuery := url.Values{"before": {cursor}, "limit": {strconv.Itoa(lq.Limit)}}
		if status != "" {
			nextQuery.Set("status", string(status))
		}
		w.Header().Set("X-Next-Cursor", cursor)
		w.Header().Set("Link", fmt.Sprintf(`</jobs?%s>; rel="next"`, nextQuery.Encode()))
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getJobs(w http.ResponseWriter, r *http.Request) {
	ids := strings.Split(r.PathValue("ids"), ",")
	if len(ids) > 100 {
		writeError(w, http.StatusBadRequest, "at most 100 job ids at once")
		return
	}
	for _, id := range ids {
		if err := names.JobID(id); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	list, err := s.queue.Get(r.Context(), ids...)
	if errors.Is(err, jobs.ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		s.internal(w, "get jobs", err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := names.JobID(id); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch err := s.queue.Cancel(r.Context(), id); {
	case errors.Is(err, jobs.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, jobs.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		s.internal(w, "cancel job", err)
	default:
		writeJSON(w, http.StatusAccepted, agentapi.JobCreated{Job: id})
	}
}

func (s *Server) newBench(w http.ResponseWriter, r *http.Request) {
	var req agentapi.NewBench
	if !decode(w, r, &req) {
		return
	}
	var problems []string
	if err := names.Bench(req.Name); err != nil {
		problems = append(problems, err.Error())
	}
	if err := names.Image(req.Image); err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, checkLimits(req.Limits)...)
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	s.submit(w, r, agentapi.TypeBenchNew, req, func() (int, string) {
		if s.inventory.BenchExists(req.Name) {
			return http.StatusConflict, fmt.Sprintf("bench %q exists", req.Name)
		}
		return 0, ""
	})
}

func (s *Server) benchJob(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		bench, ok := s.bench(w, r)
		if !ok || !emptyBody(w, r) {
			return
		}
		s.submit(w, r, typ, agentapi.BenchRequest{Bench: bench}, s.benchExists(bench))
	}
}

func (s *Server) benchLimits(w http.ResponseWriter, r *http.Request) {
	bench, ok := s.bench(w, r)
	if !ok {
		return
	}
	var limits agentapi.Limits
	if !decode(w, r, &limits) {
		return
	}
	if problems := checkLimits(limits); len(problems) > 0 {
		writeError(w, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	s.submit(w, r, agentapi.TypeBenchLimits, agentapi.BenchLimitsRequest{Bench: bench, Limits: limits}, s.benchExists(bench))
}

func (s *Server) newSite(w http.ResponseWriter, r *http.Request) {
	bench, ok := s.bench(w, r)
	if !ok {
		return
	}
	var req agentapi.NewSite
	if !decode(w, r, &req) {
		return
	}
	if err := names.Site(req.Name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.submit(w, r, agentapi.TypeSiteNew, agentapi.SiteRequest{Bench: bench, Site: req.Name}, func() (int, string) {
		if code, msg := s.benchExists(bench)(); code != 0 {
			return code, msg
		}
		if on, ok := s.inventory.SiteBench(req.Name); ok {
			return http.StatusConflict, fmt.Sprintf("site %q exists on bench %q: a site name is unique on the server", req.Name, on)
		}
		return 0, ""
	})
}

// siteJob handles a job on an existing site; body, when not nil, makes the
// request body (decoded strictly) whose fields join the bench and site.
func (s *Server) siteJob(typ string, body func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		bench, ok := s.bench(w, r)
		if !ok {
			return
		}
		site := r.PathValue("site")
		if err := names.Site(site); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		exists := s.siteExists(bench, site)
		target := agentapi.SiteRequest{Bench: bench, Site: site}
		if body == nil {
			if emptyBody(w, r) {
				s.submit(w, r, typ, target, exists)
			}
			return
		}
		b := body()
		if !decode(w, r, b) {
			return
		}
		var req any
		switch b := b.(type) {
		case *agentapi.Backup:
			req = agentapi.SiteBackupRequest{SiteRequest: target, Backup: *b}
		case *agentapi.Restore:
			if (b.Path == "") == (b.Object == "") {
				writeError(w, http.StatusBadRequest, "restore: give exactly one of path and object")
				return
			}
			if err := checkBackupRef(b.Path, b.Object); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			if err := checkRestoreSource(s.inventory.BackupsDir(bench, site), site, *b); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			req = agentapi.SiteRestoreRequest{SiteRequest: target, Restore: *b}
		case *agentapi.Archive:
			req = agentapi.SiteArchiveRequest{SiteRequest: target, Archive: *b}
		case *agentapi.Maintenance:
			req = agentapi.SiteMaintenanceRequest{SiteRequest: target, Maintenance: *b}
		}
		s.submit(w, r, typ, req, exists)
	}
}

// siteExists is the precondition of a job on an existing site.
func (s *Server) siteExists(bench, site string) precondition {
	return func() (int, string) {
		if code, msg := s.benchExists(bench)(); code != 0 {
			return code, msg
		}
		if !s.inventory.SiteExists(bench, site) {
			return http.StatusNotFound, fmt.Sprintf("site %q does not exist on bench %q", site, bench)
		}
		return 0, ""
	}
}

// bench reads and checks the name of the {bench} of the path; whether it
// exists is a precondition (benchExists).
func (s *Server) bench(w http.ResponseWriter, r *http.Request) (string, bool) {
	bench := r.PathValue("bench")
	if err := names.Bench(bench); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return bench, true
}

func (s *Server) benchExists(bench string) precondition {
	return func() (int, string) {
		if !s.inventory.BenchExists(bench) {
			return http.StatusNotFound, fmt.Sprintf("bench %q does not exist", bench)
		}
		return 0, ""
	}
}

// precondition checks what must exist (or not) on the server for a new job
// to make sense; a non-zero code refuses it with msg.
type precondition func() (code int, msg string)

// submit creates the job, or answers the one the caller's job id names. The
// queue checks the preconditions only for an id it does not know: a delivery
// retried after its job ran (the bench it made now exists) gets that job,
// 200, not a 409; the same id with another type or request is a 409.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, typ string, req any, check precondition) {
	id := r.Header.Get(agentapi.JobIDHeader)
	if id == "" {
		id = "job-" + NewToken()[:24]
	} else if err := names.JobID(id); err != nil {
		writeError(w, http.StatusBadRequest, agentapi.JobIDHeader+": "+err.Error())
		return
	}
	callback := r.Header.Get(agentapi.CallbackHeader)
	if callback != "" {
		if err := checkCallback(callback); err != nil {
			writeError(w, http.StatusBadRequest, agentapi.CallbackHeader+": "+err.Error())
			return
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		s.internal(w, "encode request", err)
		return
	}
	job, created, err := s.queue.Submit(r.Context(), jobs.Submission{ID: id, Type: typ, Request: body, CallbackURL: callback,
		Check: func() error {
			if code, msg := check(); code != 0 {
				return &refused{code: code, msg: msg}
			}
			return nil
		}})
	var ref *refused
	switch {
	case errors.As(err, &ref):
		writeError(w, ref.code, ref.msg)
		return
	case errors.Is(err, jobs.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, jobs.ErrInvalid), errors.Is(err, jobs.ErrUnknownType):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.internal(w, "submit job", err)
		return
	}
	code := http.StatusAccepted
	if !created {
		code = http.StatusOK // the same job, delivered twice
	}
	writeJSON(w, code, agentapi.JobCreated{Job: job.ID})
}

// refused is a precondition's answer, carried through the queue's Submit.
type refused struct {
	code int
	msg  string
}

func (e *refused) Error() string { return e.msg }

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.logger.Error("api: "+what, "err", err)
	writeError(w, http.StatusInternalServerError, what+" failed; see the agent's log")
}

// decode reads one JSON value strictly: unknown fields, trailing data and
// bodies over 1 MiB are refused with a message naming the problem.
func decode(w http.ResponseWriter, r *http.Request, into any) bool {
	if err := decodeJSON(io.LimitReader(r.Body, maxBody+1), into); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return false
	}
	return true
}

func decodeJSON(body io.Reader, into any) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(data) > maxBody {
		return errors.New("body larger than 1 MiB")
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body: want a JSON object")
		}
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if dec.More() {
		return errors.New("malformed JSON: more than one value in the body")
	}
	return nil
}

// emptyBody refuses a body on routes that take none (a JSON {} is fine).
func emptyBody(w http.ResponseWriter, r *http.Request) bool {
	data, _ := io.ReadAll(io.LimitReader(r.Body, 64))
	if t := strings.TrimSpace(string(data)); t != "" && t != "{}" {
		writeError(w, http.StatusBadRequest, "this route takes no body")
		return false
	}
	return true
}

func checkLimits(l agentapi.Limits) []string {
	var problems []string
	if l.MemoryBytes != 0 && (l.MemoryBytes < 64<<20 || l.MemoryBytes > 1<<40) {
		problems = append(problems, fmt.Sprintf("limits.memory_bytes: %d outside 64 MiB..1 TiB", l.MemoryBytes))
	}
	if l.CPUs < 0 || l.CPUs > 512 {
		problems = append(problems, fmt.Sprintf("limits.cpus: %g outside 0..512", l.CPUs))
	}
	return problems
}

func checkBackupRef(path, object string) error {
	for _, ref := range []string{path, object} {
		if ref == "" {
			continue
		}
		if len(ref) > 512 || strings.Contains(ref, "..") || strings.ContainsAny(ref, "\x00\\ ;|&$`'\"") {
			return fmt.Errorf("restore: %q is not a backup reference", clip(ref))
		}
	}
	return nil
}

// checkRestoreSource refuses a restore from anywhere but this site's own
// backups: a local path must be a backup folder in backupsDir (by its id, or
// its absolute path), an offsite object must be under the site's prefix
// (<site>/<YYYY-MM-DD>/<id>, see backup.ObjectPrefix).
func checkRestoreSource(backupsDir, site string, req agentapi.Restore) error {
	if req.Path != "" {
		p := req.Path
		if filepath.IsAbs(p) {
			p = filepath.Clean(p)
			if filepath.Dir(p) != filepath.Clean(backupsDir) {
				return fmt.Errorf("restore: path %q is not in site %s's backups folder %s", clip(req.Path), site, backupsDir)
			}
			p = filepath.Base(p)
		}
		if err := backup.ValidateID(p); err != nil {
			return fmt.Errorf("restore: path %q is not a backup of site %s (want a backup id such as 20260101_120000 in %s): %w",
				clip(req.Path), site, backupsDir, err)
		}
		return nil
	}
	if _, _, err := backup.ParsePrefix(site, req.Object); err != nil {
		return fmt.Errorf("restore: object %q is not a backup of site %s: %w", clip(req.Object), site, err)
	}
	return nil
}

func checkCallback(raw string) error {
	if len(raw) > 2048 || !(strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://")) {
		return fmt.Errorf("%q is not an http(s) URL", clip(raw))
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, agentapi.Error{Error: msg})
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
