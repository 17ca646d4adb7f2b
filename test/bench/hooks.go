package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// envDBPassword carries new-site's database password, so it is on no
// command line (Docker records an exec's arguments in its event stream).
// --db-password is still accepted, as the real bench takes it.
const envDBPassword = "HYBRID_DB_PASSWORD"

// Failure hooks: files a test puts in the bench's sites folder (which the
// agent's tests reach on the host) to make a command fail as a broken or
// hostile bench would. A failing command prints the site's database
// password in its error, as a traceback that dumps the site's config does:
// the agent must keep it out of what it records.
const (
	failNewSiteFile = "fail_new_site" // in sites/: new-site fails halfway, leaving its folder and tables
	failPingFile    = "fail_ping"     // in sites/: GET /api/method/ping answers 500
	failServeFile   = "fail_serve"    // in sites/: serve exits at once, serving nothing
	failBackupFile  = "fail_backup"   // in sites/<site>/: backup fails
	failRestoreFile = "fail_restore"  // in sites/<site>/: restore fails before touching anything
)

// hookSet says whether the hook file exists at path.
func hookSet(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("check %s: %w", filepath.Base(path), err)
	}
}

// failOnPurpose is the error of a command a hook made fail.
func failOnPurpose(cmd, site, hook, password string) error {
	return fmt.Errorf("%s %s: failed on purpose (%s present); site config: db_password=%s", cmd, site, hook, password)
}

// siteHookFailure fails a site command when its hook file is in the site's
// folder.
func (b *Bench) siteHookFailure(cmd, site, hook string) error {
	set, err := hookSet(filepath.Join(b.siteDir(site), hook))
	if err != nil || !set {
		return err
	}
	password := ""
	if cfg, err := b.readSiteConfig(site); err == nil {
		password = cfg.DBPassword
	}
	return failOnPurpose(cmd, site, hook, password)
}
