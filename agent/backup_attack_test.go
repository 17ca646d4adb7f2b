package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/hybridsuite/hybrid/agent/agentapi"
	"github.com/hybridsuite/hybrid/agent/backup"
	"github.com/hybridsuite/hybrid/test/bench/benchimage"
)

// backupFixture is a running agent (in process, real Docker, MariaDB, nginx
// and in-process S3) with one bench and one site.
type backupFixture struct {
	env         siteEnv
	api         apiClient
	root        string
	bench, site string
}

func (f backupFixture) siteDir() string {
	return filepath.Join(f.root, "benches", f.bench, "sites", f.site)
}

func (f backupFixture) backupsDir() string { return filepath.Join(f.siteDir(), "private", "backups") }

func (f backupFixture) sitePath(action string) string {
	return "/benches/" + f.bench + "/sites/" + f.site + action
}

func (f backupFixture) s3(t *testing.T) *minio.Client {
	mc, err := minio.New(strings.TrimPrefix(f.env.s3URL, "http://"), &minio.Options{Creds: credentials.NewStaticV4("AKIDTEST", "secret-key-test", "")})
	require.NoError(t, err)
	return mc
}

func newBackupFixture(t *testing.T, prefix, site string) backupFixture {
	t.Helper()
	env := newSiteEnv(t)
	// The stand-in's test hooks (backup_summary, slow_backup) are this
	// tree's: an image of our own, not the shared tag.
	env.image = benchimage.BuildAs(context.Background(), t, env.cli, "hybrid-test/bench:backup-hooks")
	bench := fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e9)
	env.removeBench(t, bench)
	logs := &syncBuffer{}
	a, err := New(env.cfg, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	metricsL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	apiL, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, metricsL, apiL) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		if t.Failed() {
			t.Logf("agent log:\n%s", tailString(logs.String(), 8000))
		}
	})
	token, err := os.ReadFile(filepath.Join(env.cfg.Root, "agent", "api-token"))
	require.NoError(t, err)
	api := apiClient{t: t, base: "http://" + apiL.Addr().String(), token: strings.TrimSpace(string(token))}
	api.run("/benches", agentapi.NewBench{Name: bench, Image: env.image})
	api.run("/benches/"+bench+"/sites", agentapi.NewSite{Name: site})
	return backupFixture{env: env, api: api, root: env.cfg.Root, bench: bench, site: site}
}

// filesHolding lists the regular files under dir whose content holds s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, _ := os.ReadFile(p)
		if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
			var out bytes.Buffer
			out.ReadFrom(zr)
			data = append(data, out.Bytes()...)
		}
		if bytes.Contains(data, []byte(s)) {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// A bench that plants a link to a root-only file in its backups folder and
// names it in its backup summary gets a failed job, and nothing of the file.
func TestBackup_LinkToRootSecretInBackupsFolder_JobFailsNoCopy(t *testing.T) {
	f := newBackupFixture(t, "ba", "attack.example.com")
	secretFile := f.env.cfg.Sites.AdminCredentialsFile // the agent's mariadb-admin.cnf, 0600 root
	const secret = "admin-secret"
	data, err := os.ReadFile(secretFile)
	require.NoError(t, err)
	require.Contains(t, string(data), secret)
	slug := strings.ReplaceAll(f.site, ".", "_")
	summary := filepath.Join(f.siteDir(), "backup_summary")

	for i, tc := range []struct {
		name  string
		plant func(target, link string) error
		want  string
	}{
		{"symlink", os.Symlink, "symlink"},
		{"hard link", os.Link, "hard link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("2026010%d_000000-%s-database.sql.gz", i+1, slug)
			require.NoError(t, tc.plant(secretFile, filepath.Join(f.backupsDir(), name)))
			require.NoError(t, os.WriteFile(summary, []byte(fmt.Sprintf(
				"Backup Summary for %s\nDatabase: ./%s/private/backups/%s 1.0KiB\nBackup for Site %s has been successfully completed\n",
				f.site, f.site, name, f.site)), 0o644))
			t.Cleanup(func() { os.Remove(summary) })

			job := f.api.runFailing(f.sitePath("/backup"), agentapi.Backup{Offsite: true})
			require.Contains(t, job.Error, "unsafe file")
			require.Contains(t, job.Error, tc.want)
			require.Contains(t, job.Error, name)

			// No copy of the secret under the site's folder (the planted link
			// is removed with what the backup left) nor offsite.
			require.Empty(t, filesHolding(t, f.siteDir(), secret))
			require.NoFileExists(t, filepath.Join(f.backupsDir(), name))
			for obj := range f.s3(t).ListObjects(context.Background(), "backups", minio.ListObjectsOptions{Prefix: f.site + "/", Recursive: true}) {
				require.NoError(t, obj.Err)
				t.Errorf("offsite object %s after a refused backup", obj.Key)
			}
			var res struct {
				Leftovers backup.Leftovers `json:"bench_leftovers"`
			}
			require.NoError(t, json.Unmarshal(job.Result, &res))
			require.Contains(t, res.Leftovers.Removed, name, "the job's result names what it removed")

			// The secret is as it was: not given away through the link.
			fi, err := os.Lstat(secretFile)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			require.EqualValues(t, 0, fi.Sys().(*syscall.Stat_t).Uid)
			require.EqualValues(t, 1, fi.Sys().(*syscall.Stat_t).Nlink)
		})
	}

	// An honest backup still works, and is sealed read-only to the bench.
	job := f.api.run(f.sitePath("/backup"), agentapi.Backup{WithFiles: true})
	var res backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &res))
	fi, err := os.Stat(res.Dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o750), fi.Mode().Perm())
	require.EqualValues(t, 0, fi.Sys().(*syscall.Stat_t).Uid)
	require.EqualValues(t, 1000, fi.Sys().(*syscall.Stat_t).Gid)
	for _, file := range res.Files {
		fi, err := os.Stat(filepath.Join(res.Dir, file.Name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), file.Name)
		require.EqualValues(t, 0, fi.Sys().(*syscall.Stat_t).Uid, file.Name)
	}
	// The bench can still read it: restore works.
	f.api.run(f.sitePath("/restore"), agentapi.Restore{Path: filepath.Base(res.Dir)})
}

