package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// Bench is one bench folder and the process's surroundings, injected so tests
// run the commands in-process.
type Bench struct {
	Dir    string // the bench folder, holding sites/
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	Now    func() time.Time
}

// usageError is a malformed command line: exit status 2 and the usage text.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

const usage = `usage:
  bench serve [--port 8000]
  bench new-site <site> --db-name <name> --db-password <pw> [--db-host <host>] [--db-port <port>]
  bench --site <site> migrate
  bench --site <site> backup [--with-files]
  bench --site <site> restore <sql[.gz]> [--with-public-files <tar>] [--with-private-files <tar>]
  bench --site <site> set-maintenance-mode on|off
  bench --site <site> set-fault status|slow|memory|cpu|exit <value> | off
  bench drop-site <site> [--no-backup] [--force] [--archived-sites-path <dir>]`

// SitesDir is the bench's sites folder.
func (b *Bench) SitesDir() string { return filepath.Join(b.Dir, "sites") }

// Run runs one command line and returns the process's exit status: 0 on
// success, 1 when the command failed, 2 for a malformed command line.
func (b *Bench) Run(ctx context.Context, args []string) int {
	err := b.dispatch(ctx, args)
	if err == nil {
		return 0
	}
	var exit *exitCodeError
	if errors.As(err, &exit) {
		fmt.Fprintf(b.Stderr, "bench: %v\n", err)
		return exit.Code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(b.Stderr, "bench: %v\n%s\n", err, usage)
		return 2
	}
	fmt.Fprintf(b.Stderr, "bench: %v\n", err)
	return 1
}

func (b *Bench) dispatch(ctx context.Context, args []string) error {
	site := ""
	// Frappe's global option comes before the command: bench --site <site> <command>.
options:
	for len(args) > 0 {
		switch {
		case args[0] == "--site":
			if len(args) < 2 {
				return usagef("--site needs a value")
			}
			site, args = args[1], args[2:]
		case strings.HasPrefix(args[0], "--site="):
			site, args = strings.TrimPrefix(args[0], "--site="), args[1:]
		default:
			break options
		}
	}
	if len(args) == 0 {
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	needSite := func() error {
		if site == "" {
			return usagef("%s needs --site <site> before the command", cmd)
		}
		return validateSiteName(site)
	}
	switch cmd {
	case "serve":
		return b.serveCmd(ctx, rest)
	case "new-site":
		return b.newSiteCmd(ctx, rest)
	case "drop-site":
		return b.dropSiteCmd(ctx, rest)
	case "migrate":
		if err := needSite(); err != nil {
			return err
		}
		return b.migrateCmd(ctx, site, rest)
	case "backup":
		if err := needSite(); err != nil {
			return err
		}
		return b.backupCmd(ctx, site, rest)
	case "restore":
		if err := needSite(); err != nil {
			return err
		}
		return b.restoreCmd(ctx, site, rest)
	case "set-maintenance-mode":
		if err := needSite(); err != nil {
			return err
		}
		return b.maintenanceCmd(site, rest)
	case "set-fault":
		if err := needSite(); err != nil {
			return err
		}
		return b.setFaultCmd(site, rest)
	case "help", "--help", "-h":
		fmt.Fprintln(b.Stdout, usage)
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}
