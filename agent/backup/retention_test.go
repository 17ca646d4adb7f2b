package backup

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func ids(ms []Manifest) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestSelectPrune(t *testing.T) {
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	var backups []Manifest
	for day := 1; day <= 10; day++ { // one a day, 2026-03-11 .. 2026-03-20
		at := now.AddDate(0, 0, day-10)
		backups = append(backups, Manifest{ID: at.Format("20060102_150405"), CreatedAt: at})
	}
	// Given out of order: the selection sorts.
	backups[2], backups[7] = backups[7], backups[2]
	for name, tc := range map[string]struct {
		r            Retention
		keep, remove int
	}{
		"last 3, no age":          {Retention{KeepLast: 3}, 3, 7},
		"last 3 and 5 days":       {Retention{KeepLast: 3, KeepDays: 5}, 5, 5},
		"last 7 and 2 days":       {Retention{KeepLast: 7, KeepDays: 2}, 7, 3},
		"more than there are":     {Retention{KeepLast: 20}, 10, 0},
		"zero keeps the newest":   {Retention{KeepLast: 0}, 1, 9},
		"days cover every backup": {Retention{KeepLast: 1, KeepDays: 30}, 10, 0},
		// days * 24h as a Duration overflowed: everything but the last
		// was deleted.
		"days past a Duration's range": {Retention{KeepLast: 1, KeepDays: 200_000}, 10, 0},
		"days at most an int":          {Retention{KeepLast: 1, KeepDays: math.MaxInt32}, 10, 0},
	} {
		t.Run(name, func(t *testing.T) {
			keep, remove := SelectPrune(backups, tc.r, now)
			require.Len(t, keep, tc.keep)
			require.Len(t, remove, tc.remove)
			assert.Equal(t, "20260320_120000", keep[len(keep)-1].ID, "the newest is kept")
			if len(remove) > 0 {
				assert.Less(t, remove[len(remove)-1].ID, keep[0].ID, "only older ones are removed")
			}
		})
	}
	keep, remove := SelectPrune(nil, DefaultRetention(), now)
	assert.Empty(t, keep)
	assert.Empty(t, remove)
}

func TestRetention_Validate(t *testing.T) {
	require.NoError(t, DefaultRetention().Validate())
	err := Retention{KeepLast: 0, KeepDays: -1}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keep_last")
	assert.Contains(t, err.Error(), "keep_days")
}

