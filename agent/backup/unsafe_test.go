package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

const secretText = "password = root-only-secret-0600"

// rootSecret is a root-only file outside the bench's reach, gzipped so it
// would pass as a database dump: what a bench would love to read.
func rootSecret(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(secretText))
	require.NoError(t, zw.Close())
	p := filepath.Join(t.TempDir(), "mariadb-admin.cnf.gz")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))
	return p
}

// benchWritable makes dir look like a bench's folder: others can write it,
// so a link there is the bench's.
func benchWritable(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.Chmod(dir, 0o777))
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(dir, 1000, 1000))
	}
}

// noSecretUnder fails if any regular file under dir holds the secret.
func noSecretUnder(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, _ := os.ReadFile(p)
		assert.NotContains(t, string(gunzipBytes(data)), secretText, "a copy of the secret at %s", p)
		assert.NotContains(t, string(data), secretText, "a copy of the secret at %s", p)
		return nil
	})
}

func gunzipBytes(b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	var out bytes.Buffer
	out.ReadFrom(zr)
	return out.Bytes()
}

func secretUnchanged(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the secret's mode is not changed through the link")
	assert.EqualValues(t, os.Geteuid(), fi.Sys().(*syscall.Stat_t).Uid, "the secret's owner is not changed through the link")
}

func TestSeal_SymlinkToRootFile_RefusedNoCopy(t *testing.T) {
	secret := rootSecret(t)
	backups := filepath.Join(t.TempDir(), "backups")
	files := benchBackup(t, backups, testSite, testID)
	benchWritable(t, backups)
	require.NoError(t, os.Remove(files[0]))
	require.NoError(t, os.Symlink(secret, files[0]))

	_, err := Seal(context.Background(), testSite, files, backups)
	require.ErrorIs(t, err, ErrUnsafe)
	assert.Contains(t, err.Error(), filepath.Base(files[0]))
	assert.Contains(t, err.Error(), "symlink")
	assert.NoFileExists(t, filepath.Join(backups, testID, ManifestName))
	noSecretUnder(t, backups)
	secretUnchanged(t, secret)
}

func TestSeal_HardLinkToRootFile_RefusedNoCopy(t *testing.T) {
	secret := rootSecret(t)
	backups := filepath.Join(filepath.Dir(secret), "backups") // same filesystem
	files := benchBackup(t, backups, testSite, testID)
	benchWritable(t, backups)
	require.NoError(t, os.Remove(files[0]))
	require.NoError(t, os.Link(secret, files[0]))

	_, err := Seal(context.Background(), testSite, files, backups)
	require.ErrorIs(t, err, ErrUnsafe)
	assert.Contains(t, err.Error(), "hard link")
	assert.NoFileExists(t, filepath.Join(backups, testID, ManifestName))
	// The one copy is the link the bench made; the sealed folder has none.
	noSecretUnder(t, filepath.Join(backups, testID))
	secretUnchanged(t, secret)
}

func TestSeal_FIFOAndFolder_RefusedWithoutBlocking(t *testing.T) {
	for name, plant := range map[string]func(string) error{
		"fifo":   func(p string) error { return unix.Mkfifo(p, 0o644) },
		"folder": func(p string) error { return os.Mkdir(p, 0o755) },
	} {
		t.Run(name, func(t *testing.T) {
			backups := filepath.Join(t.TempDir(), "backups")
			files := benchBackup(t, backups, testSite, testID)
			require.NoError(t, os.Remove(files[1]))
			require.NoError(t, plant(files[1]))
			done := make(chan error, 1)
			go func() {
				_, err := Seal(context.Background(), testSite, files, backups)
				done <- err
			}()
			select {
			case err := <-done:
				require.ErrorIs(t, err, ErrUnsafe)
				assert.Contains(t, err.Error(), filepath.Base(files[1]))
			case <-time.After(10 * time.Second):
				t.Fatal("Seal blocked on a planted " + name)
			}
			assert.NoFileExists(t, filepath.Join(backups, testID, ManifestName))
		})
	}
}

func TestSeal_SymlinkedParentFolder_Refused(t *testing.T) {
	base := t.TempDir()
	site := filepath.Join(base, "sites", testSite)
	elsewhere := filepath.Join(base, "elsewhere")
	benchBackup(t, filepath.Join(elsewhere, "backups"), testSite, testID)
	require.NoError(t, os.MkdirAll(site, 0o755))
	benchWritable(t, site)
	// The bench swapped its private folder for a link to a folder of root's.
	require.NoError(t, os.Symlink(elsewhere, filepath.Join(site, "private")))
	backups := filepath.Join(site, "private", "backups")
	entries, err := os.ReadDir(backups)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, filepath.Join(backups, e.Name()))
	}

	_, err = Seal(context.Background(), testSite, files, backups)
	require.ErrorIs(t, err, ErrUnsafe)
	assert.Contains(t, err.Error(), "private")
	assert.NoDirExists(t, filepath.Join(elsewhere, "backups", testID), "nothing is written through the link")

	_, err = List(backups)
	require.ErrorIs(t, err, ErrUnsafe)

	// A sealed backup reached through the link is refused too.
	real := filepath.Join(elsewhere, "backups")
	var realFiles []string
	for _, f := range files {
		realFiles = append(realFiles, filepath.Join(real, filepath.Base(f)))
	}
	m, err := Seal(context.Background(), testSite, realFiles, real)
	require.NoError(t, err, "sealed where it really is")
	_, err = Verify(context.Background(), filepath.Join(backups, m.ID))
	require.ErrorIs(t, err, ErrUnsafe)
	require.ErrorIs(t, RemoveLocal(backups, m.ID), ErrUnsafe)
	assert.DirExists(t, m.Dir)
}

