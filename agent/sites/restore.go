package sites

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/jobs"
)

// restoreHeadroom is the free space a restore keeps beyond what it unpacks.
const restoreHeadroom = 0.2

// preRestoreSlot is where site.restore keeps the backup of the live site it
// takes before `bench restore`, apart from the backup it restores.
const preRestoreSlot resultSlot = "pre_restore_backup"

// siteRestore restores a local backup (by id, or its folder) or an offsite
// one. It checks the free space of the sites folder and of MariaDB's data
// directory, takes a backup of the live site first and, when the restore
// fails, restores that backup and fails saying so.
func (o *Operations) siteRestore(raw json.RawMessage) ([]jobs.Step, error) {
	req, err := decodeRequest[agentapi.SiteRestoreRequest](raw)
	if err != nil {
		return nil, err
	}
	backups := o.backupsDir(req.Bench, req.Site)
	var state struct {
		Dir string `json:"restored_from"`
	}
	steps := []jobs.Step{
		{Name: "fetch backup", Run: func(ctx context.Context, run *jobs.Run) error {
			dir, err := o.fetchBackup(ctx, run, req, backups)
			if err != nil {
				return err
			}
			state.Dir = dir
			return resultSlot("").set(run, state)
		}},
		{Name: "check free disk", Run: func(ctx context.Context, run *jobs.Run) error {
			if err := run.Result(&state); err != nil {
				return err
			}
			m, err := backup.Verify(ctx, state.Dir)
			if err != nil {
				return err
			}
			if m.Site != req.Site { // refused before the site goes into maintenance
				return fmt.Errorf("backup %s is of site %s, not of %s", m.Dir, m.Site, req.Site)
			}
			run.Log("backup %s verified; unpacks to %d bytes", m.Dir, m.UncompressedSize())
			datadir, derr := o.mariadbDatadir(ctx)
			return checkRestoreSpace(o.Statfs, m, o.Runtime.SitesDir(req.Bench), datadir, derr, run.Log)
		}},
		{Name: "maintenance on", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.maintenance(ctx, run, req.Bench, req.Site, true)
		}},
	}
	// The live site, as it is before the restore: what a failed restore
	// falls back to. With files, as a restore may replace them.
	pre := o.backupStepsIn(preRestoreSlot, "pre-restore ", req.Bench, req.Site, true, false)
	for i := range pre {
		step := pre[i].Run
		pre[i].Run = func(ctx context.Context, run *jobs.Run) error {
			err := step(ctx, run)
			if err == nil {
				return nil
			}
			if merr := o.maintenance(context.WithoutCancel(ctx), run, req.Bench, req.Site, false); merr != nil {
				return fmt.Errorf("the pre-restore backup failed, so nothing was restored; maintenance mode is still on (%v): %w", merr, err)
			}
			return fmt.Errorf("the pre-restore backup failed, so nothing was restored and the site is back in service: %w", err)
		}
	}
	steps = append(steps, pre...)
	steps = append(steps,
		jobs.Step{Name: "bench restore", Run: func(ctx context.Context, run *jobs.Run) error {
			if err := run.Result(&state); err != nil {
				return err
			}
			m, err := backup.Verify(ctx, state.Dir)
			if err != nil {
				return err
			}
			err = o.benchRestore(ctx, run, req.Bench, req.Site, m)
			if err == nil {
				return nil
			}
			return o.fallBack(ctx, run, "restore", preRestoreSlot, req.Bench, req.Site, err)
		}},
		jobs.Step{Name: "maintenance off", Run: func(ctx context.Context, run *jobs.Run) error {
			return o.maintenance(ctx, run, req.Bench, req.Site, false)
		}},
	)
	return steps, nil
}

