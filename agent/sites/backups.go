package sites

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/benches"
	"github.com/hybridsuite/hybrid/agent/jobs"
	"github.com/hybridsuite/hybrid/agent/names"
)

// restoreHeadroom is the free space a restore keeps beyond what it unpacks.
const restoreHeadroom = 0.2

// containerSites is the bench's sites folder inside its container.
const containerSites = "/home/frappe/frappe-bench/sites"

// backupLine is a file line of `bench backup`'s summary: "Database: ./<site>/private/backups/<file> 1.2KiB".
var backupLine = regexp.MustCompile(`^\s*(Config|Database|Public|Private)\s*:\s+(\S+)`)

// benchBackup runs the bench's backup and returns the files it made, as host
// paths. A result recorded by an earlier attempt whose files still exist is
// used again instead of making another backup.
func (o *Operations) benchBackup(ctx context.Context, run *jobs.Run, bench, site string, withFiles bool) ([]string, error) {
	var state struct {
		Made []string `json:"bench_backup_files"`
	}
	if run.Result(&state) == nil && len(state.Made) > 0 && allExist(state.Made) {
		run.Log("using the backup an earlier attempt made")
		return state.Made, nil
	}
	args := []string{"--site", site, "backup"}
	if withFiles {
		args = append(args, "--with-files")
	}
	var out bytes.Buffer
	if err := o.Runtime.Exec(ctx, bench, io.MultiWriter(run.Output(), &out), args...); err != nil {
		return nil, err
	}
	files, err := o.parseBackupSummary(bench, site, out.Bytes())
	if err != nil {
		return nil, err
	}
	state.Made = files
	return files, run.SetResult(state)
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
		p := filepath.Join(o.Runtime.SitesDir(bench), filepath.FromSlash(rel))
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
	ID         string   `json:"id"`
}

func (o *Operations) backupSteps(bench, site string, withFiles, offsite bool) []jobs.Step {
	steps := []jobs.Step{
		{Name: "bench backup", Run: func(ctx context.Context, run *jobs.Run) error {
			_, err := o.benchBackup(ctx, run, bench, site, withFiles)
			return err
		}},
		{Name: "seal", Run: func(ctx context.Context, run *jobs.Run) error {
			var state sealed
			if err := run.Result(&state); err != nil {
				return err
			}
			m, err := backup.Seal(ctx, site, state.BenchFiles, o.backupsDir(bench, site))
			if err != nil {
				return err
			}
			if err := benchOwns(m.Dir); err != nil {
				return err
			}
			run.Log("sealed %s: %d files, %d bytes", m.Dir, len(m.Files), m.Size)
			state.Result, state.ID = m.Result(), m.ID
			return run.SetResult(state)
		}},
	}
	if offsite {
		steps = append(steps, jobs.Step{Name: "upload offsite", Run: func(ctx context.Context, run *jobs.Run) error {
			if o.Offsite == nil {
				return errors.New("offsite storage is not configured on this agent (sites.offsite)")
			}
			var state sealed
			if err := run.Result(&state); err != nil {
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
			return run.SetResult(state)
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
			var state sealed
			if rerr := run.Result(&state); rerr != nil || state.Dir == "" {
				return fmt.Errorf("migrate failed and no pre-migrate backup is recorded to restore: %w", err)
			}
			run.Log("migrate failed: restoring the pre-migrate backup %s", state.Dir)
			m, verr := backup.Verify(ctx, state.Dir)
			if verr == nil {
				verr = o.benchRestore(ctx, run, req.Bench, req.Site, m)
			}
			if verr != nil {
				return fmt.Errorf("migrate failed (%v), and restoring the pre-migrate backup %s failed too: %w", err, state.Dir, verr)
			}
			if merr := o.maintenance(ctx, run, req.Bench, req.Site, false); merr != nil {
				return fmt.Errorf("migrate failed (%v); the pre-migrate backup %s was restored, but maintenance mode is still on: %w", err, state.Dir, merr)
			}
			return fmt.Errorf("migrate failed; the pre-migrate backup %s was restored and the site is back in service: %w", state.Dir, err)
		}},
		jobs.Step{Name: "maintenance off", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.maintenance(ctx, run, req.Bench, req.Site, false)
		}},
	)
	return steps, nil
}

// benchRestore has the bench load a verified backup.
func (o *Operations) benchRestore(ctx context.Context, run *jobs.Run, bench, site string, m backup.Manifest) error {
	rel, err := filepath.Rel(o.Runtime.SitesDir(bench), m.Dir)
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

// siteRestore restores a local backup (by id, or its folder) or an offsite one.
func (o *Operations) siteRestore(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SiteRestoreRequest](raw)
	if err != nil {
		return nil, err
	}
	backups := o.backupsDir(req.Bench, req.Site)
	var state struct {
		Dir string `json:"restored_from"`
	}
	return []jobs.Step{
		{Name: "fetch backup", Run: func(ctx context.Context, run *jobs.Run) error {
			dir, err := o.fetchBackup(ctx, run, req, backups)
			if err != nil {
				return err
			}
			state.Dir = dir
			return run.SetResult(state)
		}},
		{Name: "check free disk", Run: func(ctx context.Context, run *jobs.Run) error {
			if err := run.Result(&state); err != nil {
				return err
			}
			m, err := backup.Verify(ctx, state.Dir)
			if err != nil {
				return err
			}
			run.Log("backup %s verified; unpacks to %d bytes", m.Dir, m.UncompressedSize())
			return backup.CheckFreeSpace(o.Runtime.SitesDir(req.Bench), m.UncompressedSize(), restoreHeadroom)
		}},
		{Name: "maintenance on", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.maintenance(ctx, run, req.Bench, req.Site, true)
		}},
		{Name: "bench restore", Run: func(ctx context.Context, run *jobs.Run) error {
			if err := run.Result(&state); err != nil {
				return err
			}
			m, err := backup.Verify(ctx, state.Dir)
			if err != nil {
				return err
			}
			return o.benchRestore(ctx, run, req.Bench, req.Site, m)
		}},
		{Name: "maintenance off", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.maintenance(ctx, run, req.Bench, req.Site, false)
		}},
	}, nil
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
	if err := benchOwns(dest); err != nil {
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

// benchOwns gives a backup folder the agent wrote to the bench's user, so
// the bench can read it (restore) and move it (drop-site).
func benchOwns(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, benches.Owner, benches.Owner); err != nil {
			return fmt.Errorf("give %s to the bench user: %w", p, err)
		}
		if d.IsDir() {
			return os.Chmod(p, 0o750)
		}
		return os.Chmod(p, 0o640)
	})
}