func TestSeal_SymlinkInRootOnlyFolder_Followed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a folder only root writes needs root")
	}
	// An operator's link (/home -> /data/home) is in a folder only root can
	// write: it is followed.
	base := t.TempDir()
	real := filepath.Join(base, "real")
	require.NoError(t, os.Mkdir(real, 0o755))
	require.NoError(t, os.Symlink(real, filepath.Join(base, "home")))
	backups := filepath.Join(base, "home", "backups")
	files := benchBackup(t, backups, testSite, testID)
	m, err := Seal(context.Background(), testSite, files, backups)
	require.NoError(t, err)
	_, err = Verify(context.Background(), m.Dir)
	require.NoError(t, err)
}

func TestSeal_SealedBackup_ReadOnlyToTheBench(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners are set as root only")
	}
	backups := filepath.Join(t.TempDir(), "backups")
	files := benchBackup(t, backups, testSite, testID)
	require.NoError(t, os.Chown(backups, 1000, 1000))
	m, err := Seal(context.Background(), testSite, files, backups)
	require.NoError(t, err)
	check := func(p string, mode os.FileMode) {
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		assert.EqualValues(t, 0, st.Uid, p)
		assert.EqualValues(t, 1000, st.Gid, "%s: readable by the bench's group", p)
		assert.Equal(t, mode, fi.Mode().Perm(), p)
	}
	check(m.Dir, 0o750)
	check(filepath.Join(m.Dir, ManifestName), 0o640)
	for _, f := range m.Files {
		check(filepath.Join(m.Dir, f.Name), 0o640)
	}
}

func TestVerify_RefusesLinksAndWhatTheBenchOwns(t *testing.T) {
	cases := map[string]func(t *testing.T, m Manifest) string{
		"file is a symlink to an identical copy": func(t *testing.T, m Manifest) string {
			p := filepath.Join(m.Dir, m.Files[0].Name)
			cp := filepath.Join(t.TempDir(), "copy")
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(cp, data, 0o600))
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.Symlink(cp, p))
			return m.Dir
		},
		"file is hard linked": func(t *testing.T, m Manifest) string {
			p := filepath.Join(m.Dir, m.Files[0].Name)
			require.NoError(t, os.Link(p, filepath.Join(filepath.Dir(m.Dir), "extra-link")))
			return m.Dir
		},
		"backup folder is a symlink in the bench's folder": func(t *testing.T, m Manifest) string {
			backups := filepath.Dir(m.Dir)
			benchWritable(t, backups)
			moved := filepath.Join(t.TempDir(), "moved")
			require.NoError(t, os.Rename(m.Dir, moved))
			require.NoError(t, os.Symlink(moved, m.Dir))
			return m.Dir
		},
		"manifest is a symlink": func(t *testing.T, m Manifest) string {
			p := filepath.Join(m.Dir, ManifestName)
			cp := filepath.Join(t.TempDir(), "manifest")
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(cp, data, 0o600))
			require.NoError(t, os.Remove(p))
			require.NoError(t, os.Symlink(cp, p))
			return m.Dir
		},
	}
	if os.Geteuid() == 0 {
		cases["folder rewritten by the bench"] = func(t *testing.T, m Manifest) string {
			require.NoError(t, os.Chown(m.Dir, 1000, 1000))
			return m.Dir
		}
		cases["file writable by the bench's group"] = func(t *testing.T, m Manifest) string {
			require.NoError(t, os.Chmod(filepath.Join(m.Dir, m.Files[1].Name), 0o660))
			return m.Dir
		}
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			m, _ := sealTestBackup(t)
			dir := tamper(t, m)
			_, err := Verify(context.Background(), dir)
			require.ErrorIs(t, err, ErrUnsafe)
		})
	}
}

func TestList_LeavesOutLinkedBackups(t *testing.T) {
	m, backups := sealTestBackup(t)
	other := filepath.Join(t.TempDir(), testID)
	require.NoError(t, os.Rename(m.Dir, other))
	require.NoError(t, os.Symlink(other, m.Dir))
	listed, err := List(backups)
	require.NoError(t, err)
	assert.Empty(t, listed)
}

func TestVerify_SealedFolderRenamed_Refused(t *testing.T) {
	m, backups := sealTestBackup(t)
	renamed := filepath.Join(backups, "20250102_030406")
	require.NoError(t, os.Rename(m.Dir, renamed))
	_, err := Verify(context.Background(), renamed)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), testID)
}

func TestOffsite_Download_DestinationIsABenchSymlink_NothingWrittenThroughIt(t *testing.T) {
	ctx := context.Background()
	o := newTestOffsite(t, newFakeS3(t), nil)
	m, _ := sealTestBackup(t)
	require.NoError(t, o.Upload(ctx, m, m.Dir))

	backups := filepath.Join(t.TempDir(), "restore", "backups")
	require.NoError(t, os.MkdirAll(backups, 0o755))
	benchWritable(t, backups)
	target := t.TempDir() // a folder of root's, e.g. /etc
	require.NoError(t, os.Symlink(target, filepath.Join(backups, testID)))

	_, err := o.Download(ctx, testSite, o.Prefix(m), filepath.Join(backups, testID))
	require.ErrorIs(t, err, ErrUnsafe)
	entries, err := os.ReadDir(target)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing is written through the link")

	// With the bench's folder itself a link, likewise.
	site := filepath.Join(t.TempDir(), "site")
	require.NoError(t, os.MkdirAll(site, 0o755))
	benchWritable(t, site)
	require.NoError(t, os.Symlink(target, filepath.Join(site, "backups")))
	_, err = o.Download(ctx, testSite, o.Prefix(m), filepath.Join(site, "backups", testID))
	require.ErrorIs(t, err, ErrUnsafe)
	entries, err = os.ReadDir(target)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing is written through the link")
}
