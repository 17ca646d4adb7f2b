package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSeal_BenchBackup_ManifestMatchesFiles(t *testing.T) {
	backups := filepath.Join(t.TempDir(), "backups")
	files := benchBackup(t, backups, testSite, testID)
	dbBefore, err := os.ReadFile(files[0])
	require.NoError(t, err)
	tarBefore, err := os.ReadFile(files[1])
	require.NoError(t, err)

	m, err := Seal(context.Background(), testSite, files, backups)
	require.NoError(t, err)

	dir := filepath.Join(backups, testID)
	assert.Equal(t, dir, m.Dir)
	assert.Equal(t, testSite, m.Site)
	assert.Equal(t, testID, m.ID)
	slug := testID + "-site1_example_com"
	var names []string
	var total int64
	for _, f := range m.Files {
		names = append(names, f.Name)
		sum, size := fileSHA256(t, filepath.Join(dir, f.Name))
		assert.Equal(t, sum, f.SHA256, f.Name)
		assert.Equal(t, size, f.Size, f.Name)
		total += size
	}
	assert.Equal(t, []string{slug + "-database.sql.gz", slug + "-files.tar.gz", slug + "-private-files.tar.gz"}, names)
	assert.Equal(t, total, m.Size)
	for _, f := range files {
		assert.NoFileExists(t, f, "the bench's file is moved or replaced by its .gz")
	}

	// The database dump is moved as is; the tars are compressed losslessly.
	got, err := os.ReadFile(filepath.Join(dir, names[0]))
	require.NoError(t, err)
	assert.Equal(t, dbBefore, got)
	assert.Equal(t, tarBefore, gunzip(t, filepath.Join(dir, names[1])))
	assert.Equal(t, int64(len(tarBefore)), m.Files[1].UncompressedSize)
	assert.Equal(t, int64(3000*34+70_000), m.Files[0].UncompressedSize)

	// The manifest on disk is the one returned.
	onDisk, err := Verify(context.Background(), dir)
	require.NoError(t, err)
	assert.Equal(t, m.Files, onDisk.Files)
	assert.True(t, m.CreatedAt.Equal(onDisk.CreatedAt))

	listed, err := List(backups)
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, testID, listed[0].ID)
}

func TestSeal_SecondRun_ReturnsSameManifest(t *testing.T) {
	m, backups := sealTestBackup(t)
	files := []string{filepath.Join(backups, testID+"-site1_example_com-database.sql.gz")}
	again, err := Seal(context.Background(), testSite, files, backups)
	require.NoError(t, err)
	assert.Equal(t, m.Files, again.Files)
}

func TestSeal_InterruptedMidway_FolderNotListedThenResumes(t *testing.T) {
	backups := filepath.Join(t.TempDir(), "backups")
	files := benchBackup(t, backups, testSite, testID)
	// A crash after the dump was moved and before the tars were compressed.
	dir := filepath.Join(backups, testID)
	require.NoError(t, os.Mkdir(dir, 0o750))
	require.NoError(t, os.Rename(files[0], filepath.Join(dir, filepath.Base(files[0]))))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".x-files.tar.gz.tmp-123"), []byte("half"), 0o600))

	listed, err := List(backups)
	require.NoError(t, err)
	assert.Empty(t, listed, "a folder without manifest is not a backup")
	_, err = Verify(context.Background(), dir)
	require.ErrorIs(t, err, ErrIncomplete)

	m, err := Seal(context.Background(), testSite, files, backups)
	require.NoError(t, err)
	require.Len(t, m.Files, 3)
	_, err = Verify(context.Background(), dir)
	require.NoError(t, err)
	listed, err = List(backups)
	require.NoError(t, err)
	assert.Len(t, listed, 1)
}

func TestVerify_FlippedByte_FailsNamingTheFile(t *testing.T) {
	m, _ := sealTestBackup(t)
	victim := m.Files[2]
	path := filepath.Join(m.Dir, victim.Name)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(data)/2] ^= 0x01
	require.NoError(t, os.WriteFile(path, data, 0o644))

	_, err = Verify(context.Background(), m.Dir)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), victim.Name)
	assert.NotContains(t, err.Error(), m.Files[0].Name, "only the bad file is named")
}