// fallBack restores the backup a step took before changing the site (the
// pre-migrate or pre-restore backup, in slot of the job's result) after what
// failed with err, and says in its error what became of the site.
func (o *Operations) fallBack(ctx context.Context, run *jobs.Run, what string, slot resultSlot, bench, site string, err error) error {
	var pre sealed
	if rerr := slot.get(run, &pre); rerr != nil || pre.Dir == "" {
		return fmt.Errorf("%s failed and no pre-%s backup is recorded to %s: %w", what, what, fallBackVerb[what], err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s was stopped (%v) and the site may be half changed; the pre-%s backup %s was not restored: restore it (path %q): %w",
			what, context.Cause(ctx), what, pre.Dir, pre.ID, err)
	}
	run.Log("%s failed: restoring the pre-%s backup %s", what, what, pre.Dir)
	m, verr := backup.Verify(ctx, pre.Dir)
	if verr == nil {
		verr = o.benchRestore(ctx, run, bench, site, m)
	}
	if verr != nil {
		return fmt.Errorf("%s failed (%v), and restoring the pre-%s backup %s failed too: %w", what, err, what, pre.Dir, verr)
	}
	if merr := o.maintenance(ctx, run, bench, site, false); merr != nil {
		return fmt.Errorf("%s failed (%v); the pre-%s backup %s was restored, but maintenance mode is still on: %w", what, err, what, pre.Dir, merr)
	}
	return fmt.Errorf("%s failed; the pre-%s backup %s was restored and the site is back in service: %w", what, what, pre.Dir, err)
}

// fallBackVerb is how fallBack's message says what it would have done.
var fallBackVerb = map[string]string{"migrate": "restore", "restore": "fall back to"}

// mariadbDatadir asks MariaDB where its data is, through the admin
// connection, and checks that the folder is on this host.
func (o *Operations) mariadbDatadir(ctx context.Context) (string, error) {
	if o.Admin == nil {
		return "", errNoAdmin
	}
	dir, host, err := o.Admin.Datadir(ctx)
	if err != nil {
		return "", err
	}
	if local, err := os.Hostname(); err != nil || !strings.EqualFold(local, host) {
		return "", fmt.Errorf("MariaDB runs on host %q, not on this one (%q)", host, local)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("MariaDB's data directory %s is not a folder on this host", dir)
	}
	return dir, nil
}

// checkRestoreSpace checks that the sites folder has room for the backup's
// unpacked files plus the pre-restore backup (about the backup's size), and
// that MariaDB's data directory has room for the loaded dump; both on one
// filesystem need the sum. datadirErr says why the data directory is not
// known: then only the sites folder is checked, and the output says so.
func checkRestoreSpace(statfs backup.Statfs, m backup.Manifest, sitesDir, datadir string, datadirErr error, logf func(string, ...any)) error {
	if statfs == nil {
		statfs = unix.Statfs
	}
	sitesNeed := m.UncompressedSize() + m.Size
	var dbNeed int64
	for _, f := range m.Files {
		if strings.Contains(f.Name, "-database.sql") {
			dbNeed += max(f.UncompressedSize, f.Size)
		}
	}
	if datadirErr != nil {
		logf("MariaDB's data directory is not checked (%v): checking the sites folder only", datadirErr)
		logf("sites folder %s: %d bytes needed (unpacked backup and pre-restore backup)", sitesDir, sitesNeed)
		return backup.CheckFreeSpaceWith(statfs, sitesDir, sitesNeed, restoreHeadroom)
	}
	if sameFilesystem(statfs, sitesDir, datadir) {
		logf("sites folder %s and MariaDB's data directory %s are on one filesystem: %d + %d bytes needed", sitesDir, datadir, sitesNeed, dbNeed)
		if err := backup.CheckFreeSpaceWith(statfs, sitesDir, sitesNeed+dbNeed, restoreHeadroom); err != nil {
			return fmt.Errorf("sites folder and MariaDB's data directory %s: %w", datadir, err)
		}
		return nil
	}
	logf("sites folder %s: %d bytes needed; MariaDB's data directory %s: %d bytes needed", sitesDir, sitesNeed, datadir, dbNeed)
	var errs []error
	if err := backup.CheckFreeSpaceWith(statfs, sitesDir, sitesNeed, restoreHeadroom); err != nil {
		errs = append(errs, fmt.Errorf("sites folder: %w", err))
	}
	if err := backup.CheckFreeSpaceWith(statfs, datadir, dbNeed, restoreHeadroom); err != nil {
		errs = append(errs, fmt.Errorf("MariaDB's data directory: %w", err))
	}
	return errors.Join(errs...)
}

func sameFilesystem(statfs backup.Statfs, a, b string) bool {
	var sa, sb unix.Statfs_t
	if statfs(a, &sa) != nil || statfs(b, &sb) != nil {
		return false
	}
	return sa.Fsid == sb.Fsid && sa.Fsid != (unix.Fsid{})
}
