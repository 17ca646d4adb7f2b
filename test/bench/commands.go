package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// rootCredentialOptions are Frappe's database-root options (all take a value):
// accepted, unused, since the agent creates and drops databases and users
// itself.
var rootCredentialOptions = []string{
	"mariadb-root-username", "mariadb-root-password",
	"db-root-username", "db-root-password", "root-login", "root-password",
}

func (b *Bench) newSiteCmd(ctx context.Context, args []string) (err error) {
	a, err := parseArgs("new-site", args, argSpec{
		valued:       []string{"db-name", "db-password", "db-host", "db-port"},
		ignored:      append([]string{"admin-password", "db-type", "install-app"}, rootCredentialOptions...),
		ignoredBools: []string{"no-mariadb-socket", "verbose", "set-default"},
	})
	if err != nil {
		return err
	}
	if len(a.pos) != 1 {
		return usagef("new-site takes one site name, got %d arguments", len(a.pos))
	}
	site := a.pos[0]
	if err := validateSiteName(site); err != nil {
		return err
	}
	if a.vals["db-password"] == "" {
		a.vals["db-password"] = b.Getenv(envDBPassword)
	}
	var problems []error
	if a.vals["db-name"] == "" {
		problems = append(problems, errors.New("--db-name is required (the agent creates the database and its user first)"))
	}
	if a.vals["db-password"] == "" {
		problems = append(problems, fmt.Errorf("the database password is required: in %s, or --db-password", envDBPassword))
	}
	config := map[string]any{"db_name": a.vals["db-name"], "db_password": a.vals["db-password"], "db_type": "mariadb"}
	if h, ok := a.vals["db-host"]; ok {
		config["db_host"] = h
	}
	if p, ok := a.vals["db-port"]; ok {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			problems = append(problems, fmt.Errorf("--db-port %q is not a port number", p))
		}
		config["db_port"] = port
	}
	if err := errors.Join(problems...); err != nil {
		return &usageError{"new-site: " + err.Error()}
	}
	target, err := b.targetVersion()
	if err != nil {
		return err
	}

	if err := os.MkdirAll(b.SitesDir(), 0o755); err != nil {
		return fmt.Errorf("create sites folder: %w", err)
	}
	dir := b.siteDir(site)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("new-site %s: site already exists", site)
		}
		return fmt.Errorf("new-site %s: %w", site, err)
	}
	// A half-made site would block the retry: remove it on failure, unless
	// a test asked for a bench that dies halfway.
	failHalfway, err := hookSet(filepath.Join(b.SitesDir(), failNewSiteFile))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && !failHalfway {
			os.RemoveAll(dir)
		}
	}()
	for _, sub := range []string{"private/backups", "private/files", "public/files"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("new-site %s: %w", site, err)
		}
	}
	if err := writeJSONAtomic(b.siteConfigPath(site), config); err != nil {
		return fmt.Errorf("new-site %s: %w", site, err)
	}
	db, err := b.connectSite(ctx, site)
	if err != nil {
		return fmt.Errorf("new-site %s: %w", site, err)
	}
	defer db.Close()
	if _, err := migrateTo(ctx, db, target); err != nil {
		return fmt.Errorf("new-site %s: install the app: %w", site, err)
	}
	if failHalfway {
		return failOnPurpose("new-site", site, failNewSiteFile, a.vals["db-password"])
	}
	fmt.Fprintf(b.Stdout, "Site %s created (schema version %d)\n", site, target)
	return nil
}

