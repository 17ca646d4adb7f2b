package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
)

// A restore that fails inside `bench restore`, after the bench dropped the
// site's tables, falls back to the pre-restore backup: the records are as
// before, the site is in service, and the job's error names that backup.
func TestRestore_FailsInsideBenchRestore_PreRestoreBackupRestored(t *testing.T) {
	f := newBackupFixture(t, "rs", "restore.example.com")
	ctx := context.Background()
	records := map[string]string{"alpha": "one", "beta": "two"}
	for k, v := range records {
		code, body := siteGet(t, f.env.nginxAddr, f.site, http.MethodPut, "/api/resource/KV/"+k, v)
		require.Equal(t, http.StatusOK, code, body)
	}

	// A sealed backup with a valid manifest whose dump breaks halfway: the
	// bench drops the tables, then fails on the second statement.
	const id = "20000101_000000"
	dump := filepath.Join(f.backupsDir(), id+"-"+strings.ReplaceAll(f.site, ".", "_")+"-database.sql.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("DROP TABLE IF EXISTS `tabKV`;\nTHIS IS NOT SQL;\n"))
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(dump, buf.Bytes(), 0o640))
	_, err := backup.Seal(ctx, f.site, []string{dump}, f.backupsDir())
	require.NoError(t, err)

	job := f.api.runFailing(f.sitePath("/restore"), agentapi.Restore{Path: id})
	var res struct {
		Pre backup.Result `json:"pre_restore_backup"`
	}
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.NotEmpty(t, res.Pre.Dir)
	require.Contains(t, job.Error, "pre-restore backup "+res.Pre.Dir+" was restored")
	require.Contains(t, job.Error, "back in service")
	_, err = backup.Verify(ctx, res.Pre.Dir)
	require.NoError(t, err)

	for k, v := range records {
		code, body := siteGet(t, f.env.nginxAddr, f.site, http.MethodGet, "/api/resource/KV/"+k, "")
		require.Equal(t, http.StatusOK, code, "record %s after the failed restore: %s", k, body)
		require.Contains(t, body, v)
	}
	code, _ := siteGet(t, f.env.nginxAddr, f.site, http.MethodGet, "/api/method/ping", "")
	require.Equal(t, http.StatusOK, code, "maintenance mode is off again")

	// Both places were checked for free space.
	var check string
	for _, s := range job.Steps {
		if s.Name == "check free disk" {
			check = s.Output
		}
	}
	require.Contains(t, check, "MariaDB's data directory")
	require.NotContains(t, check, "not checked")
}

// Prune keeps the newest backups by the policy, deletes the others locally
// and offsite, never touches an unsealed folder nor follows a link, and says
// exactly what it did.
func TestPruneBackups_KeepLastTwo_DeletesOthersLocallyAndOffsite(t *testing.T) {
	f := newBackupFixture(t, "pr", "prune.example.com")
	ctx := context.Background()
	var made []string
	for range 4 {
		job := f.api.run(f.sitePath("/backup"), agentapi.Backup{Offsite: true})
		var res struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(job.Result, &res))
		made = append(made, res.ID)
		time.Sleep(1100 * time.Millisecond) // the bench names backups by the second
	}
	// A backup being written (no manifest yet), and a link planted in an
	// old backup to a folder that must survive.
	unsealed := filepath.Join(f.backupsDir(), "20000101_000000")
	require.NoError(t, os.Mkdir(unsealed, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(unsealed, "partial"), []byte("x"), 0o640))
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "precious"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(f.backupsDir(), made[0], "link")))

	// Nothing to delete with the default policy (all are younger than 7 days).
	job := f.api.run(f.sitePath("/backups/prune"), nil)
	var res agentapi.PruneResult
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.Empty(t, res.Local.Deleted)
	require.Equal(t, made, res.Local.Kept)

	job = f.api.run(f.sitePath("/backups/prune"), map[string]any{"keep_last": 2, "keep_days": 0})
	res = agentapi.PruneResult{}
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.Equal(t, made[:2], res.Local.Deleted)
	require.Equal(t, made[2:], res.Local.Kept)
	require.NotNil(t, res.Offsite)
	require.Len(t, res.Offsite.Deleted, 2)
	require.Len(t, res.Offsite.Kept, 2)
	for i, p := range res.Offsite.Deleted {
		require.True(t, strings.HasSuffix(p, "/"+made[i]), p)
	}

	listed, err := backup.List(f.backupsDir())
	require.NoError(t, err)
	require.Len(t, listed, 2)
	require.Equal(t, made[2], listed[0].ID)
	require.DirExists(t, unsealed, "an unsealed folder is never pruned")
	require.FileExists(t, filepath.Join(unsealed, "partial"))
	require.FileExists(t, filepath.Join(outside, "precious"), "a link is removed, not followed")

	var keys []string
	for obj := range f.s3(t).ListObjects(ctx, "backups", minio.ListObjectsOptions{Prefix: f.site + "/", Recursive: true}) {
		require.NoError(t, obj.Err)
		keys = append(keys, obj.Key)
	}
	for _, k := range keys {
		require.NotContains(t, k, made[0])
		require.NotContains(t, k, made[1])
	}
	for _, id := range made[2:] {
		found := false
		for _, k := range keys {
			found = found || strings.HasSuffix(k, id+"/"+backup.ManifestName)
		}
		require.True(t, found, "offsite backup %s is kept", id)
	}
}
