package sites

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/agent/names"
	"github.com/hybridsuite/hybrid/agent/nginx"
	"github.com/hybridsuite/hybrid/internal/atomicfile"
)

// Router sends each site's requests to its bench (the host nginx).
type Router interface {
	Apply(ctx context.Context, benches []nginx.Bench, sites []nginx.Site) error
}

// Operations holds what the job types work with.
type Operations struct {
	Root string
	// Runtime runs the bench containers (a *benches.Runtime).
	Runtime containers
	// Admin creates and drops databases and users (MariaDB on a
	// connection allowed to); nil fails what needs it.
	Admin databaseAdmin
	// DBHost and DBPort are where bench containers reach MariaDB.
	DBHost string
	DBPort int
	Router Router
	// SiteURL is the base URL of the host nginx, for checking that a new
	// site answers through it (e.g. http://127.0.0.1:80).
	SiteURL string
	// Offsite stores backups away from the server (a *backup.Offsite);
	// nil disables offsite: leave it unset, not a nil pointer.
	Offsite offsiteStore
	Now     func() time.Time
	// Timeout bounds each job; 0 means the queue's default.
	Timeout time.Duration
	// Retention is the agent's backup retention policy, for a
	// site.prune_backups that does not give one; zero fields take
	// backup.DefaultRetention's.
	Retention backup.Retention
	// Statfs reports free space; nil is unix.Statfs (tests stand in).
	Statfs backup.Statfs

	// routeMu makes each route's listing and its Apply one step: two jobs
	// routing at once could otherwise apply their lists in the other
	// order, the older list last, and drop a site the newer one has.
	routeMu sync.Mutex
}

// Types lists the job types, the one place they are wired.
func (o *Operations) Types() []jobs.Type {
	t := func(name string, steps func(json.RawMessage) ([]jobs.Step, error)) jobs.Type {
		return jobs.Type{Name: name, Timeout: o.Timeout, Steps: o.withSiteSecrets(steps), Targets: jobs.RequestTargets}
	}
	return []jobs.Type{
		t(agentapi.TypeBenchNew, o.benchNew),
		t(agentapi.TypeBenchRestart, o.benchRestart),
		t(agentapi.TypeBenchLimits, o.benchLimits),
		t(agentapi.TypeBenchArchive, o.benchArchive),
		t(agentapi.TypeSiteNew, o.siteNew),
		t(agentapi.TypeSiteMigrate, o.siteMigrate),
		t(agentapi.TypeSiteBackup, o.siteBackup),
		t(agentapi.TypeSiteRestore, o.siteRestore),
		t(agentapi.TypeSiteArchive, o.siteArchiveAndForget),
		t(agentapi.TypeSiteMaintenance, o.siteMaintenance),
		t(agentapi.TypeSitePruneBackups, o.sitePruneBackups),
	}
}

// BenchExists and SiteExists let the API refuse jobs on what is not there.
func (o *Operations) BenchExists(bench string) bool { return o.Runtime.Exists(bench) }

// SiteExists says whether the site has been created on the bench: the
// agent recorded it there (see recordSite) and the bench has its folder and
// site_config.json, neither a link. The bench folder alone proves nothing:
// the bench writes it.
func (o *Operations) SiteExists(bench, site string) bool {
	if names.Bench(bench) != nil || names.Site(site) != nil {
		return false
	}
	if on, ok := o.recordedBench(site); !ok || on != bench {
		return false
	}
	return o.siteFolderExists(bench, site)
}

// siteFolderExists says whether the bench has the site's folder and
// site_config.json, taking no link.
func (o *Operations) siteFolderExists(bench, site string) bool {
	dir, err := os.Lstat(o.siteDir(bench, site))
	if err != nil || !dir.IsDir() {
		return false
	}
	fi, err := os.Lstat(o.siteConfig(bench, site))
	return err == nil && fi.Mode().IsRegular()
}

