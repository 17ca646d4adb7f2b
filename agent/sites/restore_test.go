package sites

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/hybridsuite/hybrid/agent/backup"
)

// fakeStatfs answers statfs with a free byte count and filesystem id per
// folder.
func fakeStatfs(t *testing.T, free map[string]uint64, fsid map[string]int32) backup.Statfs {
	return func(path string, st *unix.Statfs_t) error {
		for dir, n := range free {
			if path == dir {
				*st = unix.Statfs_t{Bsize: 1, Frsize: 1, Bavail: n, Fsid: unix.Fsid{Val: [2]int32{fsid[dir], 0}}}
				return nil
			}
		}
		t.Errorf("statfs of an unexpected path %s", path)
		return unix.ENOENT
	}
}

func restoreManifest() backup.Manifest {
	return backup.Manifest{Files: []backup.File{
		{Name: "20250102_030405-s-database.sql.gz", Size: 1_000, UncompressedSize: 50_000},
		{Name: "20250102_030405-s-files.tar.gz", Size: 2_000, UncompressedSize: 3_000},
	}, Size: 3_000}
}

func TestCheckRestoreSpace_DatadirTooSmall_RefusesNamingFolderAndBytes(t *testing.T) {
	sites, datadir := t.TempDir(), t.TempDir()
	statfs := fakeStatfs(t, map[string]uint64{sites: 1 << 30, datadir: 10_000}, map[string]int32{sites: 1, datadir: 2})
	var log []string
	err := checkRestoreSpace(statfs, restoreManifest(), sites, datadir, nil, func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) })
	var ise *backup.InsufficientSpaceError
	require.ErrorAs(t, err, &ise)
	assert.Equal(t, datadir, ise.Path)
	assert.EqualValues(t, 50_000, ise.Need, "the dump's uncompressed size")
	assert.Contains(t, err.Error(), "MariaDB's data directory")
	assert.Contains(t, err.Error(), datadir)
	assert.Contains(t, err.Error(), "60000 bytes", "the bytes needed, headroom included")
	assert.NotContains(t, err.Error(), "sites folder:", "the sites folder has room")
	assert.Contains(t, strings.Join(log, "\n"), datadir)
}

func TestCheckRestoreSpace_SitesFolderTooSmall_Refuses(t *testing.T) {
	sites, datadir := t.TempDir(), t.TempDir()
	statfs := fakeStatfs(t, map[string]uint64{sites: 5_000, datadir: 1 << 30}, map[string]int32{sites: 1, datadir: 2})
	err := checkRestoreSpace(statfs, restoreManifest(), sites, datadir, nil, func(string, ...any) {})
	var ise *backup.InsufficientSpaceError
	require.ErrorAs(t, err, &ise)
	assert.Equal(t, sites, ise.Path)
	assert.EqualValues(t, 53_000+3_000, ise.Need, "unpacked files and the pre-restore backup")
	assert.Contains(t, err.Error(), "sites folder")
}

func TestCheckRestoreSpace_OneFilesystem_NeedsTheSum(t *testing.T) {
	sites, datadir := t.TempDir(), t.TempDir()
	// Room for either alone, not for both.
	statfs := fakeStatfs(t, map[string]uint64{sites: 100_000, datadir: 100_000}, map[string]int32{sites: 7, datadir: 7})
	err := checkRestoreSpace(statfs, restoreManifest(), sites, datadir, nil, func(string, ...any) {})
	var ise *backup.InsufficientSpaceError
	require.ErrorAs(t, err, &ise)
	assert.EqualValues(t, 56_000+50_000, ise.Need)

	big := fakeStatfs(t, map[string]uint64{sites: 200_000, datadir: 200_000}, map[string]int32{sites: 7, datadir: 7})
	require.NoError(t, checkRestoreSpace(big, restoreManifest(), sites, datadir, nil, func(string, ...any) {}))
}

func TestCheckRestoreSpace_DatadirUnknown_SaysSoAndChecksSitesOnly(t *testing.T) {
	sites := t.TempDir()
	statfs := fakeStatfs(t, map[string]uint64{sites: 1 << 30}, map[string]int32{sites: 1})
	var log []string
	err := checkRestoreSpace(statfs, restoreManifest(), sites, "", errors.New("MariaDB runs on host \"db1\""),
		func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) })
	require.NoError(t, err)
	assert.Contains(t, strings.Join(log, "\n"), "not checked")
	assert.Contains(t, strings.Join(log, "\n"), "db1")
}
