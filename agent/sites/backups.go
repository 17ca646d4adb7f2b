package sites

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/agent/names"
)

// realSitesDir is the bench's sites folder with the links of the agent's
// own folders above it (an operator's /home -> /data/home) resolved. Those
// are trusted; from the sites folder down, the bench writes, and the backup
// package follows no link.
func (o *Operations) realSitesDir(bench string) string {
	dir := o.Runtime.SitesDir(bench)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return real
	}
	return dir
}

// containerSites is the bench's sites folder inside its container.
const containerSites = "/home/frappe/frappe-bench/sites"

// backupLine is a file line of `bench backup`'s summary: "Database: ./<site>/private/backups/<file> 1.2KiB".
var backupLine = regexp.MustCompile(`^\s*(Config|Database|Public|Private)\s*:\s+(\S+)`)

// benchBackup runs the bench's backup and returns the files it made, as host
// paths. A result recorded by an earlier attempt whose files still exist is
// used again instead of making another backup. When the command fails, is
// cancelled or times out, what it left in the backups folder is removed
// (see cleanBackupLeftovers).
func (o *Operations) benchBackup(ctx context.Context, run *jobs.Run, slot resultSlot, bench, site string, withFiles bool) ([]string, error) {
	var state sealed
	if err := slot.get(run, &state); err != nil {
		return nil, err
	}
	if len(state.BenchFiles) > 0 && allExist(state.BenchFiles) {
		run.Log("using the backup an earlier attempt made")
		return state.BenchFiles, nil
	}
	backups := o.backupsDir(bench, site)
	if state.BackupsBefore == nil {
		before, err := backup.Entries(backups)
		if err != nil {
			return nil, err
		}
		state.BackupsBefore = before
		if err := slot.set(run, state); err != nil {
			return nil, err
		}
	}
	args := []string{"--site", site, "backup"}
	if withFiles {
		args = append(args, "--with-files")
	}
	// The bench names a backup by the second: one made in the second of an
	// earlier one (a pre-restore backup right after a backup) is made again.
	for attempt := 1; ; attempt++ {
		var out outputTail
		err := o.Runtime.Exec(ctx, bench, io.MultiWriter(run.Output(), &out), args...)
		var files []string
		if err == nil {
			files, err = o.parseBackupSummary(bench, site, out.Bytes())
		}
		if err == nil {
			if id := backupIDOf(files); slices.Contains(state.BackupsBefore, id) {
				err = fmt.Errorf("bench backup made %s, the id of a backup that exists already", id)
				if attempt < sameIDAttempts {
					run.Log("%v: making it again", err)
					o.cleanBackupLeftovers(run, slot, &state, backups)
					select {
					case <-ctx.Done():
						return nil, ctx.Err()
					case <-time.After(time.Second):
					}
					continue
				}
			}
		}
		if err != nil {
			state.BenchFiles = files
			o.cleanBackupLeftovers(run, slot, &state, backups)
			return nil, err
		}
		state.BenchFiles = files
		return files, slot.set(run, state)
	}
}

// maxSummary is how much of the end of `bench backup`'s output is kept to
// find its summary in: the summary is its last lines.
const maxSummary = 64 << 10

// outputTail keeps the last maxSummary bytes written to it: the bench's
// output is hostile, and a bench printing without end must not grow the
// agent's memory without end.
type outputTail struct{ b []byte }

func (t *outputTail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > maxSummary {
		p = p[len(p)-maxSummary:]
	}
	t.b = append(t.b, p...)
	if len(t.b) > 2*maxSummary {
		t.b = append(t.b[:0], t.b[len(t.b)-maxSummary:]...)
	}
	return n, nil
}

func (t *outputTail) Bytes() []byte {
	if len(t.b) > maxSummary {
		return t.b[len(t.b)-maxSummary:]
	}
	return t.b
}

// sameIDAttempts bounds how often a backup is made again because the bench
// gave it the id of an existing one.
const sameIDAttempts = 3

// backupIDOf is the bench's timestamp that starts the first file's name.
func backupIDOf(files []string) string {
	id, _, _ := strings.Cut(filepath.Base(files[0]), "-")
	return id
}

// cleanBackupLeftovers removes from the backups folder what this backup
// made and did not seal: files that were not there when its bench backup
// started, the files the bench printed, and the unsealed folder of a seal
// cut short. It runs when the bench command or the seal failed, was
// cancelled or timed out; what it removed and what it could not are in the
// job's result (bench_leftovers) and output.
func (o *Operations) cleanBackupLeftovers(run *jobs.Run, slot resultSlot, state *sealed, backups string) {
	if state.BackupsBefore == nil {
		run.Log("the backups folder was not listed before the bench ran: nothing left is removed")
		return
	}
	printed := map[string]bool{}
	for _, f := range state.BenchFiles {
		printed[filepath.Base(f)] = true
	}
	var before []string
	for _, n := range state.BackupsBefore {
		if !printed[n] {
			before = append(before, n)
		}
	}
	var ownID string
	if len(state.BenchFiles) > 0 {
		ownID = backupIDOf(state.BenchFiles)
	}
	lo, err := backup.RemoveLeftovers(backups, before, ownID)
	if err != nil {
		run.Log("cleaning what the backup left: %v", err)
	}
	if len(lo.Removed) > 0 {
		run.Log("removed what this backup left unsealed: %s", strings.Join(lo.Removed, ", "))
	}
	if len(lo.Left) > 0 {
		run.Log("left in the backups folder (not removed): %s", strings.Join(lo.Left, ", "))
	}
	state.Leftovers = &lo
	if err := slot.set(run, *state); err != nil {
		run.Log("record what the backup left: %v", err)
	}
}