// SiteBench names the bench the site is on, or is being created on: a site
// name is unique on the server (its database, secrets, offsite prefix and
// nginx server_name depend on the name alone).
func (o *Operations) SiteBench(site string) (string, bool) {
	if names.Site(site) != nil {
		return "", false
	}
	if on, ok := o.recordedBench(site); ok && o.SiteExists(on, site) {
		return on, true
	}
	if held, ok := o.claimHolder("site", site); ok {
		return held.Bench, true
	}
	return "", false
}

// BackupsDir is the folder of a site's local backups.
func (o *Operations) BackupsDir(bench, site string) string { return o.backupsDir(bench, site) }

func (o *Operations) siteDir(bench, site string) string {
	return filepath.Join(o.Runtime.SitesDir(bench), site)
}

func (o *Operations) siteConfig(bench, site string) string {
	return filepath.Join(o.siteDir(bench, site), "site_config.json")
}

func (o *Operations) backupsDir(bench, site string) string {
	return filepath.Join(o.realSitesDir(bench), site, "private", "backups")
}

// Sites lists a bench's sites. The agent's records are listed, not the
// bench's sites folder: the bench writes that folder, and could fill it
// with names for every route and scrape to go through.
func (o *Operations) Sites(bench string) ([]string, error) {
	all, err := o.AllSites()
	if err != nil {
		return nil, fmt.Errorf("list sites of %s: %w", bench, err)
	}
	return all[bench], nil
}

// AllSites lists every site of the server by bench, sorted, reading the
// agent's site records once (a scrape and a routing need them all).
func (o *Operations) AllSites() (map[string][]string, error) {
	entries, err := os.ReadDir(filepath.Dir(o.recordPath("x")))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		site, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || names.Site(site) != nil {
			continue
		}
		if bench, ok := o.recordedBench(site); ok && names.Bench(bench) == nil && o.siteFolderExists(bench, site) {
			out[bench] = append(out[bench], site) // entries come sorted
		}
	}
	return out, nil
}

// route makes the host nginx match what is on disk: every bench and its sites.
func (o *Operations) route(ctx context.Context, run *jobs.Run) error {
	return o.applyRoutes(ctx, run.Log)
}

func (o *Operations) applyRoutes(ctx context.Context, logf func(string, ...any)) error {
	o.routeMu.Lock()
	defer o.routeMu.Unlock()
	list, err := o.Runtime.List()
	if err != nil {
		return err
	}
	all, err := o.AllSites()
	if err != nil {
		return err
	}
	var bs []nginx.Bench
	var ss []nginx.Site
	for _, b := range list {
		bs = append(bs, nginx.Bench{Name: b.Name, Port: b.Port})
		for _, s := range all[b.Name] {
			ss = append(ss, nginx.Site{Name: s, Bench: b.Name})
		}
	}
	logf("routing %d sites on %d benches", len(ss), len(bs))
	return o.Router.Apply(ctx, bs, ss)
}

func decodeRequest[T any](raw json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode request: %w", err)
	}
	return v, nil
}

// --- benches ---

func (o *Operations) benchNew(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.NewBench](raw)
	if err != nil {
		return nil, err
	}
	steps := []jobs.Step{
		{Name: "claim the name", Run: func(ctx context.Context, run *jobs.Run) error {
			fresh, err := o.claim("bench", req.Name, req.Name, run.JobID())
			if err != nil {
				return err
			}
			if fresh && o.Runtime.Exists(req.Name) {
				return fmt.Errorf("bench %s exists", req.Name)
			}
			return nil
		}},
		{Name: "prepare folders", Run: func(ctx context.Context, run *jobs.Run) error {
			c, err := o.Runtime.Prepare(req.Name, req.Image, req.Limits)
			if err == nil {
				run.Log("bench %s: %s, port 127.0.0.1:%d", c.Name, o.Runtime.Dir(c.Name), c.Port)
			}
			return err
		}},
		{Name: "start container", Run: func(ctx context.Context, run *jobs.Run) error {
			c, err := o.Runtime.ReadConfig(req.Name)
			if err != nil {
				return err
			}
			return o.Runtime.Start(ctx, c)
		}},
		{Name: "wait until serving", Run: func(ctx context.Context, run *jobs.Run) error {
			c, err := o.Runtime.ReadConfig(req.Name)
			if err != nil {
				return err
			}
			return waitServing(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), time.Minute)
		}},
		{Name: "route", Run: func(ctx context.Context, run *jobs.Run) error {
			if err := o.route(ctx, run); err != nil {
				return err
			}
			o.releaseLogged(run, "bench", req.Name)
			return nil
		}},
	}
	return withUndo(steps, func(failed int, run *jobs.Run) []undoAction {
		return o.undoBenchNew(req.Name, failed, run)
	}), nil
}

