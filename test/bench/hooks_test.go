package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// argsWithoutPassword is db.newSiteArgs(site) without --db-password and its value.
func argsWithoutPassword(db siteDB, site string) []string {
	args := db.newSiteArgs(site)
	i := slices.Index(args, "--db-password")
	return slices.Delete(args, i, i+2)
}

func TestNewSite_PasswordFromEnvironment_NoneOnTheCommandLine(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "envpwdb")
	const site = "envpw.example.test"

	code, _, stderr := tb.run(t, argsWithoutPassword(db, site)...)
	require.Equal(t, 2, code, "no password anywhere is a usage error: %s", stderr)
	require.Contains(t, stderr, envDBPassword)
	require.NoDirExists(t, filepath.Join(tb.SitesDir(), site))

	tb.env[envDBPassword] = db.password
	out := tb.mustRun(t, argsWithoutPassword(db, site)...)
	require.Contains(t, out, "Site "+site+" created")
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(tb.SitesDir(), site, "site_config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	require.Equal(t, db.password, cfg["db_password"])
	require.Equal(t, 2, db.schemaVersion(t), "it connected with the password from the environment")
}

func TestHooks_FailNewSite_DiesHalfway_LeavesFolderAndTables(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "halfwaydb")
	const site = "halfway.example.test"
	require.NoError(t, os.MkdirAll(tb.SitesDir(), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tb.SitesDir(), failNewSiteFile), nil, 0o644))

	code, _, stderr := tb.run(t, db.newSiteArgs(site)...)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "failed on purpose")
	require.Contains(t, stderr, db.password, "a hostile bench prints the password; the agent must redact it")
	require.FileExists(t, filepath.Join(tb.SitesDir(), site, "site_config.json"), "left behind, as by a bench that died")
	require.Equal(t, 2, db.schemaVersion(t), "its tables are left too")
}

func TestHooks_FailBackupRestorePing_OnRequest(t *testing.T) {
	tb := newTestBench(t)
	db := createSiteDB(t, "hooksdb")
	const site = "hooks.example.test"
	tb.mustRun(t, db.newSiteArgs(site)...)
	srv := tb.serve(t)
	ping := func() int {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/method/ping", nil)
		require.NoError(t, err)
		req.Host = site
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusOK, ping())
	out := tb.mustRun(t, "--site", site, "backup")
	dump := backupPaths(t, tb.Bench, out)["Database"]
	require.NotEmpty(t, dump)

	siteDir := filepath.Join(tb.SitesDir(), site)
	require.NoError(t, os.WriteFile(filepath.Join(siteDir, failBackupFile), nil, 0o644))
	code, _, stderr := tb.run(t, "--site", site, "backup")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "backup "+site+": failed on purpose")
	require.Contains(t, stderr, db.password)

	require.NoError(t, os.WriteFile(filepath.Join(siteDir, failRestoreFile), nil, 0o644))
	code, _, stderr = tb.run(t, "--site", site, "restore", dump)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "restore "+site+": failed on purpose")

	require.NoError(t, os.WriteFile(filepath.Join(tb.SitesDir(), failPingFile), nil, 0o644))
	require.Equal(t, http.StatusInternalServerError, ping())
	require.NoError(t, os.Remove(filepath.Join(tb.SitesDir(), failPingFile)))
	require.Equal(t, http.StatusOK, ping(), "the hook is read on every request")
}

func TestHooks_FailServe_ExitsAtOnce(t *testing.T) {
	tb := newTestBench(t)
	require.NoError(t, os.MkdirAll(tb.SitesDir(), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tb.SitesDir(), failServeFile), nil, 0o644))
	code, _, stderr := tb.run(t, "serve", "--port", "0")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "fails on purpose")
}
