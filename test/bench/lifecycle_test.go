package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// backupPaths parses a backup summary into label -> absolute path.
func backupPaths(t *testing.T, b *Bench, out string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		label, rest, ok := strings.Cut(line, ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) != 2 || !strings.HasPrefix(fields[0], "./") {
			continue
		}
		p := filepath.Join(b.SitesDir(), fields[0])
		require.FileExists(t, p)
		paths[strings.TrimSpace(label)] = p
	}
	return paths
}

func TestSite_FullLifecycle_AgainstRealMariaDB(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "site1db")
	const site = "site1.example.test"
	srv := tb.serve(t)

	out := tb.mustRun(t, db.newSiteArgs(site)...)
	require.Contains(t, out, "Site "+site+" created")
	for _, sub := range []string{"private/backups", "private/files", "public/files"} {
		require.DirExists(t, filepath.Join(tb.SitesDir(), site, sub))
	}
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(tb.SitesDir(), site, "site_config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	require.Equal(t, db.name, cfg["db_name"])
	require.Equal(t, db.password, cfg["db_password"])
	require.Equal(t, "127.0.0.1", cfg["db_host"])
	require.EqualValues(t, db.srv.Port(), cfg["db_port"])
	require.Equal(t, 2, db.schemaVersion(t))

	t.Run("new-site refuses an existing site", func(t *testing.T) {
		code, _, stderr := tb.run(t, db.newSiteArgs(site)...)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "already exists")
	})

	// Serving, by Host header with or without a port.
	code, body := request(t, srv, site+":8000", http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"message":"pong"}`, body)
	code, body = request(t, srv, "unknown.example.test", http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, body, "DoesNotExistError")

	// Values that stress the dump's quoting survive backup and restore.
	tricky := "it's a \"quote\"\\ back\nslash \x00 nul \x1a ctrl-z; DROP TABLE x; -- é 漢"
	for key, value := range map[string]string{"a": "1", "b": "two", "tricky": tricky} {
		code, body = request(t, srv, site, http.MethodPut, "/api/resource/KV/"+key, value)
		require.Equal(t, http.StatusOK, code, body)
	}
	code, body = request(t, srv, site, http.MethodGet, "/api/resource/KV/a", "")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"data":{"name":"a","value":"1"}}`, body)
	code, body = request(t, srv, site, http.MethodGet, "/api/resource/KV", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"name":"b"`)

	siteDir := filepath.Join(tb.SitesDir(), site)
	require.NoError(t, os.MkdirAll(filepath.Join(siteDir, "public/files/img"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(siteDir, "public/files/img/logo.txt"), []byte("logo"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(siteDir, "private/files/secret.txt"), []byte("secret"), 0o600))

	out = tb.mustRun(t, "--site", site, "backup", "--with-files")
	require.Contains(t, out, "Backup Summary for "+site)
	paths := backupPaths(t, tb.Bench, out)
	require.Len(t, paths, 4, out)
	require.Regexp(t, `/private/backups/\d{8}_\d{6}-site1_example_test-database\.sql\.gz$`, paths["Database"])
	require.Regexp(t, `-files\.tar$`, paths["Public"])
	require.Regexp(t, `-private-files\.tar$`, paths["Private"])

	// Damage: data and files.
	code, _ = request(t, srv, site, http.MethodDelete, "/api/resource/KV/a", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = request(t, srv, site, http.MethodGet, "/api/resource/KV/a", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = request(t, srv, site, http.MethodPut, "/api/resource/KV/after-backup", "x")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, os.Remove(filepath.Join(siteDir, "public/files/img/logo.txt")))

	// Restore with the paths as the summary printed them (relative to sites/).
	rel := func(p string) string {
		r, err := filepath.Rel(tb.SitesDir(), p)
		require.NoError(t, err)
		return "./" + r
	}
	out = tb.mustRun(t, "--site", site, "restore", rel(paths["Database"]),
		"--with-public-files", rel(paths["Public"]), "--with-private-files", paths["Private"])
	require.Contains(t, out, "has been restored with files")
	code, body = request(t, srv, site, http.MethodGet, "/api/resource/KV/a", "")
	require.Equal(t, http.StatusOK, code, body)
	code, _ = request(t, srv, site, http.MethodGet, "/api/resource/KV/after-backup", "")
	require.Equal(t, http.StatusNotFound, code)
	code, body = request(t, srv, site, http.MethodGet, "/api/resource/KV/tricky", "")
	require.Equal(t, http.StatusOK, code)
	var doc struct{ Data kvDoc }
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	require.Equal(t, tricky, doc.Data.Value)
	logo, err := os.ReadFile(filepath.Join(siteDir, "public/files/img/logo.txt"))
	require.NoError(t, err)
	require.Equal(t, "logo", string(logo))
	require.Equal(t, 2, db.schemaVersion(t))

	// Migrate is idempotent.
	out = tb.mustRun(t, "--site", site, "migrate")
	require.Contains(t, out, "Schema version 2 is current")
	tb.mustRun(t, "--site", site, "migrate")
	require.True(t, db.hasColumn(t, "tabKV", "modified"))

	// Maintenance mode, keeping the rest of the config.
	tb.mustRun(t, "--site", site, "set-maintenance-mode", "on")
	code, body = request(t, srv, site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "maintenance")
	tb.mustRun(t, "--site", site, "set-maintenance-mode", "off")
	code, _ = request(t, srv, site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusOK, code)
	raw, err = os.ReadFile(filepath.Join(siteDir, "site_config.json"))
	require.NoError(t, err)
	require.Contains(t, string(raw), db.password[:5])
	require.Contains(t, string(raw), `"maintenance_mode": 0`)

	// Drop: backup first, tables dropped, folder archived, site gone.
	out = tb.mustRun(t, "drop-site", site, "--root-password", "unused")
	require.Contains(t, out, "Moved site "+site+" to ")
	require.NoDirExists(t, siteDir)
	archived, err := filepath.Glob(filepath.Join(tb.Dir, "archived_sites", site+"-*"))
	require.NoError(t, err)
	require.Len(t, archived, 1)
	backups, err := filepath.Glob(filepath.Join(archived[0], "private/backups/*-database.sql.gz"))
	require.NoError(t, err)
	require.Len(t, backups, 2, "the backup above and the one drop-site takes")
	require.Equal(t, 0, db.tableCount(t))
	code, _ = request(t, srv, site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusNotFound, code)
}

func TestMigrate_FromOlderRelease_AddsColumnAndBumpsVersion(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "olddb")
	tb.env[envSchemaVersion] = "1"
	tb.mustRun(t, db.newSiteArgs("old.test")...)
	require.Equal(t, 1, db.schemaVersion(t))
	require.False(t, db.hasColumn(t, "tabKV", "modified"))

	delete(tb.env, envSchemaVersion)
	out := tb.mustRun(t, "--site", "old.test", "migrate")
	require.Contains(t, out, "Schema version 1 -> 2")
	require.Equal(t, 2, db.schemaVersion(t))
	require.True(t, db.hasColumn(t, "tabKV", "modified"))

	t.Run("an older binary refuses a newer site", func(t *testing.T) {
		tb.env[envSchemaVersion] = "1"
		defer delete(tb.env, envSchemaVersion)
		code, _, stderr := tb.run(t, "--site", "old.test", "migrate")
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "newer than this bench")
	})
}

func TestMigrate_FailRequested_FailsLeavesDamageAndRestoreRepairs(t *testing.T) {
	for _, hook := range []string{"file", "env"} {
		t.Run(hook, func(t *testing.T) {
			tb := newTestBench(t)
			db := createSiteDB(t, "faildb_"+hook)
			site := "fail-" + hook + ".test"
			tb.mustRun(t, db.newSiteArgs(site)...)
			paths := backupPaths(t, tb.Bench, tb.mustRun(t, "--site", site, "backup"))
			require.Len(t, paths, 2) // config and database, no files

			failFile := filepath.Join(tb.SitesDir(), site, failMigrateFile)
			if hook == "file" {
				require.NoError(t, os.WriteFile(failFile, nil, 0o644))
			} else {
				tb.env[envFailMigrate] = "1"
			}
			code, _, stderr := tb.run(t, "--site", site, "migrate")
			require.Equal(t, 1, code)
			require.Contains(t, stderr, "failed on purpose")
			require.Equal(t, 0, db.schemaVersion(t))

			tb.mustRun(t, "--site", site, "restore", paths["Database"])
			require.Equal(t, 2, db.schemaVersion(t))

			os.Remove(failFile)
			delete(tb.env, envFailMigrate)
			tb.mustRun(t, "--site", site, "migrate")
		})
	}
}

func TestNewSite_DatabaseUnreachable_FailsAndLeavesNoSiteFolder(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "wrongpw")
	db.password = "not-the-password"
	code, _, stderr := tb.run(t, db.newSiteArgs("broken.test")...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "connect to database wrongpw")
	require.NoDirExists(t, filepath.Join(tb.SitesDir(), "broken.test"))
}

func TestRestore_TruncatedDump_FailsBeforeTouchingTheDatabase(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "truncdb")
	tb.mustRun(t, db.newSiteArgs("trunc.test")...)
	paths := backupPaths(t, tb.Bench, tb.mustRun(t, "--site", "trunc.test", "backup"))
	data, err := os.ReadFile(paths["Database"])
	require.NoError(t, err)
	cut := filepath.Join(t.TempDir(), "cut.sql.gz")
	require.NoError(t, os.WriteFile(cut, data[:len(data)/2], 0o644))

	code, _, stderr := tb.run(t, "--site", "trunc.test", "restore", cut)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "check "+cut)
	require.Equal(t, 2, db.tableCount(t), "tables must be untouched")
}

func TestDropSite_Force_ArchivesEvenWhenTheDatabaseIsGone(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "gonedb")
	tb.mustRun(t, db.newSiteArgs("gone.test")...)
	db.srv.Exec(t, "DROP USER 'gonedb'@'%'")

	code, _, stderr := tb.run(t, "drop-site", "gone.test", "--no-backup")
	require.Equal(t, 1, code, stderr)
	require.DirExists(t, filepath.Join(tb.SitesDir(), "gone.test"))

	out := tb.mustRun(t, "drop-site", "gone.test", "--no-backup", "--force", "--archived-sites-path", "../archive")
	require.Contains(t, out, "Moved site gone.test")
	archived, err := filepath.Glob(filepath.Join(tb.Dir, "archive", "gone.test-*"))
	require.NoError(t, err)
	require.Len(t, archived, 1)
}

func TestCommands_InvalidSiteName_Refused(t *testing.T) {
	tb := newTestBench(t)
	for _, args := range [][]string{
		{"new-site", "../etc", "--db-name", "x", "--db-password", "y"},
		{"new-site", "Upper.test", "--db-name", "x", "--db-password", "y"},
		{"--site", "../../x", "migrate"},
		{"--site", "a..b", "backup"},
		{"--site", "-a.test", "restore", "x.sql.gz"},
		{"--site", "a/b", "set-maintenance-mode", "on"},
		{"drop-site", "a_b.test"},
	} {
		code, _, stderr := tb.run(t, args...)
		require.NotEqual(t, 0, code, args)
		require.Contains(t, stderr, "site name", args)
	}
}

func TestCommands_BadUsage_ExitTwoWithUsage(t *testing.T) {
	tb := newTestBench(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"migrate"},
		{"new-site", "a.test"},
		{"--site", "a.test", "set-maintenance-mode", "maybe"},
		{"--site", "a.test", "backup", "--with-flies"},
	} {
		code, _, stderr := tb.run(t, args...)
		require.Equal(t, 2, code, args)
		require.Contains(t, stderr, "usage:", args)
	}
}

func TestCommands_UnknownSite_Fails(t *testing.T) {
	tb := newTestBench(t)
	for _, args := range [][]string{
		{"--site", "none.test", "migrate"},
		{"--site", "none.test", "backup"},
		{"--site", "none.test", "set-maintenance-mode", "on"},
		{"drop-site", "none.test"},
	} {
		code, _, stderr := tb.run(t, args...)
		require.Equal(t, 1, code, args)
		require.Contains(t, stderr, "site does not exist", args)
	}
}

// The dump must load with the stock client too: the agent or a person may
// restore it without this binary.
func TestBackup_DumpLoadsWithTheMariadbClient(t *testing.T) {
	client, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("the mariadb client is not installed")
	}
	tb := newTestBench(t)
	db := createSiteDB(t, "clientdb")
	srv := tb.serve(t)
	tb.mustRun(t, db.newSiteArgs("client.test")...)
	value := "q'uo\"te\\ \n\x00 é"
	code, _ := request(t, srv, "client.test", http.MethodPut, "/api/resource/KV/k", value)
	require.Equal(t, http.StatusOK, code)
	paths := backupPaths(t, tb.Bench, tb.mustRun(t, "--site", "client.test", "backup"))

	target := createSiteDB(t, "clientcopy")
	f, err := os.Open(paths["Database"])
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	cmd := exec.Command(client, "--no-defaults", "--socket="+target.srv.Socket(), "--user=root", target.name)
	cmd.Stdin = zr
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))

	var got string
	require.NoError(t, target.srv.Root(t).QueryRowContext(context.Background(),
		"SELECT `value` FROM `clientcopy`.`tabKV` WHERE `name` = 'k'").Scan(&got))
	require.Equal(t, value, got)
}