func TestVerify_MissingFile_Incomplete(t *testing.T) {
	m, backups := sealTestBackup(t)
	require.NoError(t, os.Remove(filepath.Join(m.Dir, m.Files[1].Name)))
	_, err := Verify(context.Background(), m.Dir)
	require.ErrorIs(t, err, ErrIncomplete)
	assert.Contains(t, err.Error(), m.Files[1].Name)
	listed, err := List(backups)
	require.NoError(t, err)
	assert.Empty(t, listed)
}

func TestSeal_TruncatedDump_FailsWithoutManifest(t *testing.T) {
	backups := filepath.Join(t.TempDir(), "backups")
	files := benchBackup(t, backups, testSite, testID)
	data, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(files[0], data[:len(data)-100], 0o644))

	_, err = Seal(context.Background(), testSite, files, backups)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.NoFileExists(t, filepath.Join(backups, testID, ManifestName))
}

func TestSeal_RejectsNamesThatAreNotThisSitesBackup(t *testing.T) {
	backups := filepath.Join(t.TempDir(), "backups")
	files := benchBackup(t, backups, testSite, testID)
	other := benchBackup(t, backups, "other.example.com", "20250102_030406")
	for name, tc := range map[string]struct {
		site  string
		files []string
	}{
		"bad site":      {"../etc", files},
		"upper case":    {"Site1.example.com", files},
		"other site":    {testSite, other[:1]},
		"two backups":   {testSite, []string{files[0], strings.Replace(other[0], "other_example_com", "site1_example_com", 1)}},
		"no timestamp":  {testSite, []string{filepath.Join(backups, "latest-site1_example_com-database.sql.gz")}},
		"hidden file":   {testSite, []string{filepath.Join(backups, ".20250102_030405-site1_example_com-x")}},
		"no files":      {testSite, nil},
		"manifest name": {testSite, []string{filepath.Join(backups, ManifestName)}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Seal(context.Background(), tc.site, tc.files, backups)
			require.Error(t, err)
		})
	}
}

func TestManifest_EscapingFileName_Rejected(t *testing.T) {
	m, backups := sealTestBackup(t)
	m.Files[0].Name = "../../../../etc/passwd"
	data, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(m.Dir, ManifestName), data, 0o640))

	_, err = Verify(context.Background(), m.Dir)
	require.ErrorIs(t, err, ErrInvalidName)
	listed, err := List(backups)
	require.NoError(t, err)
	assert.Empty(t, listed)
}

func TestValidateSite(t *testing.T) {
	for _, ok := range []string{"site1.local", "erp.example-co.com", strings.Repeat("a", 63) + ".com"} {
		assert.NoError(t, ValidateSite(ok), ok)
	}
	// one label ("a") and IP literals are no site names (agent/names, for every layer)
	for _, bad := range []string{"a", "10.0.0.1", "", ".", "..", "a/b", "a..b", "-a.com", "a-.com", "A.com", "a_b.com", "a.com.", strings.Repeat("a", 64) + ".com", "a b", "a\x00b"} {
		assert.ErrorIs(t, ValidateSite(bad), ErrInvalidName, "%q", bad)
	}
}

func TestResult_CarriesTheMetricsContract(t *testing.T) {
	m, _ := sealTestBackup(t)
	r := m.Result()
	r.OffsitePrefix = "site1.example.com/2025-01-02/" + testID
	data, err := json.Marshal(r)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(data, &got))
	assert.Equal(t, testSite, got["site"])
	assert.Equal(t, float64(m.Size), got["size_bytes"])
	assert.Equal(t, m.Dir, got["dir"])
	assert.Equal(t, r.OffsitePrefix, got["offsite_prefix"])
	assert.Contains(t, got, "created_at")
	assert.Len(t, got["files"], 3)
}

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

func TestSeal_SecondBackupInTheSameSecond_RefusedNotMistakenForTheFirst(t *testing.T) {
	m, backups := sealTestBackup(t)
	files := benchBackup(t, backups, testSite, testID) // the bench again, same second
	_, err := Seal(context.Background(), testSite, files, backups)
	require.ErrorIs(t, err, ErrSameID)
	again, err := Verify(context.Background(), m.Dir)
	require.NoError(t, err)
	assert.Equal(t, m.Files, again.Files, "the sealed backup is untouched")
}