// A backup cancelled while the bench is still writing leaves nothing
// unsealed in the backups folder, and its result names what was removed.
func TestBackup_CancelledMidway_LeftoversRemovedAndNamed(t *testing.T) {
	f := newBackupFixture(t, "bc", "cancel.example.com")
	require.NoError(t, os.WriteFile(filepath.Join(f.siteDir(), "slow_backup"), []byte("15"), 0o644))
	code, body := f.api.do(http.MethodPost, f.sitePath("/backup"), agentapi.Backup{WithFiles: true}, "cancel-me")
	require.Equal(t, http.StatusAccepted, code, string(body))

	// The bench has written its dump and sleeps.
	var dump string
	require.Eventually(t, func() bool {
		matches, _ := filepath.Glob(filepath.Join(f.backupsDir(), "*-database.sql.gz"))
		if len(matches) == 1 {
			dump = filepath.Base(matches[0])
			return true
		}
		return false
	}, time.Minute, 100*time.Millisecond, "the bench writes its dump")
	code, body = f.api.do(http.MethodPost, "/jobs/cancel-me/cancel", nil, "")
	require.Less(t, code, 300, string(body))

	var job agentapi.Job
	var res struct {
		Leftovers *backup.Leftovers `json:"bench_leftovers"`
	}
	// The cleanup runs once the bench command has ended: at once when the
	// runtime kills it, or when it finishes on its own.
	require.Eventually(t, func() bool {
		_, data := f.api.do(http.MethodGet, "/jobs/cancel-me", nil, "")
		var list []agentapi.Job
		require.NoError(t, json.Unmarshal(data, &list))
		job = list[0]
		res.Leftovers = nil
		json.Unmarshal(job.Result, &res)
		return job.Status.Ended() && res.Leftovers != nil
	}, time.Minute, 200*time.Millisecond, "the job ends and its result names the leftovers")
	require.Equal(t, agentapi.Failure, job.Status)
	require.Contains(t, job.Error, "cancelled")
	require.Contains(t, res.Leftovers.Removed, dump)
	entries, err := os.ReadDir(f.backupsDir())
	require.NoError(t, err)
	for _, e := range entries {
		t.Errorf("left in the backups folder after the cancelled backup: %s", e.Name())
	}
}

