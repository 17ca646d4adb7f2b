package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Test hooks, files in the site folder.
const (
	backupSummaryFile = "backup_summary" // printed by backup instead of making one
	slowBackupFile    = "slow_backup"    // seconds backup sleeps once the dump is written
)

// backupFiles are the files one backup made, absolute paths; empty when not made.
type backupFiles struct {
	Config, Database, Public, Private string
}

func (b *Bench) backupCmd(ctx context.Context, site string, args []string) error {
	a, err := parseArgs("backup", args, argSpec{
		bools:        []string{"with-files"},
		ignoredBools: []string{"compress", "verbose", "ignore-backup-conf"},
	})
	if err != nil {
		return err
	}
	if len(a.pos) != 0 {
		return usagef("backup takes no arguments")
	}
	// Test hook: a bench that lies, printing what the test wrote instead of
	// making a backup.
	if summary, err := os.ReadFile(filepath.Join(b.siteDir(site), backupSummaryFile)); err == nil {
		_, err := b.Stdout.Write(summary)
		return err
	}
	files, err := b.backup(ctx, site, a.bools["with-files"])
	if err != nil {
		return fmt.Errorf("backup %s: %w", site, err)
	}
	b.printBackupSummary(site, files)
	return nil
}

// printBackupSummary writes Frappe's summary: one "Label: path size" line per
// file, paths relative to the sites folder as Frappe prints them.
func (b *Bench) printBackupSummary(site string, f *backupFiles) {
	fmt.Fprintf(b.Stdout, "Backup Summary for %s at %s\n", site, b.Now().Format("2006-01-02 15:04:05.000000"))
	for _, row := range []struct{ label, path string }{
		{"Config  ", f.Config}, {"Database", f.Database}, {"Public  ", f.Public}, {"Private ", f.Private},
	} {
		if row.path == "" {
			continue
		}
		size := int64(0)
		if info, err := os.Stat(row.path); err == nil {
			size = info.Size()
		}
		rel, err := filepath.Rel(b.SitesDir(), row.path)
		if err != nil {
			rel = row.path
		} else {
			rel = "./" + rel
		}
		fmt.Fprintf(b.Stdout, "%s: %s %s\n", row.label, rel, humanSize(size))
	}
	with := ""
	if f.Public != "" {
		with = " with files"
	}
	fmt.Fprintf(b.Stdout, "Backup for Site %s has been successfully completed%s\n", site, with)
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d.0B", n)
	}
	v, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		suffix = s
		if v < unit {
			break
		}
	}
	return fmt.Sprintf("%.1f%s", v, suffix)
}

// backup writes the site's config, database dump and, withFiles, the tars of
// its public and private files into private/backups, named as Frappe names
// them: <YYYYmmdd_HHMMSS>-<site with dots as underscores>-<part>.
func (b *Bench) backup(ctx context.Context, site string, withFiles bool) (*backupFiles, error) {
	cfg, err := b.readSiteConfig(site)
	if err != nil {
		return nil, err
	}
	if err := b.siteHookFailure("backup", site, failBackupFile); err != nil {
		return nil, err
	}
	dir := filepath.Join(b.siteDir(site), "private", "backups")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create backups folder: %w", err)
	}
	prefix := filepath.Join(dir, b.Now().Format("20060102_150405")+"-"+strings.ReplaceAll(site, ".", "_"))
	f := &backupFiles{
		Config:   prefix + "-site_config_backup.json",
		Database: prefix + "-database.sql.gz",
	}
	db, err := b.connectSite(ctx, site)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := writeAtomically(f.Database, func(w io.Writer) error {
		zw := gzip.NewWriter(w)
		if err := dumpDatabase(ctx, db, cfg.DBName, zw); err != nil {
			return err
		}
		return zw.Close()
	}); err != nil {
		return nil, fmt.Errorf("dump database %s: %w", cfg.DBName, err)
	}
	// Test hook: a slow backup, to be cancelled with the dump written.
	if data, err := os.ReadFile(filepath.Join(b.siteDir(site), slowBackupFile)); err == nil {
		secs, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(secs) * time.Second):
		}
	}
	config, err := os.ReadFile(b.siteConfigPath(site))
	if err != nil {
		return nil, fmt.Errorf("back up %s: %w", siteConfigFile, err)
	}
	if err := writeFileAtomic(f.Config, config, 0o600); err != nil {
		return nil, err
	}
	if !withFiles {
		return f, nil
	}
	f.Public, f.Private = prefix+"-files.tar", prefix+"-private-files.tar"
	for _, part := range []struct{ kind, path string }{{"public", f.Public}, {"private", f.Private}} {
		if err := writeAtomically(part.path, func(w io.Writer) error {
			return tarFiles(b.SitesDir(), site, part.kind, w)
		}); err != nil {
			return nil, fmt.Errorf("archive %s files: %w", part.kind, err)
		}
	}
	return f, nil
}