// undoBenchNew takes back what the steps of bench.new up to failed made
// (container, folders, route) and its claim on the name, so a retry of the
// same name starts clean. The claim step made sure the bench did not exist.
func (o *Operations) undoBenchNew(bench string, failed int, run *jobs.Run) []undoAction {
	if held, ok := o.claimHolder("bench", bench); !ok || held.Job != run.JobID() {
		return nil // not ours: nothing to take back
	}
	var actions []undoAction
	if failed >= 2 {
		actions = append(actions, undoAction{"container " + benches.ContainerName(bench), func(ctx context.Context) error {
			return o.Runtime.Remove(ctx, bench)
		}})
	}
	if failed >= 1 {
		actions = append(actions, undoAction{"bench folder " + o.Runtime.Dir(bench), func(ctx context.Context) error {
			return os.RemoveAll(o.Runtime.Dir(bench))
		}})
	}
	if failed >= 4 {
		actions = append(actions, undoAction{"nginx route of bench " + bench, func(ctx context.Context) error {
			return o.route(ctx, run)
		}})
	}
	return append(actions, undoAction{"claim on the name " + bench, func(ctx context.Context) error {
		return o.release("bench", bench, run.JobID())
	}})
}

// releaseLogged gives back the name a job claimed, once what it made is
// complete; a failure only leaves the claim file behind, which is said.
func (o *Operations) releaseLogged(run *jobs.Run, kind, name string) {
	if err := o.release(kind, name, run.JobID()); err != nil {
		run.Log("%v (the %s is made; the claim file stays)", err, kind)
	}
}

func (o *Operations) benchRestart(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.BenchRequest](raw)
	if err != nil {
		return nil, err
	}
	return []jobs.Step{{Name: "restart container", Run: func(ctx context.Context, run *jobs.Run) error {
		return o.Runtime.Restart(ctx, req.Bench)
	}}}, nil
}

func (o *Operations) benchLimits(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.BenchLimitsRequest](raw)
	if err != nil {
		return nil, err
	}
	return []jobs.Step{{Name: "update limits", Run: func(ctx context.Context, run *jobs.Run) error {
		return o.Runtime.SetLimits(ctx, req.Bench, req.Limits)
	}}}, nil
}

func (o *Operations) benchArchive(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.BenchRequest](raw)
	if err != nil {
		return nil, err
	}
	return []jobs.Step{
		{Name: "check it has no sites", Run: func(ctx context.Context, run *jobs.Run) error {
			sites, err := o.Sites(req.Bench)
			if err != nil {
				return err
			}
			if len(sites) > 0 {
				return fmt.Errorf("bench %s still has sites (%s): archive them first", req.Bench, strings.Join(sites, ", "))
			}
			return nil
		}},
		{Name: "remove container", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.Runtime.Remove(ctx, req.Bench)
		}},
		{Name: "move to archived", Run: func(ctx context.Context, run *jobs.Run) error {
			dst, err := o.Runtime.Archive(req.Bench, o.now())
			if err == nil && dst != "" {
				run.Log("moved to %s", dst)
				return run.SetResult(map[string]string{"archived": dst})
			}
			return err
		}},
		{Name: "route", Run: o.route},
	}, nil
}