// A bench whose backup prints tens of megabytes before its summary gets its
// backup sealed: the agent reads the summary from the output's tail (before,
// it kept the whole output in memory, as much as the bench printed).
func TestBackup_BenchPrintsMegabytesBeforeSummary_SummaryFoundBackupSealed(t *testing.T) {
	f := newBackupFixture(t, "bo", "loud.example.com")
	slug := strings.ReplaceAll(f.site, ".", "_")
	name := "20260102_030405-" + slug + "-database.sql.gz"
	var dump bytes.Buffer
	zw := gzip.NewWriter(&dump)
	zw.Write([]byte("-- a dump\n"))
	require.NoError(t, zw.Close())
	path := filepath.Join(f.backupsDir(), name)
	require.NoError(t, os.WriteFile(path, dump.Bytes(), 0o640))
	require.NoError(t, os.Chown(path, 1000, 1000))

	var out bytes.Buffer
	line := strings.Repeat("\x1b[31mnoise \xff\xfe", 10) + "\n"
	for out.Len() < 32<<20 {
		out.WriteString(line)
	}
	fmt.Fprintf(&out, "Backup Summary for %s\nDatabase: ./%s/private/backups/%s 1.0KiB\n", f.site, f.site, name)
	summary := filepath.Join(f.siteDir(), "backup_summary")
	require.NoError(t, os.WriteFile(summary, out.Bytes(), 0o644))
	t.Cleanup(func() { os.Remove(summary) })

	job := f.api.run(f.sitePath("/backup"), agentapi.Backup{})
	var res backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.Equal(t, "20260102_030405", filepath.Base(res.Dir))
	require.Len(t, res.Files, 1)
	for _, s := range job.Steps {
		// The tail is kept, made valid UTF-8 (a bad byte takes 3).
		require.LessOrEqual(t, len(s.Output), 3*(64<<10), "a step keeps its output's tail")
		require.True(t, utf8.ValidString(s.Output))
	}
}

// A bench can write its backups folder, so it can make up a backup there: a
// folder with a manifest and files, newer than every real one. A prune
// counts only backups the agent sealed: the made-up one does not push the
// real one out (before, the agent deleted the real backup and kept the
// bench's).
func TestBackup_PruneWithBackupMadeUpByBench_RealBackupKept(t *testing.T) {
	f := newBackupFixture(t, "bp", "prune.example.com")
	job := f.api.run(f.sitePath("/backup"), agentapi.Backup{})
	var real backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &real))

	// The bench's copy of it under a newer id, owned by the bench.
	const fakeID = "20991231_235959"
	fake := filepath.Join(f.backupsDir(), fakeID)
	require.NoError(t, os.Mkdir(fake, 0o755))
	for _, file := range real.Files {
		data, err := os.ReadFile(filepath.Join(real.Dir, file.Name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(fake, file.Name), data, 0o644))
	}
	raw, err := os.ReadFile(filepath.Join(real.Dir, backup.ManifestName))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	m["id"] = fakeID
	raw, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(fake, backup.ManifestName), raw, 0o644))
	require.NoError(t, filepath.Walk(fake, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, 1000, 1000)
	}))

	one, zero, no := 1, 0, false
	job = f.api.run(f.sitePath("/backups/prune"), agentapi.PruneBackups{KeepLast: &one, KeepDays: &zero, Offsite: &no})
	var res agentapi.PruneResult
	require.NoError(t, json.Unmarshal(job.Result, &res))
	require.Empty(t, res.Local.Deleted)
	require.Equal(t, []string{filepath.Base(real.Dir)}, res.Local.Kept)
	_, err = backup.Verify(context.Background(), real.Dir)
	require.NoError(t, err, "the real backup is there, whole")
}

// The bench can move a sealed backup from one of its sites' backups folder
// to another's; a restore refuses a backup of another site.
func TestRestore_SealedBackupOfAnotherSiteMovedIn_Refused(t *testing.T) {
	f := newBackupFixture(t, "bm", "from.example.com")
	other := "into.example.com"
	f.api.run("/benches/"+f.bench+"/sites", agentapi.NewSite{Name: other})
	job := f.api.run(f.sitePath("/backup"), agentapi.Backup{})
	var res backup.Result
	require.NoError(t, json.Unmarshal(job.Result, &res))
	otherBackups := filepath.Join(f.root, "benches", f.bench, "sites", other, "private", "backups")
	require.NoError(t, os.MkdirAll(otherBackups, 0o755))
	moved := filepath.Join(otherBackups, filepath.Base(res.Dir))
	require.NoError(t, os.Rename(res.Dir, moved))

	job = f.api.runFailing("/benches/"+f.bench+"/sites/"+other+"/restore", agentapi.Restore{Path: filepath.Base(moved)})
	require.Contains(t, job.Error, "is of site "+f.site+", not of "+other)
	require.Contains(t, job.Error, "step check free disk", "refused before maintenance mode and the pre-restore backup")
}