// writeAtomically streams into a temp file beside path and renames it into
// place once complete and synced: a backup file that exists is whole.
func writeAtomically(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o640); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// tarFiles writes <site>/<kind>/files/... as Frappe's tar does (run from the
// sites folder), so restore strips two components whatever the site's name.
func tarFiles(sitesDir, site, kind string, w io.Writer) error {
	tw := tar.NewWriter(w)
	root := filepath.Join(sitesDir, site, kind, "files")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil // links and specials are not site files
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(sitesDir, path)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// dumpDatabase writes an SQL dump of every table of the database (CREATE
// TABLE and INSERTs, as mariadb-dump writes them) from one consistent
// snapshot.
func dumpDatabase(ctx context.Context, db *sql.DB, dbName string, w io.Writer) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")

	tables, err := listTables(ctx, conn)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "-- Dump of database %s by the stand-in bench\n", quoteIdent(dbName))
	io.WriteString(w, "/*!40101 SET NAMES utf8mb4 */;\nSET FOREIGN_KEY_CHECKS=0;\nSET UNIQUE_CHECKS=0;\n")
	for _, t := range tables {
		if err := dumpTable(ctx, conn, t, w); err != nil {
			return fmt.Errorf("table %s: %w", t, err)
		}
	}
	_, err = io.WriteString(w, "SET FOREIGN_KEY_CHECKS=1;\nSET UNIQUE_CHECKS=1;\n-- Dump completed\n")
	return err
}

// listTables lists the base tables of the connection's database.
func listTables(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name, kind string
		if err := rows.Scan(&name, &kind); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, nil
}

// dropAllTables drops every table of the connection's database.
func dropAllTables(ctx context.Context, conn *sql.Conn) error {
	tables, err := listTables(ctx, conn)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "SET FOREIGN_KEY_CHECKS=0"); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET FOREIGN_KEY_CHECKS=1")
	for _, t := range tables {
		if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+quoteIdent(t)); err != nil {
			return fmt.Errorf("drop table %s: %w", t, err)
		}
	}
	return nil
}

const insertBatchBytes = 256 << 10

func dumpTable(ctx context.Context, conn *sql.Conn, table string, w io.Writer) error {
	var name, create string
	if err := conn.QueryRowContext(ctx, "SHOW CREATE TABLE "+quoteIdent(table)).Scan(&name, &create); err != nil {
		return fmt.Errorf("show create table: %w", err)
	}
	fmt.Fprintf(w, "\nDROP TABLE IF EXISTS %s;\n%s;\n", quoteIdent(table), create)

	rows, err := conn.QueryContext(ctx, "SELECT * FROM "+quoteIdent(table))
	if err != nil {
		return err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	binary := make([]bool, len(types))
	for i, ct := range types {
		tn := strings.ToUpper(ct.DatabaseTypeName())
		binary[i] = strings.Contains(tn, "BLOB") || strings.Contains(tn, "BINARY") || tn == "GEOMETRY"
	}
	vals := make([]sql.RawBytes, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var stmt strings.Builder
	flush := func() error {
		if stmt.Len() == 0 {
			return nil
		}
		stmt.WriteString(";\n")
		_, err := io.WriteString(w, stmt.String())
		stmt.Reset()
		return err
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if stmt.Len() == 0 {
			stmt.WriteString("INSERT INTO " + quoteIdent(table) + " VALUES ")
		} else {
			stmt.WriteString(",")
		}
		stmt.WriteString("(")
		for i, v := range vals {
			if i > 0 {
				stmt.WriteString(",")
			}
			switch {
			case v == nil:
				stmt.WriteString("NULL")
			case binary[i]:
				if len(v) == 0 {
					stmt.WriteString("''")
				} else {
					stmt.WriteString("0x" + hex.EncodeToString(v))
				}
			default:
				stmt.WriteString(quoteString(string(v)))
			}
		}
		stmt.WriteString(")")
		if stmt.Len() >= insertBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return flush()
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// quoteString makes s an SQL string literal in MariaDB's default mode
// (backslash escapes on).
func quoteString(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) + 2)
	sb.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			sb.WriteString(`\0`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case 0x1a:
			sb.WriteString(`\Z`)
		case '\'':
			sb.WriteString(`\'`)
		case '\\':
			sb.WriteString(`\\`)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('\'')
	return sb.String()
}
