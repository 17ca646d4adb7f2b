package sites

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/agent/benches"
)

// What the job types need from the container runtime, the database admin
// and the offsite store, in small interfaces: the agent gives the real ones
// (*benches.Runtime, MariaDB, *backup.Offsite), the unit tests fakes, so the
// steps and their undo are tested without Docker or MariaDB.

// benchFolders says where a bench's files are on the host.
type benchFolders interface {
	Dir(bench string) string
	SitesDir(bench string) string
}

// benchList reads the benches the agent made.
type benchList interface {
	List() ([]benches.Config, error)
	Exists(bench string) bool
}

// benchCommands runs the bench command in a bench's container.
type benchCommands interface {
	Exec(ctx context.Context, bench string, out io.Writer, args ...string) error
	ExecWith(ctx context.Context, bench string, out io.Writer, opts benches.ExecOptions, args ...string) error
}

// benchMaker makes a bench's folders and reads its configuration.
type benchMaker interface {
	Prepare(bench, image string, limits agentapi.Limits) (benches.Config, error)
	ReadConfig(bench string) (benches.Config, error)
}

// containerLife starts and removes a bench's container.
type containerLife interface {
	Start(ctx context.Context, c benches.Config) error
	Remove(ctx context.Context, bench string) error
}

// containerChanges changes a running bench.
type containerChanges interface {
	Restart(ctx context.Context, bench string) error
	SetLimits(ctx context.Context, bench string, limits agentapi.Limits) error
}

// benchArchiver moves a removed bench's folder aside.
type benchArchiver interface {
	Archive(bench string, now time.Time) (string, error)
}

// containers is every runtime call the job types make.
type containers interface {
	benchFolders
	benchList
	benchCommands
	benchMaker
	containerLife
	containerChanges
	benchArchiver
}

var _ containers = (*benches.Runtime)(nil)

// databases makes and drops a site's database and its user. The user is
// made with the password's hash, never the password.
type databases interface {
	CreateDatabase(ctx context.Context, db, passwordHash string) error
	DropDatabase(ctx context.Context, db string) error
}

// databaseFacts answers what the job types ask MariaDB before they act.
type databaseFacts interface {
	DatabaseExists(ctx context.Context, db string) (bool, error)
	// Datadir is MariaDB's data directory and the host it runs on.
	Datadir(ctx context.Context) (dir, host string, err error)
}

// databaseAdmin is every database call the job types make.
type databaseAdmin interface {
	databases
	databaseFacts
}

// offsiteUploads puts a sealed backup offsite.
type offsiteUploads interface {
	Upload(ctx context.Context, m backup.Manifest, dir string) error
	Prefix(m backup.Manifest) string
}

// offsiteDownloads fetches an offsite backup.
type offsiteDownloads interface {
	Download(ctx context.Context, site, prefix, destDir string) (backup.Manifest, error)
}

// offsiteRetention lists and deletes a site's offsite backups.
type offsiteRetention interface {
	List(ctx context.Context, site string) ([]backup.Manifest, error)
	Delete(ctx context.Context, m backup.Manifest) error
}

// offsiteStore is every offsite call the job types make.
type offsiteStore interface {
	offsiteUploads
	offsiteDownloads
	offsiteRetention
}

var _ offsiteStore = (*backup.Offsite)(nil)

// MariaDB is the database admin on a MariaDB connection allowed to create
// and drop databases and users.
type MariaDB struct{ DB *sql.DB }

var _ databaseAdmin = MariaDB{}

var errNoAdmin = errors.New("no admin connection to MariaDB")

// CreateDatabase makes the database and its user; safe to re-run. db is
// names.DatabaseName's (a safe identifier) and passwordHash is
// nativePasswordHash's: MariaDB's general log records statements as they are.
func (m MariaDB) CreateDatabase(ctx context.Context, db, passwordHash string) error {
	if m.DB == nil {
		return errNoAdmin
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS `" + db + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"CREATE USER IF NOT EXISTS '" + db + "'@'%' IDENTIFIED BY PASSWORD '" + passwordHash + "'",
		"ALTER USER '" + db + "'@'%' IDENTIFIED BY PASSWORD '" + passwordHash + "'",
		"GRANT ALL PRIVILEGES ON `" + db + "`.* TO '" + db + "'@'%'",
	} {
		if _, err := m.DB.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create database %s: %w", db, err)
		}
	}
	return nil
}

// DropDatabase drops the database and its user; safe to re-run.
func (m MariaDB) DropDatabase(ctx context.Context, db string) error {
	if m.DB == nil {
		return errNoAdmin
	}
	for _, q := range []string{
		"DROP DATABASE IF EXISTS `" + db + "`",
		"DROP USER IF EXISTS '" + db + "'@'%'",
	} {
		if _, err := m.DB.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("drop database %s: %w", db, err)
		}
	}
	return nil
}

// DatabaseExists says whether MariaDB has a database of that name.
func (m MariaDB) DatabaseExists(ctx context.Context, db string) (bool, error) {
	if m.DB == nil {
		return false, errNoAdmin
	}
	var n int
	if err := m.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db).Scan(&n); err != nil {
		return false, fmt.Errorf("look for database %s: %w", db, err)
	}
	return n > 0, nil
}

// Datadir asks MariaDB for its data directory and host name.
func (m MariaDB) Datadir(ctx context.Context) (dir, host string, err error) {
	if m.DB == nil {
		return "", "", errNoAdmin
	}
	if err := m.DB.QueryRowContext(ctx, "SELECT @@datadir, @@hostname").Scan(&dir, &host); err != nil {
		return "", "", fmt.Errorf("ask MariaDB for its data directory: %w", err)
	}
	return dir, host, nil
}