func TestRemoveLocal_SymlinkInside_RemovedNotFollowed(t *testing.T) {
	m, backups := sealTestBackup(t)
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.MkdirAll(filepath.Join(victim, "sub"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(victim, "sub", "keep"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink(victim, filepath.Join(m.Dir, "planted")))

	require.NoError(t, RemoveLocal(backups, m.ID))
	assert.NoDirExists(t, m.Dir)
	assert.FileExists(t, filepath.Join(victim, "sub", "keep"), "nothing is removed through a link")
	require.Error(t, RemoveLocal(backups, "../x"))
}

func TestRemoveLeftovers_RemovesNewFilesOnly(t *testing.T) {
	m, backups := sealTestBackup(t)
	before, err := Entries(backups)
	require.NoError(t, err)
	assert.Equal(t, []string{m.ID}, before)
	outside := filepath.Join(t.TempDir(), "outside")
	require.NoError(t, os.WriteFile(outside, []byte("root's"), 0o600))

	// What a bench killed midway leaves, plus a link and another folder.
	left := []string{"20260101_000000-site1_example_com-database.sql.gz", ".20260101_000000-site1_example_com-files.tar.tmp-1"}
	for _, n := range left {
		require.NoError(t, os.WriteFile(filepath.Join(backups, n), []byte("partial"), 0o640))
	}
	require.NoError(t, os.Symlink(outside, filepath.Join(backups, "20260101_000000-link")))
	// A seal cut short, and a folder with a manifest that is not ours.
	require.NoError(t, os.Mkdir(filepath.Join(backups, "20260101_000000"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(backups, "20260101_000000", "x.gz"), nil, 0o640))
	require.NoError(t, os.Mkdir(filepath.Join(backups, "20260101_000001"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(backups, "20260101_000001", ManifestName), nil, 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(backups, "kept"), nil, 0o640))

	// Another backup's seal in progress.
	require.NoError(t, os.Mkdir(filepath.Join(backups, "20260101_000002"), 0o750))

	got, err := RemoveLeftovers(backups, append(before, "kept"), "20260101_000000")
	require.NoError(t, err)
	assert.ElementsMatch(t, append(left, "20260101_000000-link", "20260101_000000/"), got.Removed)
	assert.Equal(t, []string{"20260101_000001/", "20260101_000002/"}, got.Left)
	assert.NoDirExists(t, filepath.Join(backups, "20260101_000000"))
	assert.DirExists(t, filepath.Join(backups, "20260101_000002"), "only this backup's folder is removed")
	assert.FileExists(t, outside, "a link is removed, not followed")
	assert.FileExists(t, filepath.Join(backups, "kept"))
	_, err = Verify(context.Background(), m.Dir)
	require.NoError(t, err, "the sealed backup is untouched")
}

func TestOffsite_Delete_RemovesOnlyThatBackup(t *testing.T) {
	ctx := context.Background()
	o := newTestOffsite(t, newFakeS3(t), nil)
	backups := filepath.Join(t.TempDir(), "backups")
	var sealed []Manifest
	for i := range 3 {
		id := fmt.Sprintf("2025010%d_030405", i+1)
		m, err := Seal(ctx, testSite, benchBackup(t, backups, testSite, id), backups)
		require.NoError(t, err)
		require.NoError(t, o.Upload(ctx, m, m.Dir))
		sealed = append(sealed, m)
	}
	listed, err := o.List(ctx, testSite)
	require.NoError(t, err)
	require.Len(t, listed, 3)
	require.NoError(t, o.Delete(ctx, listed[1]))
	after, err := o.List(ctx, testSite)
	require.NoError(t, err)
	assert.Equal(t, []string{sealed[0].ID, sealed[2].ID}, ids(after))
	n := 0
	for range o.client.ListObjects(ctx, testBucket, minio.ListObjectsOptions{Prefix: o.Prefix(sealed[1]) + "/", Recursive: true}) {
		n++
	}
	assert.Zero(t, n, "no object of the deleted backup is left")

	bad := listed[0]
	bad.OffsitePrefix = "other.example.com/2025-01-01/" + bad.ID
	require.ErrorIs(t, o.Delete(ctx, bad), ErrInvalidName)
}

// A bench can fill its backups folder with names: what a backup records of
// them (its job's result) stays bounded, and so does the time to clean
// them.
func TestRemoveLeftovers_FolderFilledByBench_ListsBounded(t *testing.T) {
	_, backups := sealTestBackup(t)
	before, err := Entries(backups)
	require.NoError(t, err)
	for i := range 5000 {
		require.NoError(t, os.WriteFile(filepath.Join(backups, fmt.Sprintf("junk-%05d", i)), nil, 0o640))
	}
	for i := range 150 {
		require.NoError(t, os.Mkdir(filepath.Join(backups, fmt.Sprintf("dir-%05d", i)), 0o750))
	}
	got, err := RemoveLeftovers(backups, before, "")
	require.NoError(t, err)
	require.Len(t, got.Removed, 101)
	require.Equal(t, "... and 4900 more", got.Removed[100])
	require.Len(t, got.Left, 101)
	require.Equal(t, "... and 50 more", got.Left[100])
	after, err := Entries(backups)
	require.NoError(t, err)
	require.Len(t, after, len(before)+150, "every file was removed, the folders left")

	for i := range MaxBackupEntries {
		require.NoError(t, os.WriteFile(filepath.Join(backups, fmt.Sprintf("junk-%05d", i)), nil, 0o640))
	}
	_, err = Entries(backups)
	require.ErrorContains(t, err, fmt.Sprintf("more than %d: remove what is not a backup there first", MaxBackupEntries))
}
