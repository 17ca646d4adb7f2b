package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// appName is the row of tabSchema holding this app's schema version.
const appName = "kv"

// migration is one step of the app's schema. Every statement is idempotent,
// so a step interrupted midway can run again.
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations is the app's schema history; the binary's version is the last.
var migrations = []migration{
	{1, "create tabSchema and tabKV", []string{
		"CREATE TABLE IF NOT EXISTS `tabSchema` (`app` varchar(140) NOT NULL PRIMARY KEY, `version` int NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
		"CREATE TABLE IF NOT EXISTS `tabKV` (`name` varchar(140) NOT NULL PRIMARY KEY, `value` longtext, `creation` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	}},
	{2, "add tabKV.modified", []string{
		"ALTER TABLE `tabKV` ADD COLUMN IF NOT EXISTS `modified` datetime(6) NULL",
	}},
}

// Test hooks, documented in README.md.
const (
	envSchemaVersion = "BENCH_SCHEMA_VERSION" // pretend to be an older release
	envFailMigrate   = "BENCH_FAIL_MIGRATE"   // make every migrate fail
	failMigrateFile  = "fail_migrate"         // in the site folder: make its migrate fail
)

// targetVersion is the schema version this binary migrates to.
func (b *Bench) targetVersion() (int, error) {
	latest := migrations[len(migrations)-1].version
	s := b.Getenv(envSchemaVersion)
	if s == "" {
		return latest, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > latest {
		return 0, fmt.Errorf("%s=%q: want a version in 1..%d", envSchemaVersion, s, latest)
	}
	return v, nil
}

// openDB connects to the site's database as Frappe does: the user is the
// database's name.
func openDB(cfg *siteConfig) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.User = cfg.DBName
	mc.Passwd = cfg.DBPassword
	mc.DBName = cfg.DBName
	if strings.HasPrefix(cfg.DBHost, "/") {
		mc.Net, mc.Addr = "unix", cfg.DBHost
	} else {
		mc.Net, mc.Addr = "tcp", net.JoinHostPort(cfg.DBHost, strconv.Itoa(cfg.DBPort))
	}
	mc.Timeout = 5 * time.Second
	mc.Logger = &mysql.NopLogger{}
	if err := mc.Apply(mysql.Charset("utf8mb4", "")); err != nil {
		return nil, fmt.Errorf("database settings: %w", err)
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("database settings: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

// connectSite opens and pings the site's database.
func (b *Bench) connectSite(ctx context.Context, site string) (*sql.DB, error) {
	cfg, err := b.readSiteConfig(site)
	if err != nil {
		return nil, err
	}
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database %s at %s:%d: %w", cfg.DBName, cfg.DBHost, cfg.DBPort, err)
	}
	return db, nil
}

// schemaVersion is the version recorded in tabSchema, 0 for none.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	err := db.QueryRowContext(ctx, "SELECT `version` FROM `tabSchema` WHERE `app` = ?", appName).Scan(&v)
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case errors.As(err, &me) && me.Number == 1146: // ER_NO_SUCH_TABLE
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func setSchemaVersion(ctx context.Context, db *sql.DB, v int) error {
	_, err := db.ExecContext(ctx,
		"INSERT INTO `tabSchema` (`app`, `version`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `version` = VALUES(`version`)", appName, v)
	if err != nil {
		return fmt.Errorf("record schema version %d: %w", v, err)
	}
	return nil
}

// migrateTo applies the migrations after the recorded version up to target,
// recording the version after each, and returns the versions it went from and to.
func migrateTo(ctx context.Context, db *sql.DB, target int) (from int, err error) {
	from, err = schemaVersion(ctx, db)
	if err != nil {
		return 0, err
	}
	if from > target {
		return from, fmt.Errorf("the site's schema version %d is newer than this bench's %d; downgrades are not supported", from, target)
	}
	for _, m := range migrations {
		if m.version <= from || m.version > target {
			continue
		}
		for _, stmt := range m.stmts {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return from, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if err := setSchemaVersion(ctx, db, m.version); err != nil {
			return from, err
		}
	}
	return from, nil
}

// migrateFailRequested says whether a test asked the site's migrate to fail.
func (b *Bench) migrateFailRequested(site string) (bool, error) {
	if v := b.Getenv(envFailMigrate); v != "" && v != "0" {
		return true, nil
	}
	_, err := os.Stat(filepath.Join(b.siteDir(site), failMigrateFile))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("check %s: %w", failMigrateFile, err)
	}
}