func (b *Bench) migrateCmd(ctx context.Context, site string, args []string) error {
	a, err := parseArgs("migrate", args, argSpec{ignoredBools: []string{"skip-failing", "skip-search-index"}})
	if err != nil {
		return err
	}
	if len(a.pos) != 0 {
		return usagef("migrate takes no arguments")
	}
	target, err := b.targetVersion()
	if err != nil {
		return err
	}
	fail, err := b.migrateFailRequested(site)
	if err != nil {
		return err
	}
	db, err := b.connectSite(ctx, site)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", site, err)
	}
	defer db.Close()
	fmt.Fprintf(b.Stdout, "Migrating %s\n", site)
	if fail {
		// Like a real migrate failing halfway, leave the site damaged: the
		// recorded version drops to 0 until a restore or a good migrate.
		if err := setSchemaVersion(ctx, db, 0); err != nil {
			return fmt.Errorf("migrate %s: %w", site, err)
		}
		return fmt.Errorf("migrate %s: failed on purpose (%s set or %s present); the site is left at schema version 0",
			site, envFailMigrate, failMigrateFile)
	}
	from, err := migrateTo(ctx, db, target)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", site, err)
	}
	if from == target {
		fmt.Fprintf(b.Stdout, "Schema version %d is current\n", target)
	} else {
		fmt.Fprintf(b.Stdout, "Schema version %d -> %d\n", from, target)
	}
	return nil
}

func (b *Bench) maintenanceCmd(site string, args []string) error {
	a, err := parseArgs("set-maintenance-mode", args, argSpec{})
	if err != nil {
		return err
	}
	if len(a.pos) != 1 || (a.pos[0] != "on" && a.pos[0] != "off") {
		return usagef("set-maintenance-mode takes on or off")
	}
	mode := 0
	if a.pos[0] == "on" {
		mode = 1
	}
	if err := b.updateSiteConfig(site, func(m map[string]any) { m["maintenance_mode"] = mode }); err != nil {
		return fmt.Errorf("set-maintenance-mode %s: %w", site, err)
	}
	return nil
}

func (b *Bench) dropSiteCmd(ctx context.Context, args []string) error {
	a, err := parseArgs("drop-site", args, argSpec{
		valued:  []string{"archived-sites-path"},
		bools:   []string{"no-backup", "force"},
		ignored: rootCredentialOptions,
	})
	if err != nil {
		return err
	}
	if len(a.pos) != 1 {
		return usagef("drop-site takes one site name, got %d arguments", len(a.pos))
	}
	site := a.pos[0]
	if err := validateSiteName(site); err != nil {
		return err
	}
	if _, err := b.readSiteConfig(site); err != nil {
		return fmt.Errorf("drop-site %s: %w", site, err)
	}
	force := a.bools["force"]
	// With --force a database that is gone or broken does not keep the site
	// folder in place: report and go on.
	soft := func(err error) error {
		if err == nil || !force {
			return err
		}
		fmt.Fprintf(b.Stderr, "bench: drop-site %s: ignored with --force: %v\n", site, err)
		return nil
	}
	if !a.bools["no-backup"] {
		if _, err := b.backup(ctx, site, true); soft(err) != nil {
			return fmt.Errorf("drop-site %s: backup before dropping (use --no-backup to skip): %w", site, err)
		}
	}
	if err := soft(b.dropSiteTables(ctx, site)); err != nil {
		return fmt.Errorf("drop-site %s: %w", site, err)
	}
	archive := a.vals["archived-sites-path"]
	if archive == "" {
		archive = filepath.Join(b.Dir, "archived_sites")
	} else if !filepath.IsAbs(archive) {
		archive = filepath.Join(b.SitesDir(), archive)
	}
	if err := os.MkdirAll(archive, 0o755); err != nil {
		return fmt.Errorf("drop-site %s: create archive folder: %w", site, err)
	}
	dest := filepath.Join(archive, site+"-"+b.Now().Format("20060102_150405"))
	if err := moveDir(b.siteDir(site), dest); err != nil {
		return fmt.Errorf("drop-site %s: archive the site folder: %w", site, err)
	}
	fmt.Fprintf(b.Stdout, "Moved site %s to %s\n", site, dest)
	return nil
}

func (b *Bench) dropSiteTables(ctx context.Context, site string) error {
	db, err := b.connectSite(ctx, site)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	return dropAllTables(ctx, conn)
}

// moveDir renames src to dest, or copies and removes it when they are on
// different file systems (sites/ is often a bind mount of its own).
func moveDir(src, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%s already exists", dest)
	}
	err := os.Rename(src, dest)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyTree(src, dest); err != nil {
		os.RemoveAll(dest)
		return err
	}
	return os.RemoveAll(src)
}

func copyTree(src, dest string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dest, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return nil // sockets, devices: nothing a site keeps
		}
	})
}

func copyFile(src, dest string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