// --- sites ---

func (o *Operations) siteNew(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SiteRequest](raw)
	if err != nil {
		return nil, err
	}
	db := names.DatabaseName(req.Site)
	steps := []jobs.Step{
		{Name: "claim the name", Run: func(ctx context.Context, run *jobs.Run) error {
			fresh, err := o.claim("site", req.Site, req.Bench, run.JobID())
			if err != nil {
				return err
			}
			if !fresh {
				return nil // this job's own earlier attempt
			}
			// Checked again here, not only in the API: two submissions can
			// both pass the API before either job runs.
			if on, ok := o.SiteBench(req.Site); ok && (on != req.Bench || o.SiteExists(on, req.Site)) {
				return fmt.Errorf("site %s exists on bench %s: a site name is unique on the server", req.Site, on)
			}
			// A database of the name with no site (its bench lost the
			// site's folder) is another site's data: this job would hand
			// it to the new site, or drop it in its undo.
			if exists, err := o.databaseExists(ctx, db); err != nil {
				return err
			} else if exists {
				return fmt.Errorf("database %s exists with no site %s on this server (a site whose folder is gone?): it is not taken over: drop it first if it is not wanted", db, req.Site)
			}
			return nil
		}},
		{Name: "create database", Run: func(ctx context.Context, run *jobs.Run) error {
			password, err := o.sitePassword(req.Site)
			if err != nil {
				return err
			}
			run.Secret(password, nativePasswordHash(password))
			run.Log("database and user %s", db)
			return o.createDatabase(ctx, db, password)
		}},
		{Name: "bench new-site", Run: func(ctx context.Context, run *jobs.Run) error {
			if err := o.recordSite(req.Site, req.Bench); err != nil {
				return err
			}
			if o.SiteExists(req.Bench, req.Site) {
				run.Log("site exists already (an earlier attempt created it)")
				return nil
			}
			password, err := o.sitePassword(req.Site)
			if err != nil {
				return err
			}
			run.Secret(password, nativePasswordHash(password))
			// The password goes in the environment, never the arguments.
			return o.Runtime.ExecWith(ctx, req.Bench, run.Output(),
				benches.ExecOptions{Env: []string{DBPasswordEnv + "=" + password}},
				"new-site", req.Site, "--db-name", db,
				"--db-host", o.DBHost, "--db-port", strconv.Itoa(o.DBPort))
		}},
		{Name: "route", Run: o.route},
		{Name: "check it answers", Run: func(ctx context.Context, run *jobs.Run) error {
			if err := o.checkPing(ctx, run, req.Site); err != nil {
				return err
			}
			o.releaseLogged(run, "site", req.Site)
			return nil
		}},
	}
	return withUndo(steps, func(failed int, run *jobs.Run) []undoAction {
		return o.undoSiteNew(req.Bench, req.Site, failed, run)
	}), nil
}

// undoSiteNew takes back what the steps of site.new up to failed made (site
// folder, route, database and user, password file) and its claim on the
// name, so a retry of the same name starts clean. Nothing is touched unless
// this job holds the claim: the claim step made sure no other bench has the
// site, so what bears its name is this job's.
func (o *Operations) undoSiteNew(bench, site string, failed int, run *jobs.Run) []undoAction {
	if held, ok := o.claimHolder("site", site); !ok || held.Job != run.JobID() {
		return nil
	}
	var actions []undoAction
	if failed >= 2 {
		actions = append(actions, undoAction{"site folder " + o.siteDir(bench, site), func(ctx context.Context) error {
			// A file of that name is the bench's, not a folder this job made.
			if fi, err := os.Lstat(o.siteDir(bench, site)); err == nil && fi.Mode().IsRegular() {
				return errors.New("a file, not a site folder: not this job's")
			}
			// RemoveAll does not follow symbolic links the bench may have put there.
			return os.RemoveAll(o.siteDir(bench, site))
		}}, undoAction{"site record " + o.recordPath(site), func(ctx context.Context) error {
			return o.forgetSite(site)
		}})
	}
	if failed >= 3 {
		actions = append(actions, undoAction{"nginx route of " + site, func(ctx context.Context) error {
			return o.route(ctx, run)
		}})
	}
	if failed >= 1 {
		db := names.DatabaseName(site)
		actions = append(actions,
			undoAction{"database and user " + db, func(ctx context.Context) error { return o.dropDatabase(ctx, db) }},
			undoAction{"password file " + o.passwordPath(site), func(ctx context.Context) error { return o.forgetPassword(site) }},
		)
	}
	return append(actions, undoAction{"claim on the name " + site, func(ctx context.Context) error {
		return o.release("site", site, run.JobID())
	}})
}