// parseBackupSummary turns the paths the bench printed (relative to its sites
// folder) into host paths, refusing any that leave the site's backups folder.
func (o *Operations) parseBackupSummary(bench, site string, out []byte) ([]string, error) {
	backups := o.backupsDir(bench, site)
	var files []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := backupLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		rel := path.Clean(strings.TrimPrefix(m[2], containerSites+"/"))
		p := filepath.Join(o.realSitesDir(bench), filepath.FromSlash(rel))
		if filepath.Dir(p) != backups {
			return nil, fmt.Errorf("bench backup printed %q, which is not in %s", m[2], backups)
		}
		files = append(files, p)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("bench backup printed no backup file:\n%s", tail(out))
	}
	return files, nil
}

func allExist(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func tail(b []byte) string {
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return string(b)
}

// sealed is the job result of a backup: backup.Result plus what the steps
// need to find again on a re-run.
type sealed struct {
	backup.Result
	BenchFiles []string `json:"bench_backup_files,omitempty"`
	// BackupsBefore are the names in the backups folder before the bench
	// ran: anything else not sealed is what this backup left.
	BackupsBefore []string          `json:"backups_before"`
	Leftovers     *backup.Leftovers `json:"bench_leftovers,omitempty"`
	ID            string            `json:"id,omitempty"`
}

// resultSlot is where a job keeps one backup's state in its result: "" for
// the whole result (site.backup and site.migrate, whose result is the
// backup), or a key (site.restore keeps its pre-restore backup apart from
// the backup it restores).
type resultSlot string

func (k resultSlot) get(run *jobs.Run, into any) error {
	if k == "" {
		return run.Result(into)
	}
	var all map[string]json.RawMessage
	if err := run.Result(&all); err != nil {
		return err
	}
	if raw, ok := all[string(k)]; ok {
		return json.Unmarshal(raw, into)
	}
	return nil
}

// set merges v into the result, keeping the fields other steps wrote.
func (k resultSlot) set(run *jobs.Run, v any) error {
	var all map[string]json.RawMessage
	if err := run.Result(&all); err != nil {
		return err
	}
	if all == nil {
		all = map[string]json.RawMessage{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if k != "" {
		all[string(k)] = b
		return run.SetResult(all)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	maps.Copy(all, fields)
	return run.SetResult(all)
}

// backupSteps are a backup's steps, its state in the whole job result.
func (o *Operations) backupSteps(bench, site string, withFiles, offsite bool) []jobs.Step {
	return o.backupStepsIn("", "", bench, site, withFiles, offsite)
}

// backupStepsIn are a backup's steps, named with prefix, keeping their
// state in slot of the job's result.
func (o *Operations) backupStepsIn(slot resultSlot, prefix, bench, site string, withFiles, offsite bool) []jobs.Step {
	steps := []jobs.Step{
		{Name: prefix + "bench backup", Run: func(ctx context.Context, run *jobs.Run) error {
			_, err := o.benchBackup(ctx, run, slot, bench, site, withFiles)
			return err
		}},
		{Name: prefix + "seal", Run: func(ctx context.Context, run *jobs.Run) error {
			var state sealed
			if err := slot.get(run, &state); err != nil {
				return err
			}
			backups := o.backupsDir(bench, site)
			m, err := backup.Seal(ctx, site, state.BenchFiles, backups)
			if err != nil {
				o.cleanBackupLeftovers(run, slot, &state, backups)
				return err
			}
			run.Log("sealed %s: %d files, %d bytes", m.Dir, len(m.Files), m.Size)
			state.Result, state.ID = m.Result(), m.ID
			return slot.set(run, state)
		}},
	}
	if offsite {
		steps = append(steps, jobs.Step{Name: prefix + "upload offsite", Run: func(ctx context.Context, run *jobs.Run) error {
			if o.Offsite == nil {
				return errors.New("offsite storage is not configured on this agent (sites.offsite)")
			}
			var state sealed
			if err := slot.get(run, &state); err != nil {
				return err
			}
			m, err := backup.Verify(ctx, state.Dir)
			if err != nil {
				return err
			}
			if err := o.Offsite.Upload(ctx, m, m.Dir); err != nil {
				return err
			}
			state.OffsitePrefix = o.Offsite.Prefix(m)
			run.Log("uploaded to %s", state.OffsitePrefix)
			return slot.set(run, state)
		}})
	}
	return steps
}

func (o *Operations) siteBackup(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SiteBackupRequest](raw)
	if err != nil {
		return nil, err
	}
	return o.backupSteps(req.Bench, req.Site, req.WithFiles, req.Offsite), nil
}

// siteMigrate is an update: maintenance on, a backup, migrate, maintenance
// off. When migrate fails, the pre-migrate backup is restored and the job
// fails saying so.
func (o *Operations) siteMigrate(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SiteRequest](raw)
	if err != nil {
		return nil, err
	}
	steps := []jobs.Step{{Name: "maintenance on", Run: func(ctx context.Context, run *jobs.Run) error {
		return o.maintenance(ctx, run, req.Bench, req.Site, true)
	}}}
	steps = append(steps, o.backupSteps(req.Bench, req.Site, false, false)...)
	steps = append(steps,
		jobs.Step{Name: "migrate", Run: func(ctx context.Context, run *jobs.Run) error {
			err := o.Runtime.Exec(ctx, req.Bench, run.Output(), "--site", req.Site, "migrate")
			if err == nil {
				return nil
			}
			return o.fallBack(ctx, run, "migrate", "", req.Bench, req.Site, err)
		}},
		jobs.Step{Name: "maintenance off", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.maintenance(ctx, run, req.Bench, req.Site, false)
		}},
	)
	return steps, nil
}

// benchRestore has the bench load a verified backup.
func (o *Operations) benchRestore(ctx context.Context, run *jobs.Run, bench, site string, m backup.Manifest) error {
	// The bench can move a sealed backup from one site's backups folder
	// to another's: sealed, it still says whose it is.
	if m.Site != site {
		return fmt.Errorf("backup %s is of site %s, not of %s", m.Dir, m.Site, site)
	}
	rel, err := filepath.Rel(o.realSitesDir(bench), m.Dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("backup %s is not in bench %s's sites folder", m.Dir, bench)
	}
	inContainer := func(name string) string { return path.Join(containerSites, filepath.ToSlash(rel), name) }
	var database string
	var extra []string
	for _, f := range m.Files {
		switch {
		case strings.HasSuffix(f.Name, "-database.sql.gz") || strings.HasSuffix(f.Name, "-database.sql"):
			database = inContainer(f.Name)
		case strings.Contains(f.Name, "-private-files.tar"):
			extra = append(extra, "--with-private-files", inContainer(f.Name))
		case strings.Contains(f.Name, "-files.tar"):
			extra = append(extra, "--with-public-files", inContainer(f.Name))
		}
	}
	if database == "" {
		return fmt.Errorf("backup %s has no database dump", m.Dir)
	}
	args := append([]string{"--site", site, "restore", database}, extra...)
	return o.Runtime.Exec(ctx, bench, run.Output(), args...)
}

func (o *Operations) fetchBackup(ctx context.Context, run *jobs.Run, req agentapi.SiteRestoreRequest, backups string) (string, error) {
	if req.Path != "" {
		dir := req.Path
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(backups, dir)
		}
		dir = filepath.Clean(dir)
		if filepath.Dir(dir) != backups {
			return "", fmt.Errorf("restore path %q is not a backup of site %s (want a folder in %s)", req.Path, req.Site, backups)
		}
		return dir, nil
	}
	if o.Offsite == nil {
		return "", errors.New("offsite storage is not configured on this agent (sites.offsite)")
	}
	id := path.Base(strings.TrimSuffix(req.Object, "/"))
	if err := backup.ValidateID(id); err != nil {
		return "", fmt.Errorf("restore object %q: %w", req.Object, err)
	}
	dest := filepath.Join(backups, id)
	if m, err := backup.Verify(ctx, dest); err == nil {
		run.Log("backup %s is here already", m.Dir)
		return dest, nil
	}
	m, err := o.Offsite.Download(ctx, req.Site, req.Object, dest)
	if err != nil {
		return "", err
	}
	run.Log("downloaded %s: %d files, %d bytes", req.Object, len(m.Files), m.Size)
	return dest, nil
}

// siteArchive takes an optional last backup, drops the site from its bench,
// drops its database and user, and stops routing it.
func (o *Operations) siteArchive(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SiteArchiveRequest](raw)
	if err != nil {
		return nil, err
	}
	var steps []jobs.Step
	if req.Backup {
		steps = append(steps, o.backupSteps(req.Bench, req.Site, true, o.Offsite != nil)...)
	}
	steps = append(steps,
		jobs.Step{Name: "bench drop-site", Run: func(ctx context.Context, run *jobs.Run) error {
			if !o.SiteExists(req.Bench, req.Site) {
				run.Log("site is gone already")
				return nil
			}
			// Into the mounted sites folder, so the archive stays on the host
			// (and moves with the bench when it is archived).
			return o.Runtime.Exec(ctx, req.Bench, run.Output(), "drop-site", req.Site, "--no-backup", "--force",
				"--archived-sites-path", containerSites+"/archived_sites")
		}},
		jobs.Step{Name: "drop database", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.dropDatabase(ctx, names.DatabaseName(req.Site))
		}},
		jobs.Step{Name: "route", Run: o.route},
	)
	return steps, nil
}