// sitePassword is the site's database password, made once and kept (0600)
// with the agent's files, so a re-run step uses the same one. It is never
// part of a job's result, and removed when the site is archived.
func (o *Operations) sitePassword(site string) (string, error) {
	path := o.passwordPath(site)
	dir := filepath.Dir(path)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("site password: %w", err)
	}
	b := make([]byte, 16)
	rand.Read(b)
	password := hex.EncodeToString(b)
	if err := atomicfile.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("site password: %w", err)
	}
	return password, nil
}

var hexPassword = regexp.MustCompile(`^[0-9a-f]{32}$`)

// createDatabase makes the site's database and user; safe to re-run. The
// name is names.DatabaseName's (a safe identifier) and the password is hex.
// The statements carry the password's hash, never the password: MariaDB's
// general log records statements as they are.
func (o *Operations) createDatabase(ctx context.Context, db, password string) error {
	if !hexPassword.MatchString(password) {
		return errors.New("site password is not in the agent's format")
	}
	if o.Admin == nil {
		return errNoAdmin
	}
	return o.Admin.CreateDatabase(ctx, db, nativePasswordHash(password))
}

func (o *Operations) databaseExists(ctx context.Context, db string) (bool, error) {
	if o.Admin == nil {
		return false, errNoAdmin
	}
	return o.Admin.DatabaseExists(ctx, db)
}

func (o *Operations) dropDatabase(ctx context.Context, db string) error {
	if o.Admin == nil {
		return errNoAdmin
	}
	return o.Admin.DropDatabase(ctx, db)
}

// checkPing asks the site, through the host nginx, for /api/method/ping.
func (o *Operations) checkPing(ctx context.Context, run *jobs.Run, site string) error {
	if o.SiteURL == "" {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.SiteURL+"/api/method/ping", nil)
		if err != nil {
			return err
		}
		req.Host = site
		resp, err := noRedirects(10 * time.Second).Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				run.Log("%s answers through nginx", site)
				return nil
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s does not answer through nginx: %w", site, last)
}

func (o *Operations) siteMaintenance(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SiteMaintenanceRequest](raw)
	if err != nil {
		return nil, err
	}
	return []jobs.Step{{Name: "set maintenance mode", Run: func(ctx context.Context, run *jobs.Run) error {
		return o.maintenance(ctx, run, req.Bench, req.Site, req.On)
	}}}, nil
}

func (o *Operations) maintenance(ctx context.Context, run *jobs.Run, bench, site string, on bool) error {
	mode := "off"
	if on {
		mode = "on"
	}
	return o.Runtime.Exec(ctx, bench, run.Output(), "--site", site, "set-maintenance-mode", mode)
}

func (o *Operations) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// noRedirects is a client for asking a bench: its answers are hostile, and
// a redirect would have the agent request whatever URL the bench names (the
// agent's own API, a cloud metadata service) from the host.
func noRedirects(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// waitServing waits until the bench answers HTTP on addr, whatever the
// status: a TCP connection alone proves nothing, since Docker's proxy
// accepts on a published port whether the container listens or not.
func waitServing(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := noRedirects(2 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/method/ping", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing answers on %s after %s: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
